#include "core/pipeline/pipeline.h"

#include <ATen/CPUGeneratorImpl.h>

namespace sdl {

torch::Tensor latent_preview(const torch::Tensor& latents) {
    // A least-squares fit of RGB on SD 1.x's four latent channels (the factors ComfyUI and
    // stable-diffusion.cpp use for their step previews). Good enough to watch an image form; the
    // VAE decode is the real thing.
    static const float kFactors[4][3] = {
        {0.3512f, 0.2297f, 0.3227f},
        {0.3250f, 0.4974f, 0.2350f},
        {-0.2829f, 0.1762f, 0.2721f},
        {-0.2120f, -0.2616f, -0.7177f},
    };
    auto m = torch::from_blob(const_cast<float*>(&kFactors[0][0]), {4, 3}, torch::kFloat32)
                 .to(latents.device());
    auto x = latents.to(torch::kFloat32);                          // [N, 4, h, w]
    auto rgb = torch::einsum("nchw,cr->nrhw", {x, m});              // [N, 3, h, w] roughly in [-1, 1]
    return ((rgb + 1.0) * 0.5).clamp(0.0, 1.0);
}

torch::Tensor seeded_randn(at::IntArrayRef shape, uint64_t seed) {
    auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
    return torch::randn(shape, gen, torch::TensorOptions().dtype(torch::kFloat32));
}

} // namespace sdl
