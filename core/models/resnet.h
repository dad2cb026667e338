#pragma once
// diffusers' ResnetBlock2D, Downsample2D and Upsample2D (shared by the U-Net and the VAE).
#include "core/models/hooks.h"
#include "core/models/layers.h"

#include <torch/torch.h>

namespace sdl {

struct ResnetOptions {
    int64_t in_channels = 0;
    int64_t out_channels = 0;
    int64_t temb_channels = 0;  // 0: no time embedding (VAE)
    int64_t groups = 32;
    double eps = 1e-5;
    double output_scale_factor = 1.0;
};

// norm1 -> SiLU -> conv1 (+ time_emb_proj(SiLU(temb))) -> norm2 -> SiLU -> conv2, plus a 1x1
// conv_shortcut when the channel count changes.
class ResnetBlock2DImpl : public torch::nn::Module, public HookPoint {
public:
    explicit ResnetBlock2DImpl(const ResnetOptions& o);
    // x [B, in, H, W], temb [B, temb_channels] (undefined without) -> [B, out, H, W]
    torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& temb = {}, const ModelHooks* hooks = nullptr);

private:
    double output_scale_factor_;
    GroupNorm norm1{nullptr}, norm2{nullptr};
    Conv2d conv1{nullptr}, conv2{nullptr}, conv_shortcut{nullptr};
    Linear time_emb_proj{nullptr};
};
TORCH_MODULE(ResnetBlock2D);

// 3x3 stride-2 convolution ("conv"). padding 0 is the VAE encoder's layout: pad right and bottom
// by one first, so odd and even sizes both halve the way the weights were trained.
class Downsample2DImpl : public torch::nn::Module {
public:
    Downsample2DImpl(int64_t channels, int64_t padding);
    torch::Tensor forward(const torch::Tensor& x);  // [B, C, H, W] -> [B, C, ceil(H/2), ceil(W/2)]

private:
    int64_t padding_;
    Conv2d conv{nullptr};
};
TORCH_MODULE(Downsample2D);

// Nearest-neighbour upsampling then a 3x3 convolution ("conv").
class Upsample2DImpl : public torch::nn::Module {
public:
    explicit Upsample2DImpl(int64_t channels);
    // size: the output's spatial size (the U-Net passes its skip connection's, which is not 2x the
    // input for odd latent sizes); empty: twice the input.
    torch::Tensor forward(const torch::Tensor& x, c10::IntArrayRef size = {});

private:
    Conv2d conv{nullptr};
};
TORCH_MODULE(Upsample2D);

} // namespace sdl
