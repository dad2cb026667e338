#pragma once
// Finds and opens a Stable Diffusion 1.x model given one path, whatever its layout:
//  - a diffusers folder (model_index.json; per component config.json + weights, *.fp16 variants,
//    sharded *.safetensors.index.json; text-encoder keys with or without "text_model.");
//  - a single-file CompVis checkpoint (.safetensors), translated to diffusers names by the one
//    table in core/io/single_file.cpp, configs inferred from tensor shapes.
//  - a Hugging Face repo id (owner/name[@revision]) already in the hub cache, opened offline as the
//    diffusers folder of its snapshot (core/io/hf_cache.h).
// Nothing is converted to torch here: components expose views into the mapped files, keyed by
// diffusers/transformers state-dict names.
#include "core/io/safetensors.h"

#include <nlohmann/json.hpp>

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace sdl {

struct ComponentFiles {
    std::string name;          // "text_encoder", "unet", "vae"
    nlohmann::json config;     // diffusers/transformers config.json (inferred for single files)
    std::map<std::string, TensorView> tensors;  // diffusers names -> views
    // Keys present in the files but deliberately ignored (position_ids, betas, model_ema.*, ...).
    std::vector<std::string> ignored;
    std::vector<std::shared_ptr<SafetensorsFile>> files;  // keep the mappings alive
    std::string spelling;      // how the keys were written where a component has several spellings (the VAE)
};

struct TokenizerFiles {
    std::string vocab_json;      // empty when absent
    std::string merges_txt;
    std::string tokenizer_json;
};

enum class ModelLayout { DiffusersFolder, SingleFile };

struct ModelFiles {
    std::string path;
    ModelLayout layout;
    ComponentFiles text_encoder, unet, vae;
    nlohmann::json scheduler_config;   // {} when the model has none (single files)
    TokenizerFiles tokenizer;          // all empty: use the bundled vocabulary
    std::string repo_id;               // "owner/name[@revision]" when opened from the hub cache, else empty
};

// Throws sdl::Error with a message that says what the path is and what is missing or unsupported
// (pickles, inpainting U-Nets, SD 2.x/SDXL single files, ...).
ModelFiles open_model_files(const std::string& path);

const char* layout_name(ModelLayout l);  // "diffusers", "single-file"

// One component folder (config.json + weights: plain, .fp16 variant or sharded); name labels it in
// errors. A VAE's keys are normalised to today's diffusers names (see core/io/vae_files.h).
ComponentFiles open_component_folder(const std::string& dir, const std::string& name);

// Throws sdl::Error, with how to convert it, when path is a PyTorch pickle (by extension or content).
void refuse_if_pickle(const std::string& path);

} // namespace sdl
