#pragma once
// diffusers' Transformer2DModel (continuous input) and BasicTransformerBlock, as SD's U-Net uses them.
#include "core/models/attention.h"
#include "core/models/hooks.h"
#include "core/models/layers.h"

#include <torch/torch.h>

#include <vector>

namespace sdl {

struct TransformerOptions {
    int64_t channels = 0;      // in/out channels of the 2D feature map
    int64_t heads = 8;
    int64_t head_dim = 40;     // channels / heads in every SD config
    int64_t layers = 1;        // transformer_blocks
    int64_t context_dim = 768; // text embedding width
    int64_t groups = 32;
    bool linear_projection = false;
    bool upcast_attention = false;
};

// norm1 + attn1 (self), norm2 + attn2 (cross to the text), norm3 + GEGLU feed-forward ("ff.net.0.proj",
// "ff.net.2"), each added to the residual stream.
class BasicTransformerBlockImpl : public torch::nn::Module, public HookPoint {
public:
    explicit BasicTransformerBlockImpl(const TransformerOptions& o);
    // x [B, H*W, C], context [B, 77, context_dim] -> [B, H*W, C]; height/width label attention records.
    torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& context, const ModelHooks* hooks,
                          int64_t height, int64_t width);

private:
    LayerNorm norm1{nullptr}, norm2{nullptr}, norm3{nullptr};
    Attention attn1{nullptr}, attn2{nullptr};
    Linear ff_proj{nullptr}, ff_out{nullptr};
};
TORCH_MODULE(BasicTransformerBlock);

// GroupNorm -> proj_in (1x1 conv, or linear for SD 2.x) -> transformer blocks -> proj_out, plus the input.
class Transformer2DModelImpl : public torch::nn::Module, public HookPoint {
public:
    explicit Transformer2DModelImpl(const TransformerOptions& o);
    // x [B, C, H, W], context [B, 77, context_dim] -> [B, C, H, W]
    torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& context, const ModelHooks* hooks = nullptr);

private:
    bool linear_;
    GroupNorm norm{nullptr};
    Conv2d proj_in_conv{nullptr}, proj_out_conv{nullptr};
    Linear proj_in_linear{nullptr}, proj_out_linear{nullptr};
    std::vector<BasicTransformerBlock> blocks_;
};
TORCH_MODULE(Transformer2DModel);

} // namespace sdl
