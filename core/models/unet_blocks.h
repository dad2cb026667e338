#pragma once
// The U-Net's stages: diffusers' CrossAttnDownBlock2D / DownBlock2D, UNetMidBlock2DCrossAttn and
// UpBlock2D / CrossAttnUpBlock2D. A down (up) block with and without cross-attention differ only
// in having "attentions", so each pair is one class; the factories map the config's type names.
#include "core/models/hooks.h"
#include "core/models/resnet.h"
#include "core/models/transformer_2d.h"

#include <torch/torch.h>

#include <string>
#include <vector>

namespace sdl {

struct UNetBlockOptions {
    int64_t in_channels = 0;
    int64_t out_channels = 0;
    int64_t prev_out_channels = 0;  // up blocks: channels coming from the block below
    int64_t temb_channels = 1280;
    int64_t layers = 2;
    bool resample = true;           // downsampler / upsampler after the block
    bool cross_attention = true;
    TransformerOptions transformer; // channels is set per block
    int64_t groups = 32;
    double eps = 1e-5;
    double resnet_out_scale = 1.0;  // the mid block's mid_block_scale_factor; 1 elsewhere
    int64_t downsample_padding = 1;
};

// Throws sdl::Error naming the type: "unknown down_block_type 'Foo' (expected CrossAttnDownBlock2D, DownBlock2D)".
bool down_block_has_cross_attention(const std::string& type);
bool up_block_has_cross_attention(const std::string& type);

class UNetDownBlockImpl : public torch::nn::Module, public HookPoint {
public:
    explicit UNetDownBlockImpl(const UNetBlockOptions& o);
    // x [B, in, H, W] -> [B, out, H/2, W/2] (H, W without a downsampler); every intermediate output is
    // appended to skips for the up path.
    torch::Tensor forward(torch::Tensor x, const torch::Tensor& temb, const torch::Tensor& context,
                          std::vector<torch::Tensor>& skips, const ModelHooks* hooks);

private:
    std::vector<ResnetBlock2D> resnets_;
    std::vector<Transformer2DModel> attentions_;
    Downsample2D down_{nullptr};
};
TORCH_MODULE(UNetDownBlock);

class UNetUpBlockImpl : public torch::nn::Module, public HookPoint {
public:
    explicit UNetUpBlockImpl(const UNetBlockOptions& o);
    int64_t layers() const { return static_cast<int64_t>(resnets_.size()); }
    // Pops one skip per resnet from the back of skips and concatenates it on channels.
    // upsample_size: spatial size of the next skip (the output size), when there is an upsampler.
    torch::Tensor forward(torch::Tensor x, const torch::Tensor& temb, const torch::Tensor& context,
                          std::vector<torch::Tensor>& skips, c10::IntArrayRef upsample_size, const ModelHooks* hooks);

private:
    std::vector<ResnetBlock2D> resnets_;
    std::vector<Transformer2DModel> attentions_;
    Upsample2D up_{nullptr};
};
TORCH_MODULE(UNetUpBlock);

// resnets.0, then (attentions.i, resnets.i+1) for each transformer.
class UNetMidBlockImpl : public torch::nn::Module, public HookPoint {
public:
    explicit UNetMidBlockImpl(const UNetBlockOptions& o);
    torch::Tensor forward(torch::Tensor x, const torch::Tensor& temb, const torch::Tensor& context,
                          const ModelHooks* hooks);

private:
    std::vector<ResnetBlock2D> resnets_;
    std::vector<Transformer2DModel> attentions_;
};
TORCH_MODULE(UNetMidBlock);

} // namespace sdl
