#pragma once
// Side-by-side runs: the same seed and settings with exactly one of them varied (two prompts, a strip of
// guidance scales, two schedulers, two step counts, or VAEs: one generation whose final latents each VAE
// decodes), and how far apart the runs are at every step.
#include "core/pipeline/pipeline.h"

#include <string>
#include <vector>

namespace sdl {

struct Comparison {
    std::string vary;                       // "prompt", "guidance", "scheduler", "steps", "vae" or "lora"
    std::vector<std::string> labels;        // one per run: "guidance 7.5", "scheduler euler_a", ...
    std::vector<GenerateRequest> requests;  // the base request with that one setting replaced; count 1
    std::vector<std::string> vaes;          // vary "vae": per run, the VAE's path ("" for the model's own)
    std::vector<double> lora_strengths;     // vary "lora": per run, the strength of the one LoRA applied
};

// Throws UsageError naming what cannot be compared: an unknown `vary`, fewer than two values, a value
// that does not parse (guidance "abc", steps 0, an unknown scheduler). VAE values are paths, or "model"
// for the model's own VAE. LoRA values are strengths for the one LoRA applied to the model (any finite
// number); run_comparison applies each in turn and puts back what was applied before.
Comparison make_comparison(const GenerateRequest& base, const std::string& vary,
                           const std::vector<std::string>& values);

// Receives every run's pipeline events in turn; on_run() announces which run the next events belong to.
class ComparisonObserver : public PipelineObserver {
public:
    virtual void on_run(int /*index*/, const std::string& /*label*/) {}
};

struct ComparisonResult {
    std::vector<torch::Tensor> images;  // per run: [3, H, W] in [0, 1]
    // [run][step of that run]: mean |latents - run 0's latents at the matching step| (0 for run 0).
    std::vector<std::vector<double>> latent_difference;
    // [run][step]: where that difference is, [h, w] float32, the mean over the four channels (zeros for run 0).
    std::vector<std::vector<torch::Tensor>> difference_maps;
    std::vector<double> image_difference;  // per run: mean |image - run 0's image|, in [0, 1] units
    std::vector<double> seconds;           // per run, wall clock
};

ComparisonResult run_comparison(StableDiffusion& sd, const Comparison& comparison, ComparisonObserver& observer);

// The step of a run of `other_steps` steps at the same point of the schedule as step k (0-based) of a run of
// `steps` steps, so runs with different step counts are compared at equal progress.
int matching_step(int k, int steps, int other_steps);

} // namespace sdl
