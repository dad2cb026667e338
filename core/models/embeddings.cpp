#include "core/models/embeddings.h"

#include <cmath>

namespace sdl {

torch::Tensor timestep_embedding(const torch::Tensor& timesteps, int64_t dim, bool flip_sin_to_cos, double freq_shift) {
    const int64_t half = dim / 2;
    // Same operations in the same order and precision as diffusers, so the float32 rounding of
    // the frequencies matches bit for bit.
    auto exponent = -std::log(10000.0) * torch::arange(0, half, timesteps.options().dtype(torch::kFloat));
    exponent = exponent / (static_cast<double>(half) - freq_shift);
    auto emb = timesteps.to(torch::kFloat).unsqueeze(1) * torch::exp(exponent).unsqueeze(0);  // [B, half]
    emb = flip_sin_to_cos ? torch::cat({torch::cos(emb), torch::sin(emb)}, -1)
                          : torch::cat({torch::sin(emb), torch::cos(emb)}, -1);
    if (dim % 2 == 1)
        emb = torch::constant_pad_nd(emb, {0, 1}, 0);
    return emb;  // [B, dim]
}

torch::Tensor guidance_scale_embedding(const torch::Tensor& w, int64_t dim) {
    const int64_t half = dim / 2;
    // float32 throughout, in diffusers' order, for the same rounding.
    const auto f32 = torch::TensorOptions().dtype(torch::kFloat);
    const torch::Tensor step = torch::log(torch::tensor(10000.0f)) / static_cast<double>(half - 1);
    const torch::Tensor freqs = torch::exp(torch::arange(half, f32) * -step);
    const torch::Tensor emb = (w.to(torch::kFloat) * 1000.0).unsqueeze(1) * freqs.unsqueeze(0);  // [B, half]
    torch::Tensor out = torch::cat({torch::sin(emb), torch::cos(emb)}, 1);
    if (dim % 2 == 1)
        out = torch::constant_pad_nd(out, {0, 1}, 0);
    return out;
}

TimestepEmbeddingImpl::TimestepEmbeddingImpl(int64_t in_channels, int64_t time_embed_dim, int64_t cond_proj_dim) {
    linear_1 = register_module("linear_1", Linear(in_channels, time_embed_dim));
    if (cond_proj_dim > 0)
        cond_proj = register_module("cond_proj", Linear(cond_proj_dim, in_channels, false));
    linear_2 = register_module("linear_2", Linear(time_embed_dim, time_embed_dim));
}

torch::Tensor TimestepEmbeddingImpl::forward(const torch::Tensor& x, const torch::Tensor& cond) {
    const torch::Tensor in = cond.defined() ? x + cond_proj(cond) : x;
    return linear_2(torch::silu(linear_1(in)));
}

} // namespace sdl
