#include "core/io/vae_files.h"

#include "core/io/hf_cache.h"
#include "core/io/single_file.h"
#include "core/util/error.h"

#include <algorithm>
#include <cmath>
#include <filesystem>

namespace sdl {

namespace fs = std::filesystem;

namespace {

bool starts_with(const std::string& s, const std::string& prefix) { return s.compare(0, prefix.size(), prefix) == 0; }

bool ends_with(const std::string& s, const std::string& suffix) {
    return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// The 2022 attention names (diffusers' AttentionBlock before it became Attention) and today's.
struct AttentionName {
    const char* old_name;
    const char* new_name;
};
constexpr AttentionName kAttentionNames[] = {
    {"query", "to_q"}, {"key", "to_k"}, {"value", "to_v"}, {"proj_attn", "to_out.0"}};

// "<side>.mid_block.attentions.N." of a key, or "" when the key is not in a mid-block attention.
std::string attention_prefix(const std::string& key) {
    for (const char* side : {"encoder.", "decoder."}) {
        const std::string head = std::string(side) + "mid_block.attentions.";
        if (!starts_with(key, head))
            continue;
        const size_t dot = key.find('.', head.size());
        if (dot != std::string::npos)
            return key.substr(0, dot + 1);
    }
    return {};
}

// What a safetensors file that is not a VAE most likely is, from its keys.
std::string looks_like(const SafetensorsFile& f) {
    bool lora = false, lycoris = false, unet = false, text = false;
    for (const auto& [k, v] : f.tensors()) {
        lora |= k.find("lora_") != std::string::npos || k.find(".lora.") != std::string::npos ||
                k.find("lora_A") != std::string::npos;
        lycoris |= k.find("hada_w") != std::string::npos || k.find("lokr_w") != std::string::npos;
        unet |= starts_with(k, "down_blocks.") || starts_with(k, "conv_in.") || starts_with(k, "time_embedding.") ||
                starts_with(k, "input_blocks.") || starts_with(k, "model.diffusion_model.");
        text |= starts_with(k, "text_model.") || starts_with(k, "cond_stage_model.") ||
                starts_with(k, "transformer.text_model.");
    }
    if (lora || lycoris)
        return std::string("a ") + (lycoris ? "LyCORIS network" : "LoRA") +
               ", which is applied on top of a model's weights, not a VAE";
    if (unet)
        return "a U-Net, not a VAE";
    if (text)
        return "a CLIP text encoder, not a VAE";
    std::string keys = "its first keys are";
    int n = 0;
    for (auto it = f.tensors().begin(); it != f.tensors().end() && n < 3; ++it, ++n)
        keys += std::string(n ? ", " : " ") + "'" + it->first + "'";
    return "not a VAE (" + keys + ")";
}

bool any_key(const SafetensorsFile& f, const std::vector<std::string>& prefixes) {
    for (const auto& [k, v] : f.tensors())
        for (const auto& p : prefixes)
            if (starts_with(k, p))
                return true;
    return false;
}

VaeFiles open_vae_file(const std::string& path) {
    refuse_if_pickle(path);
    const auto file = SafetensorsFile::open(path);
    VaeFiles v;
    v.path = path;
    v.name = fs::path(path).filename().string();
    if (any_key(*file, {"conditioner.embedders.", "cond_stage_model.model."}))
        throw Error(path + ": this checkpoint is not Stable Diffusion 1.x (it has an SDXL or SD 2.x text encoder); "
                           "its VAE may expect another latent scale. Give an SD 1.x checkpoint or a VAE file");
    if (any_key(*file, {"first_stage_model."})) {
        v.source = "single-file checkpoint";
        v.files = open_original_vae(file, "first_stage_model.");
        v.spelling = VaeSpelling::Original;
        return v;
    }
    if (any_key(*file, {"encoder.down.", "decoder.up.", "encoder.mid.", "decoder.mid."})) {
        v.source = "VAE file";
        v.files = open_original_vae(file, "");
        v.spelling = VaeSpelling::Original;
        return v;
    }
    if (any_key(*file, {"encoder.down_blocks.", "decoder.up_blocks.", "encoder.mid_block.", "decoder.mid_block."})) {
        v.source = "VAE file";
        v.files.name = "vae";
        for (const auto& [k, view] : file->tensors())
            v.files.tensors.emplace(k, view);
        v.files.files.push_back(file);
        v.spelling = normalise_vae_names(v.files);
        v.files.spelling = vae_spelling_name(v.spelling);
        v.files.config = infer_vae_config(path, v.files);
        return v;
    }
    throw Error(path + ": cannot be used as a VAE: it looks like " + looks_like(*file));
}

VaeFiles open_vae_folder(const fs::path& dir) {
    VaeFiles v;
    v.path = dir.string();
    v.name = dir.filename().empty() ? dir.parent_path().filename().string() : dir.filename().string();
    if (fs::is_regular_file(dir / "model_index.json")) {
        ModelFiles m = open_model_files(dir.string());
        v.source = "diffusers model folder";
        v.files = std::move(m.vae);
    } else if (fs::is_regular_file(dir / "config.json")) {
        v.source = "diffusers VAE folder";
        v.files = open_component_folder(dir.string(), "vae");
    } else if (fs::is_regular_file(dir / "vae" / "config.json")) {
        v.source = "diffusers model folder";
        v.files = open_component_folder((dir / "vae").string(), "vae");
    } else {
        throw Error(dir.string() + ": not a VAE folder: expected config.json and diffusion_pytorch_model.safetensors "
                                   "(a diffusers VAE), or a model folder with vae/");
    }
    const auto cls = v.files.config.find("_class_name");
    if (cls != v.files.config.end() && cls->is_string() && *cls != "AutoencoderKL")
        throw Error(dir.string() + ": this folder holds a " + cls->get<std::string>() +
                    ", not a VAE (expected \"_class_name\": \"AutoencoderKL\")");
    const auto sf = v.files.config.find("scaling_factor");
    if (sf != v.files.config.end() && sf->is_number() && std::abs(sf->get<double>() - 0.18215) > 1e-6)
        v.warnings.push_back(v.name + ": its config declares scaling_factor " + sf->dump() +
                             ", so it was trained for another model family than SD 1.x (SDXL's is 0.13025); "
                             "it decodes with the SD 1.x model's 0.18215");
    v.spelling = v.files.spelling == vae_spelling_name(VaeSpelling::Diffusers2022) ? VaeSpelling::Diffusers2022
                                                                                    : VaeSpelling::Diffusers;
    return v;
}

// A VAE repo in the Hugging Face cache (stabilityai/sd-vae-ft-mse keeps config.json and the weights
// at its top level; a model repo has them under vae/).
VaeFiles open_hub_vae(const RepoId& repo) {
    const HubSnapshot snap = find_hub_snapshot(repo, hub_cache_dir());
    for (const fs::path& dir : {fs::path(snap.path), fs::path(snap.path) / "vae"}) {
        std::error_code ec;
        for (const auto& e : fs::directory_iterator(dir, ec))
            if (e.is_symlink() && !fs::exists(e.path()))
                throw Error(e.path().string() + ": the link points to " + fs::read_symlink(e.path()).string() +
                            ", which is missing: the download was interrupted or the cache cleaned by hand; run " +
                            repo.download_command());
    }
    VaeFiles v = open_vae_folder(snap.path);
    v.name = repo.text();
    return v;
}

} // namespace

const char* vae_spelling_name(VaeSpelling s) {
    switch (s) {
    case VaeSpelling::Diffusers: return "diffusers";
    case VaeSpelling::Diffusers2022: return "diffusers (2022 attention names)";
    case VaeSpelling::Original: return "original (CompVis)";
    }
    return "?";
}

VaeSpelling normalise_vae_names(ComponentFiles& vae) {
    std::map<std::string, TensorView> out;
    std::string old_key, new_key;  // one example of each spelling, for the mixed-spelling error
    for (const auto& [name, view] : vae.tensors) {
        TensorView v = view;
        const std::string prefix = attention_prefix(name);
        if (!prefix.empty()) {
            const std::string rest = name.substr(prefix.size());
            for (const auto& n : kAttentionNames) {
                const std::string old_name = n.old_name;
                const std::string new_name = n.new_name;
                if (starts_with(rest, old_name + ".")) {
                    v.name = prefix + new_name + rest.substr(old_name.size());
                    old_key = name;
                } else if (starts_with(rest, new_name + ".")) {
                    new_key = name;
                }
            }
            // Some conversions kept the projections as 1x1 convolutions.
            if (ends_with(v.name, ".weight") && !ends_with(v.name, "group_norm.weight") && v.shape.size() == 4 &&
                v.shape[2] == 1 && v.shape[3] == 1)
                v.shape.resize(2);
        }
        if (!out.emplace(v.name, v).second)
            throw Error((vae.files.empty() ? vae.name : vae.files.front()->path()) + ": the VAE holds '" + v.name +
                        "' twice (as '" + name + "' and in the other attention spelling)");
    }
    if (!old_key.empty() && !new_key.empty())
        throw Error((vae.files.empty() ? vae.name : vae.files.front()->path()) +
                    ": the VAE mixes the 2022 attention names ('" + old_key + "') with today's ('" + new_key + "')");
    vae.tensors = std::move(out);
    return old_key.empty() ? VaeSpelling::Diffusers : VaeSpelling::Diffusers2022;
}

VaeFiles open_vae_files(const std::string& path) {
    std::error_code ec;
    const auto st = fs::status(path, ec);
    const auto repo = fs::exists(st) ? std::nullopt : parse_repo_id(path);
    if (!fs::exists(st) && !repo)
        throw Error(path + ": no such VAE file or folder (expected a .safetensors VAE, a diffusers VAE folder, an "
                           "SD 1.x model whose VAE to use, or a Hugging Face repo id in the local cache)");
    VaeFiles v = repo ? open_hub_vae(*repo) : fs::is_directory(st) ? open_vae_folder(path) : open_vae_file(path);
    const auto latent = v.files.config.find("latent_channels");
    if (latent != v.files.config.end() && latent->is_number_integer() && *latent != 4)
        throw Error(path + ": this VAE has " + latent->dump() +
                    " latent channels; SD 1.x models use 4 (it belongs to another model family)");
    return v;
}

} // namespace sdl
