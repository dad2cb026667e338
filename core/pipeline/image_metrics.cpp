#include "core/pipeline/image_metrics.h"

#include <cmath>
#include <limits>

namespace sdl {

namespace {

torch::Tensor batched(const torch::Tensor& t) { return (t.dim() == 3 ? t.unsqueeze(0) : t).to(torch::kFloat32); }

} // namespace

double psnr(const torch::Tensor& a, const torch::Tensor& b) {
    const double mse = (batched(a) - batched(b)).pow(2).mean().item<double>();
    return mse > 0 ? 10.0 * std::log10(1.0 / mse) : std::numeric_limits<double>::infinity();
}

double ssim(const torch::Tensor& a_in, const torch::Tensor& b_in) {
    namespace F = torch::nn::functional;
    const auto a = batched(a_in), b = batched(b_in);
    const int size = int(std::min<int64_t>(11, std::min(a.size(2), a.size(3))));
    auto x = torch::arange(size, torch::kFloat32) - (size - 1) / 2.0;
    auto g = torch::exp(-(x * x) / (2 * 1.5 * 1.5));
    g = g / g.sum();
    auto window = torch::outer(g, g).expand({3, 1, size, size}).contiguous();
    auto conv = [&](const torch::Tensor& t) { return F::conv2d(t, window, F::Conv2dFuncOptions().groups(3)); };
    const double c1 = 0.01 * 0.01, c2 = 0.03 * 0.03;
    auto ma = conv(a), mb = conv(b);
    auto saa = conv(a * a) - ma * ma, sbb = conv(b * b) - mb * mb, sab = conv(a * b) - ma * mb;
    auto map = ((2 * ma * mb + c1) * (2 * sab + c2)) / ((ma * ma + mb * mb + c1) * (saa + sbb + c2));
    return map.mean().item<double>();
}

} // namespace sdl
