#pragma once
// Multi-head attention as diffusers' Attention and transformers' CLIPAttention compute it.
#include "core/models/hooks.h"
#include "core/models/layers.h"

#include <torch/torch.h>

#include <optional>

namespace sdl {

// softmax(q kᵀ / sqrt(d)) v per head. q [B, heads, Lq, d], k and v [B, heads, Lk, d] -> [B, heads, Lq, d].
// causal masks key j > query i (CLIP). upcast computes scores and softmax in float32 (SD 2.1's
// upcast_attention) when the inputs are half precision. With probs non-null the probabilities
// [B, heads, Lq, Lk] are returned there (explicit path, never fused).
torch::Tensor scaled_attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                               bool causal = false, bool upcast = false, torch::Tensor* probs = nullptr);

struct AttentionOptions {
    int64_t query_dim = 0;
    int64_t context_dim = 0;   // 0: self-attention (keys/values from the queries' input)
    int64_t heads = 1;
    int64_t head_dim = 0;
    bool qkv_bias = false;     // U-Net transformer blocks: false; VAE mid block: true
    bool upcast = false;
    // VAE mid block: GroupNorm first, input [B, C, H, W], residual added (diffusers' deprecated
    // attention block layout, which SD 1.x VAEs use).
    int64_t spatial_groups = 0;
    double spatial_eps = 1e-6;
};

// State-dict names: [group_norm], to_q, to_k, to_v, to_out.0 (diffusers).
class AttentionImpl : public torch::nn::Module, public HookPoint {
public:
    explicit AttentionImpl(const AttentionOptions& o);
    // x [B, L, query_dim], context [B, Lk, context_dim] (undefined: self) -> [B, L, query_dim].
    // record non-null: the probabilities averaged over heads [B, L, Lk] (float32) are stored there.
    torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& context = {}, torch::Tensor* record = nullptr);
    // x [B, C, H, W] -> [B, C, H, W]; needs spatial_groups > 0.
    torch::Tensor forward_spatial(const torch::Tensor& x);

private:
    AttentionOptions o_;
    std::optional<GroupNorm> group_norm_;
    Linear to_q_{nullptr}, to_k_{nullptr}, to_v_{nullptr}, to_out_{nullptr};
};
TORCH_MODULE(Attention);

} // namespace sdl
