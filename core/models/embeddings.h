#pragma once
// The U-Net's timestep conditioning: diffusers' get_timestep_embedding + TimestepEmbedding.
#include "core/models/layers.h"

#include <torch/torch.h>

namespace sdl {

// Sinusoidal embedding of timesteps [B] (any numeric dtype; converted to float32 first, as
// diffusers does) -> [B, dim] float32. Frequencies exp(-ln(10000) * i / (dim/2 - freq_shift)),
// sin half first unless flip_sin_to_cos.
torch::Tensor timestep_embedding(const torch::Tensor& timesteps, int64_t dim, bool flip_sin_to_cos, double freq_shift);

// linear_1 -> SiLU -> linear_2.
class TimestepEmbeddingImpl : public torch::nn::Module {
public:
    TimestepEmbeddingImpl(int64_t in_channels, int64_t time_embed_dim);
    torch::Tensor forward(const torch::Tensor& x);  // [B, in] -> [B, time_embed_dim]

private:
    Linear linear_1{nullptr}, linear_2{nullptr};
};
TORCH_MODULE(TimestepEmbedding);

} // namespace sdl
