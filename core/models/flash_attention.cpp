#include "core/models/flash_attention.h"

#include "core/models/kernels/attention_kernel.h"
#include "core/util/error.h"

#include <ATen/Parallel.h>
#include <ATen/record_function.h>
#include <torch/version.h>

#include <atomic>
#include <cmath>
#include <vector>

namespace sdl {
namespace {

std::atomic<CpuAttention> g_attention{CpuAttention::flash};

namespace ak = attention_kernel;

// Calls f(nh, bi, h, i0, rows, scratch) for every block of kQueryBlock queries of every head, on all
// threads; each thread gets its own scratch of `scratch_floats`. Consecutive tasks share a head, so a
// thread's key and value blocks stay in its cache.
template <typename F>
void for_each_query_block(int64_t b, int64_t heads, int64_t lq, int64_t scratch_floats, const F& f) {
    const int64_t blocks = (lq + ak::kQueryBlock - 1) / ak::kQueryBlock;
    at::parallel_for(0, b * heads * blocks, 1, [&](int64_t begin, int64_t end) {
        std::vector<float> scratch(scratch_floats);
        for (int64_t t = begin; t < end; ++t) {
            const int64_t nh = t / blocks, i0 = (t % blocks) * ak::kQueryBlock;
            f(nh, nh / heads, nh % heads, i0, std::min(ak::kQueryBlock, lq - i0), scratch.data());
        }
    });
}

// bfloat16 inputs stay bfloat16 for AVX512-BF16's pair products: the query rows zero-padded to even
// d, K^T and V with the pairs of the products' inner dimension adjacent.
torch::Tensor attend_bf16(ak::AttendBf16Fn attend, const torch::Tensor& q, const torch::Tensor& k,
                          const torch::Tensor& v, bool causal) {
    const int64_t b = q.size(0), heads = q.size(1), lq = q.size(2), d = q.size(3), lk = k.size(2);
    const int64_t d2 = (d + 1) / 2, lk_pad = ak::round_up(lk, ak::kKeyPad), d_pad = ak::round_up(d, ak::kDimPad);
    const int64_t lk2 = (lk + 1) / 2;
    const auto bf = q.options().dtype(torch::kBFloat16);
    auto qp = torch::zeros({b, heads, lq, 2 * d2}, bf);
    qp.narrow(3, 0, d).copy_(q);
    auto kz = torch::zeros({b, heads, lk_pad, 2 * d2}, bf);
    kz.narrow(2, 0, lk).narrow(3, 0, d).copy_(k);
    const int64_t panels = lk_pad / ak::kKeyPad;
    const auto kp = kz.view({b, heads, panels, ak::kKeyPad, d2, 2}).permute({0, 1, 2, 4, 3, 5}).contiguous();
    auto vz = torch::zeros({b, heads, 2 * lk2, d_pad}, bf);
    vz.narrow(2, 0, lk).narrow(3, 0, d).copy_(v);
    const auto vp = vz.view({b, heads, lk2, 2, d_pad}).permute({0, 1, 2, 4, 3}).contiguous();
    auto out = torch::empty({b, lq, heads, d}, q.options().dtype(torch::kFloat));

    const auto* qpp = reinterpret_cast<const uint16_t*>(qp.data_ptr<at::BFloat16>());
    const auto* kpp = reinterpret_cast<const uint16_t*>(kp.data_ptr<at::BFloat16>());
    const auto* vpp = reinterpret_cast<const uint16_t*>(vp.data_ptr<at::BFloat16>());
    float* op = out.data_ptr<float>();
    const float scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(d)) / std::log(2.0));
    for_each_query_block(b, heads, lq, ak::scratch_floats_bf16(d2, d_pad),
                         [&](int64_t nh, int64_t bi, int64_t h, int64_t i0, int64_t rows, float* scratch) {
                             const ak::HeadBf16 head{kpp + nh * d2 * lk_pad * 2, lk_pad, vpp + nh * lk2 * d_pad * 2,
                                                     d_pad, lk, d, d2, scale};
                             attend(qpp + (nh * lq + i0) * 2 * d2, rows, i0, head, causal,
                                    op + ((bi * lq + i0) * heads + h) * d, heads * d, scratch);
                         });
    return out.to(torch::kBFloat16).transpose(1, 2);
}

ak::AttendFn kernel_for(const std::string& isa) {
    if (isa.empty())
        return ak::best_attend();
    if (isa == "generic")
        return ak::generic::attend;
    if (isa == ak::best_isa() || (isa == "avx2" && std::string(ak::best_isa()) == "avx512"))
        return isa == "avx512" ? ak::avx512::attend : ak::avx2::attend;
    throw Error("attention kernel '" + isa + "' does not run on this CPU (best: " + ak::best_isa() + ")");
}

} // namespace

void set_cpu_attention(CpuAttention a) {
    if (a == CpuAttention::sdpa && !have_sdpa())
        throw UsageError("scaled_dot_product_attention needs LibTorch 2.x; this build has LibTorch " TORCH_VERSION);
    g_attention = a;
}
CpuAttention cpu_attention() { return g_attention; }

bool have_sdpa() { return TORCH_VERSION_MAJOR >= 2; }

const char* cpu_attention_label() {
    if (g_attention == CpuAttention::plain)
        return "plain";
    if (g_attention == CpuAttention::sdpa)
        return "sdpa";
    // bfloat16 runs on the bfloat16 kernel where there is one.
    if (ak::bf16_attend())
        return "flash (avx512bf16 for bf16, avx512 for fp32)";
    const std::string isa = ak::best_isa();
    return isa == "avx512" ? "flash (avx512)" : isa == "avx2" ? "flash (avx2)" : "flash (generic)";
}

torch::Tensor flash_attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v, bool causal,
                              const std::string& isa) {
    RECORD_FUNCTION("sdl::flash_attention", std::vector<c10::IValue>());  // named in bench --profile
    TORCH_CHECK(q.dim() == 4 && k.dim() == 4 && v.dim() == 4, "flash_attention wants [B, heads, L, d] tensors");
    TORCH_CHECK(q.device().is_cpu(), "flash_attention runs on the CPU");
    if (q.scalar_type() == torch::kBFloat16 && (isa.empty() || isa == "avx512bf16")) {
        if (const auto attend = ak::bf16_attend())
            return attend_bf16(attend, q, k, v, causal);
    }
    if (isa == "avx512bf16")
        throw Error("attention kernel 'avx512bf16' needs bfloat16 inputs and a CPU with AVX512-BF16");
    const auto attend = kernel_for(isa);
    const int64_t b = q.size(0), heads = q.size(1), lq = q.size(2), d = q.size(3), lk = k.size(2);
    const int64_t lk_pad = ak::round_up(lk, ak::kKeyPad), d_pad = ak::round_up(d, ak::kDimPad);
    const auto f32 = q.options().dtype(torch::kFloat);
    // Packed float32 copies, O(L d) each: queries pre-scaled so the softmax runs in base 2, K
    // transposed in panels so a score tile reads keys along a row, V rows padded to whole vectors.
    auto qs = torch::empty({b, heads, lq, d}, f32);
    qs.copy_(q).mul_(1.0 / std::sqrt(static_cast<double>(d)) / std::log(2.0));
    auto kz = torch::zeros({b, heads, lk_pad, d}, f32);
    kz.narrow(2, 0, lk).copy_(k);
    const auto kt = kz.view({b, heads, lk_pad / ak::kKeyPad, ak::kKeyPad, d}).transpose(3, 4).contiguous();
    auto vp = torch::zeros({b, heads, lk, d_pad}, f32);
    vp.narrow(3, 0, d).copy_(v);
    auto out = torch::empty({b, lq, heads, d}, f32);

    const float* qp = qs.data_ptr<float>();
    const float* ktp = kt.data_ptr<float>();
    const float* vpp = vp.data_ptr<float>();
    float* op = out.data_ptr<float>();
    for_each_query_block(b, heads, lq, ak::scratch_floats(d, d_pad),
                         [&](int64_t nh, int64_t bi, int64_t h, int64_t i0, int64_t rows, float* scratch) {
                             const ak::Head head{ktp + nh * d * lk_pad, lk_pad, vpp + nh * lk * d_pad, d_pad, lk, d};
                             attend(qp + (nh * lq + i0) * d, rows, i0, head, causal,
                                    op + ((bi * lq + i0) * heads + h) * d, heads * d, scratch);
                         });
    return out.to(q.scalar_type()).transpose(1, 2);
}

} // namespace sdl
