#include "core/models/fused_ops.h"

#include "core/models/kernels/fused_kernel.h"
#include "core/util/error.h"

#include <ATen/Parallel.h>
#include <ATen/record_function.h>

#include <cmath>
#include <vector>

namespace sdl {

namespace gk = fused_kernel;

bool group_norm_nhwc_applies(const torch::Tensor& x) {
    // bfloat16 only: there LibTorch 1.13's channels-last kernel is wrong and both LibTorches' slow. float32
    // stays LibTorch's, right in either layout, so a float32 result does not depend on which layout an
    // activation happens to have (LibTorch 2.x returns some convolutions channels-last).
    if (!x.device().is_cpu() || x.dim() != 4 || x.is_contiguous() ||
        !x.is_contiguous(torch::MemoryFormat::ChannelsLast) || x.scalar_type() != torch::kBFloat16)
        return false;
    return !(torch::GradMode::is_enabled() && x.requires_grad());
}

namespace {
gk::Kernels kernels_for(const std::string& isa) {
    if (isa.empty())
        return gk::best();
    const gk::Kernels* chosen = gk::by_isa(isa.c_str());
    if (!chosen)
        throw Error("normalisation kernels: this CPU does not run '" + isa + "'");
    return *chosen;
}
} // namespace

bool row_kernels_apply(const torch::Tensor& x) {
    if (!x.device().is_cpu() || x.dim() < 1 || !x.is_contiguous())
        return false;
    if (x.scalar_type() != torch::kFloat && x.scalar_type() != torch::kBFloat16)
        return false;
    return !(torch::GradMode::is_enabled() && x.requires_grad());
}

torch::Tensor layer_norm_rows(const torch::Tensor& x, const torch::Tensor& weight, const torch::Tensor& bias,
                              double eps, const std::string& isa) {
    RECORD_FUNCTION("sdl::layer_norm_rows", std::vector<c10::IValue>());  // named in bench --profile
    const gk::Kernels k = kernels_for(isa);
    const int64_t c = x.size(-1), rows = c ? x.numel() / c : 0;
    const bool bf16 = x.scalar_type() == torch::kBFloat16;
    const size_t elem = x.element_size();
    const auto w = weight.to(torch::kFloat).contiguous(), b = bias.to(torch::kFloat).contiguous();
    auto y = torch::empty_like(x);
    const auto* xp = static_cast<const char*>(x.data_ptr());
    auto* yp = static_cast<char*>(y.data_ptr());
    // Rows are independent: each thread takes whole rows, so the result does not depend on the split.
    at::parallel_for(0, rows, 16, [&](int64_t begin, int64_t end) {
        k.layer_norm(xp + begin * c * elem, bf16, end - begin, c, w.data_ptr<float>(), b.data_ptr<float>(),
                     static_cast<float>(eps), yp + begin * c * elem);
    });
    return y;
}

torch::Tensor geglu(const torch::Tensor& x, const std::string& isa) {
    RECORD_FUNCTION("sdl::geglu", std::vector<c10::IValue>());  // named in bench --profile
    const gk::Kernels k = kernels_for(isa);
    const int64_t f = x.size(-1) / 2, rows = f ? x.numel() / (2 * f) : 0;
    if (x.size(-1) % 2)
        throw Error("GEGLU: the projection's width " + std::to_string(x.size(-1)) + " is odd");
    auto sizes = x.sizes().vec();
    sizes.back() = f;
    auto y = torch::empty(sizes, x.options());
    const bool bf16 = x.scalar_type() == torch::kBFloat16;
    const size_t elem = x.element_size();
    const auto* xp = static_cast<const char*>(x.data_ptr());
    auto* yp = static_cast<char*>(y.data_ptr());
    at::parallel_for(0, rows, 8, [&](int64_t begin, int64_t end) {
        k.geglu(xp + begin * 2 * f * elem, bf16, end - begin, f, yp + begin * f * elem);
    });
    return y;
}

torch::Tensor group_norm_nhwc(const torch::Tensor& x, int64_t groups, const torch::Tensor& weight,
                              const torch::Tensor& bias, double eps, bool silu, const std::string& isa,
                              bool in_place) {
    RECORD_FUNCTION("sdl::group_norm_nhwc", std::vector<c10::IValue>());  // named in bench --profile
    const gk::Kernels k = kernels_for(isa);
    const int64_t b = x.size(0), c = x.size(1), pixels = x.size(2) * x.size(3);
    if (c % groups != 0)
        throw Error("GroupNorm: " + std::to_string(c) + " channels do not split into " + std::to_string(groups) +
                    " groups");
    const int64_t per_group = c / groups;
    const bool bf16 = x.scalar_type() == torch::kBFloat16;
    const size_t elem = x.element_size();
    const auto w = weight.to(torch::kFloat).contiguous(), bi = bias.to(torch::kFloat).contiguous();
    const float* wp = w.data_ptr<float>();
    const float* bp = bi.data_ptr<float>();
    // [B, C, H, W] stored NHWC. In place, each value is read (statistics, then apply) before it is written.
    auto y = in_place ? x : torch::empty_like(x, torch::MemoryFormat::ChannelsLast);
    const auto* xp = static_cast<const char*>(x.data_ptr());
    auto* yp = static_cast<char*>(y.data_ptr());

    const int64_t blocks = (pixels + gk::kBlockRows - 1) / gk::kBlockRows;
    std::vector<float> shift(c), block_sum(blocks * c), block_sq(blocks * c), mean_of(c), scale(c);
    for (int64_t n = 0; n < b; ++n) {
        const char* xn = xp + n * pixels * c * elem;
        char* yn = yp + n * pixels * c * elem;
        // The first pixel's values as each channel's shift; the block sums land in fixed slots and are
        // added in block order below, so the result does not depend on the thread count.
        for (int64_t ch = 0; ch < c; ++ch)
            shift[ch] = bf16 ? static_cast<float>(reinterpret_cast<const at::BFloat16*>(xn)[ch])
                             : reinterpret_cast<const float*>(xn)[ch];
        at::parallel_for(0, blocks, 1, [&](int64_t begin, int64_t end) {
            for (int64_t blk = begin; blk < end; ++blk) {
                const int64_t r0 = blk * gk::kBlockRows, rows = std::min(gk::kBlockRows, pixels - r0);
                k.sums(xn + r0 * c * elem, bf16, rows, c, shift.data(), &block_sum[blk * c], &block_sq[blk * c]);
            }
        });
        for (int64_t g = 0; g < groups; ++g) {
            // Per channel: its mean and centred sum of squares (the shift cancels exactly in float64);
            // then the group's from the channels' (Chan et al.'s pairwise update).
            std::vector<double> mean(per_group), m2(per_group);
            for (int64_t j = 0; j < per_group; ++j) {
                const int64_t ch = g * per_group + j;
                double s = 0, q = 0;
                for (int64_t blk = 0; blk < blocks; ++blk) {
                    s += block_sum[blk * c + ch];
                    q += block_sq[blk * c + ch];
                }
                mean[j] = s / pixels;
                m2[j] = std::max(0.0, q - s * s / pixels);
                mean[j] += shift[ch];
            }
            double group_mean = 0;
            for (int64_t j = 0; j < per_group; ++j)
                group_mean += mean[j];
            group_mean /= per_group;
            double group_m2 = 0;
            for (int64_t j = 0; j < per_group; ++j)
                group_m2 += m2[j] + pixels * (mean[j] - group_mean) * (mean[j] - group_mean);
            const double rstd = 1.0 / std::sqrt(group_m2 / (pixels * per_group) + eps);
            for (int64_t j = 0; j < per_group; ++j) {
                const int64_t ch = g * per_group + j;
                mean_of[ch] = static_cast<float>(group_mean);
                scale[ch] = static_cast<float>(rstd * wp[ch]);
            }
        }
        at::parallel_for(0, blocks, 1, [&](int64_t begin, int64_t end) {
            const int64_t r0 = begin * gk::kBlockRows, r1 = std::min(end * gk::kBlockRows, pixels);
            k.apply(xn + r0 * c * elem, bf16, r1 - r0, c, mean_of.data(), scale.data(), bp, silu, yn + r0 * c * elem);
        });
    }
    return y;
}

} // namespace sdl
