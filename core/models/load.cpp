#include "core/models/load.h"

#include "core/models/weights.h"

namespace sdl {
namespace {

template <typename Model, typename Config>
Model load(const ComponentFiles& files, torch::Dtype dtype, torch::Device device) {
    Model m(Config::from_json(files.config));
    load_weights(*m, files, dtype, device);
    m->eval();
    return m;
}

} // namespace

ClipTextModel load_text_encoder(const ComponentFiles& files, torch::Dtype dtype, torch::Device device) {
    return load<ClipTextModel, ClipTextConfig>(files, dtype, device);
}

UNet2DConditionModel load_unet(const ComponentFiles& files, torch::Dtype dtype, torch::Device device) {
    return load<UNet2DConditionModel, UNet2DConditionConfig>(files, dtype, device);
}

AutoencoderKL load_vae(const ComponentFiles& files, torch::Dtype dtype, torch::Device device) {
    return load<AutoencoderKL, AutoencoderKLConfig>(files, dtype, device);
}

} // namespace sdl
