#pragma once
// One network from an opened model: config parsed and validated, module built, weights loaded.
#include "core/io/model_files.h"
#include "core/models/autoencoder_kl.h"
#include "core/models/clip_text_model.h"
#include "core/models/unet_2d_condition.h"

#include <torch/torch.h>

namespace sdl {

ClipTextModel load_text_encoder(const ComponentFiles& files, torch::Dtype dtype, torch::Device device);
UNet2DConditionModel load_unet(const ComponentFiles& files, torch::Dtype dtype, torch::Device device);
AutoencoderKL load_vae(const ComponentFiles& files, torch::Dtype dtype, torch::Device device);

} // namespace sdl
