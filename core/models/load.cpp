#include "core/models/load.h"

#include "core/io/vae_files.h"
#include "core/models/weights.h"
#include "core/util/error.h"

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

AutoencoderKL load_vae(const ComponentFiles& files, torch::Dtype encoder_side, torch::Dtype decoder_side,
                       torch::Device device) {
    // Read in fp32 when the sides differ, so that neither passes through a 16-bit type it does not keep.
    auto vae = load_vae(files, encoder_side == decoder_side ? encoder_side : torch::kFloat, device);
    vae->set_dtypes(encoder_side, decoder_side);
    return vae;
}

LoadedVae load_vae_for(const std::string& model, const std::string& vae, torch::Dtype dtype, torch::Device device) {
    return load_vae_for(model, vae, dtype, dtype, device);
}

LoadedVae load_vae_for(const std::string& model, const std::string& vae, torch::Dtype encoder_side,
                       torch::Dtype decoder_side, torch::Device device) {
    LoadedVae out;
    if (!model.empty()) {
        ModelFiles m = open_model_files(model);
        out.scaling_factor = AutoencoderKLConfig::from_json(m.vae.config).scaling_factor;
        if (vae.empty()) {
            out.label = "model's VAE";
            out.spelling = m.vae.spelling;
            out.vae = load_vae(m.vae, encoder_side, decoder_side, device);
            return out;
        }
    } else if (vae.empty()) {
        throw UsageError("no VAE to load: give a model or a VAE");
    }
    VaeFiles v = open_vae_files(vae);
    v.files.config["scaling_factor"] = out.scaling_factor;
    out.label = v.name;
    out.path = vae;
    out.spelling = vae_spelling_name(v.spelling);
    out.warnings = std::move(v.warnings);
    out.vae = load_vae(v.files, encoder_side, decoder_side, device);
    return out;
}

} // namespace sdl
