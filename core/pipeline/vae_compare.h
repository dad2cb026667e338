#pragma once
// The article's VAE round trip across several VAEs: one image encoded and decoded by each, or one set
// of latents (a generation's final step) decoded by each. Each VAE is loaded for the comparison alone,
// so a pipeline's own VAE is left as it is.
#include "core/models/load.h"
#include "core/pipeline/pipeline.h"

#include <string>
#include <vector>

namespace sdl {

struct VaeResult {
    std::string label;              // "model's VAE" or the VAE's name
    std::string path;               // "" for the model's own VAE
    std::string spelling;           // how its keys were written
    torch::Tensor image;            // [3, H, W] in [0, 1], CPU float32
    torch::Tensor difference;       // [H, W] mean over RGB of |reference - image|, in [0, 1]
    torch::Tensor latents;          // [4, h, w] scaled latents (round trips only)
    double psnr = 0;                // dB, against the reference
    double ssim = 0;
    double max_error = 0;           // in 8-bit levels
    double mean_error = 0;          // mean |reference - image|, in [0, 1] units
    double seconds = 0;             // this VAE's encode (round trips) and decode, wall clock
    std::vector<double> channel_mean, channel_std;  // of the scaled latents, per channel (round trips only)
    std::vector<std::string> warnings;              // from opening that VAE or decoding with it
};

// image [1, 3, H, W] in [-1, 1] (H, W multiples of 8). Each result is measured against the original.
std::vector<VaeResult> compare_vae_round_trips(const std::vector<LoadedVae>& vaes, const torch::Tensor& image);

// latents [1, 4, h, w], already multiplied by the scaling factor (as a generation's final step). Each
// result is measured against the first VAE's decode (the first result: 0 error, infinite PSNR).
std::vector<VaeResult> decode_with_vaes(const std::vector<LoadedVae>& vaes, const torch::Tensor& latents);

// The VAEs to compare for the model sd runs, in its dtype and on its device: "" is the model's own.
std::vector<LoadedVae> load_vaes_for(const StableDiffusion& sd, const std::vector<std::string>& vaes);

} // namespace sdl
