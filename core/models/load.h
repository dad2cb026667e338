#pragma once
// One network from an opened model: config parsed and validated, module built, weights loaded.
#include "core/io/model_files.h"
#include "core/models/autoencoder_kl.h"
#include "core/models/clip_text_model.h"
#include "core/models/unet_2d_condition.h"

#include <torch/torch.h>

#include <string>
#include <vector>

namespace sdl {

ClipTextModel load_text_encoder(const ComponentFiles& files, torch::Dtype dtype, torch::Device device);
UNet2DConditionModel load_unet(const ComponentFiles& files, torch::Dtype dtype, torch::Device device);
AutoencoderKL load_vae(const ComponentFiles& files, torch::Dtype dtype, torch::Device device);
// The encoder side in one dtype, the decoder side in another (AutoencoderKLImpl::set_dtypes).
AutoencoderKL load_vae(const ComponentFiles& files, torch::Dtype encoder_side, torch::Dtype decoder_side,
                       torch::Device device);

// A VAE ready to run for an SD 1.x model: the model's own or one swapped in (core/io/vae_files.h).
struct LoadedVae {
    std::string label;                  // "model's VAE" or the swapped-in VAE's name
    std::string path;                   // "" for the model's own
    std::string spelling;               // how its keys were written
    AutoencoderKL vae{nullptr};
    double scaling_factor = 0.18215;    // always the model's: latents are the U-Net's, whatever decodes them
    std::vector<std::string> warnings;
};

// model: the SD 1.x model (path or repo id) whose scaling factor applies and whose own VAE vae == ""
// names; with model == "" the scaling factor is SD 1.x's 0.18215 and vae must be given.
LoadedVae load_vae_for(const std::string& model, const std::string& vae, torch::Dtype dtype, torch::Device device);
LoadedVae load_vae_for(const std::string& model, const std::string& vae, torch::Dtype encoder_side,
                       torch::Dtype decoder_side, torch::Device device);

} // namespace sdl
