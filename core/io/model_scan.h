#pragma once
// The models already on this computer: the Hugging Face hub cache and the folders other tools keep
// checkpoints in (AUTOMATIC1111's models/Stable-diffusion, ComfyUI's models/checkpoints, ...).
// Only configs and safetensors headers are read, so listing hundreds of gigabytes takes moments;
// pickles are listed by name and never opened, other model families are listed as what they are.
#include <nlohmann/json.hpp>

#include <cstdint>
#include <string>
#include <vector>

namespace sdl {

struct FoundModel {
    std::string id;      // hub cache: what --model accepts ("owner/name", "@<commit>" without refs/main)
    std::string path;    // the folder or file (hub: the snapshot folder)
    std::string layout;  // "diffusers", "single-file", "hub-cache diffusers", "hub-cache files"
    // "sd1", "sd1-inpainting", "sd2", "sdxl", "vae", "lora", "text-encoder", "pickle", "unknown".
    std::string family;
    uint64_t size_bytes = 0;  // on disk; for the hub, the blobs the snapshot links to, each once
    std::string precision;    // floating tensors: "fp32", "fp16", "bf16", "mixed"; empty when unread
    bool complete = false;    // every file a pipeline of its family needs is there and readable
    std::vector<std::string> missing;  // e.g. "unet weights", "vae/config.json", a broken link
};

// Hub repos first (when hub_cache), then each dir: a diffusers folder or checkpoint file given
// directly, or the diffusers folders, .safetensors and .ckpt files in it and in its subfolders (one
// level down). Throws sdl::Error for a dir that does not exist; an absent hub cache lists nothing.
std::vector<FoundModel> find_models(const std::vector<std::string>& dirs, bool hub_cache);

nlohmann::json to_json(const FoundModel& m);

} // namespace sdl
