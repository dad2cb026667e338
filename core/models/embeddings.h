#pragma once
// The U-Net's timestep conditioning: diffusers' get_timestep_embedding + TimestepEmbedding.
#include "core/models/layers.h"

#include <torch/torch.h>

namespace sdl {

// Sinusoidal embedding of timesteps [B] (any numeric dtype; converted to float32 first, as
// diffusers does) -> [B, dim] float32. Frequencies exp(-ln(10000) * i / (dim/2 - freq_shift)),
// sin half first unless flip_sin_to_cos.
torch::Tensor timestep_embedding(const torch::Tensor& timesteps, int64_t dim, bool flip_sin_to_cos, double freq_shift);

// How LCM-distilled U-Nets are told the guidance scale (diffusers' get_guidance_scale_embedding,
// after VDM's embedding of noise levels): w [B] times 1000 -> [B, dim] float32, sines first.
torch::Tensor guidance_scale_embedding(const torch::Tensor& w, int64_t dim);

// linear_1 -> SiLU -> linear_2; with cond_proj_dim > 0 (LCM-distilled U-Nets) a condition
// [B, cond_proj_dim] is first added to the input through cond_proj, a Linear without bias.
class TimestepEmbeddingImpl : public torch::nn::Module {
public:
    TimestepEmbeddingImpl(int64_t in_channels, int64_t time_embed_dim, int64_t cond_proj_dim = 0);
    // [B, in] -> [B, time_embed_dim]; cond undefined: none (as diffusers without timestep_cond).
    torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& cond = {});

private:
    Linear linear_1{nullptr}, linear_2{nullptr}, cond_proj{nullptr};
};
TORCH_MODULE(TimestepEmbedding);

} // namespace sdl
