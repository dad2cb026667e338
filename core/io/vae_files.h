#pragma once
// VAEs as people have them, in either of the two diffusers spellings of the mid-block attention and
// in the original (CompVis) names:
//  - the diffusers names since 2023: <side>.mid_block.attentions.0.to_q|to_k|to_v|to_out.0;
//  - the 2022 names that the fp32 VAE files of the SD 1.4/1.5 hub folders still hold:
//    <side>.mid_block.attentions.0.query|key|value|proj_attn;
//  - the original names: encoder.down.0.block.0.conv1.weight, mid.attn_1.q.weight, ... with or without
//    "first_stage_model." (vae-ft-mse-840000-ema-pruned.safetensors and the VAE inside every
//    single-file checkpoint).
// Attention projections may be stored [C, C] or as 1x1 convolutions [C, C, 1, 1].
#include "core/io/model_files.h"

#include <string>
#include <vector>

namespace sdl {

enum class VaeSpelling { Diffusers, Diffusers2022, Original };

const char* vae_spelling_name(VaeSpelling s);  // "diffusers", "diffusers (2022 attention names)", "original (CompVis)"

// Renames a diffusers VAE's 2022 attention keys to today's and flattens 1x1-convolution projection
// weights to [C, C], in place. Returns the spelling found; throws sdl::Error naming the key when the
// two spellings are mixed.
VaeSpelling normalise_vae_names(ComponentFiles& vae);

// A VAE to use instead of a model's own.
struct VaeFiles {
    ComponentFiles files;               // diffusers names; config from config.json or inferred from shapes
    std::string path;                   // as given
    std::string name;                   // for labels and PNG parameters: the file's or folder's name
    std::string source;                 // "VAE file", "diffusers VAE folder", "diffusers model folder",
                                        // "single-file checkpoint"
    VaeSpelling spelling = VaeSpelling::Diffusers;
    std::vector<std::string> warnings;  // e.g. a config trained for another model family
};

// path: a .safetensors VAE file (original or diffusers names), a diffusers VAE folder (config.json +
// diffusion_pytorch_model[.fp16].safetensors, or sharded), a diffusers model folder (its vae/), or a
// single-file checkpoint (its first_stage_model.*). Throws sdl::Error for anything else, saying what
// the file looks like (a U-Net, a LoRA, a text encoder, a pickle, ...).
VaeFiles open_vae_files(const std::string& path);

} // namespace sdl
