#pragma once
// Trains the demo model on the toy world (core/demo/toy_world.h) with LibTorch autograd: first the VAE
// (reconstruction + a small KL term), then the U-Net and the text encoder together on the frozen VAE's
// latents (epsilon prediction under SD 1.x's noise schedule, 10 % of captions dropped so that
// classifier-free guidance works). The architecture is resources/presets/demo.json.
#include <cstdint>
#include <functional>
#include <string>

namespace sdl {

struct DemoTrainOptions {
    std::string out;            // folder for the weights, demo.json and train_log.jsonl
    int vae_steps = 1500;
    int unet_steps = 2500;
    uint64_t seed = 0;
    int vae_batch = 6;
    int unet_batch = 32;
    int latent_pool = 4096;     // toy-world images encoded once for the U-Net phase
    double vae_lr = 1e-3;
    double unet_lr = 1e-3;
    double caption_drop = 0.1;
};

struct DemoTrainProgress {
    std::string phase;  // "vae", "encode", "unet"
    int step = 0, steps = 0;
    double loss = 0;    // the phase's loss at this step (0 while encoding)
    double seconds = 0; // since training started
};

struct DemoTrainResult {
    double vae_loss = 0, unet_loss = 0;  // each phase's loss averaged over its last 100 steps
    double scaling_factor = 0;           // 1 / std of the trained VAE's latents
    double seconds = 0;
};

// Writes text_encoder.safetensors, unet.safetensors, vae.safetensors (float16), demo.json (the configs,
// the scaling factor, the vocabulary and how they were trained) and train_log.jsonl into options.out.
// The same options, seed and thread count give the same weights.
DemoTrainResult train_demo(const DemoTrainOptions& options, const std::function<void(const DemoTrainProgress&)>& progress);

} // namespace sdl
