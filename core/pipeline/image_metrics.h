#pragma once
// How close two images are, as the VAE views report it. Images are [3, H, W] or [N, 3, H, W] float in [0, 1].
#include <torch/torch.h>

namespace sdl {

double psnr(const torch::Tensor& a, const torch::Tensor& b);  // dB; infinity when equal
// Mean SSIM over RGB with the usual 11x11 Gaussian window (sigma 1.5), "valid" borders.
double ssim(const torch::Tensor& a, const torch::Tensor& b);

} // namespace sdl
