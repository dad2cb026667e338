#pragma once
// The one interface through which the pipeline reports its stages. The GUI's worker, the CLI
// (progress bar, trace writer) and the tests are all observers; model code never draws.
#include "core/tokenizer/clip_tokenizer.h"

#include <torch/torch.h>

#include <vector>

namespace sdl {

struct StepEvent {
    int index = 0;          // 0-based step
    int total = 0;          // number of steps in this run
    double timestep = 0;    // the U-Net's timestep for this step
    double sigma = 0;       // the scheduler's sigma (0 for schedulers without sigmas)
    torch::Tensor latents;       // [N, 4, h, w] after the scheduler step
    torch::Tensor noise_pred;    // [N, 4, h, w] guided prediction
    torch::Tensor noise_cond;    // [N, 4, h, w]
    torch::Tensor noise_uncond;  // [N, 4, h, w] (undefined when guidance is off)
    torch::Tensor pred_x0;       // [N, 4, h, w] the scheduler's predicted clean latents
    // Only when GenerateRequest::record_attention: the conditional pass's cross-attention
    // probabilities per prompt token, averaged over heads and over every cross-attention layer
    // (each upsampled to the latent grid first): [77, h, w]. At each position they sum to 1.
    torch::Tensor attention;
    // The same maps per resolution level, finest first, each averaged over that level's layers and
    // kept at its own grid: [77, h_l, w_l] (SD 1.x at 512x512: 64, 32, 16 and 8 squared).
    std::vector<torch::Tensor> attention_levels;
};

class PipelineObserver {
public:
    virtual ~PipelineObserver() = default;
    virtual void on_tokens(const TokenizedPrompt& /*cond*/, const TokenizedPrompt& /*uncond*/) {}
    virtual void on_text_embeddings(const torch::Tensor& /*uncond_cond*/) {}  // [2, 77, D]
    virtual void on_initial_latents(const torch::Tensor& /*init*/) {}         // before init_noise_sigma
    virtual void on_timesteps(const torch::Tensor& /*timesteps*/, const torch::Tensor& /*sigmas*/) {}
    virtual void on_step(const StepEvent& /*e*/) {}
    virtual void on_image(const torch::Tensor& /*image*/) {}                  // [N, 3, H, W] in [0, 1]
    virtual void on_message(const std::string& /*text*/) {}                   // e.g. "fp16 VAE overflowed, redone in fp32"
    // Polled before every U-Net call; true stops the run with sdl::Cancelled.
    virtual bool cancel_requested() const { return false; }
};

} // namespace sdl
