#pragma once
// Single-file CompVis checkpoints ("model.diffusion_model.*", "first_stage_model.*",
// "cond_stage_model.transformer.*", as most downloads are): the one table that renames their keys
// to diffusers names, and the loader that infers configs from tensor shapes.
#include "core/io/model_files.h"

#include <string>

namespace sdl {

enum class SingleFilePart { TextEncoder, Unet, Vae, Ignored };

struct SingleFileName {
    SingleFilePart part;
    std::string name;                // diffusers name; the original key when ignored
    bool conv1x1_to_linear = false;  // VAE mid-block attention: [C, C, 1, 1] in the file, [C, C] in diffusers
};

// The block counts the renaming depends on (CompVis numbers blocks flat, diffusers nests them).
struct SingleFileGeometry {
    int unet_layers_per_block = 2;
    int vae_levels = 4;  // decoder "up.i" is diffusers "up_blocks.(levels-1-i)"
};

// Throws sdl::Error for a key inside a model prefix that has no diffusers counterpart; keys outside
// the three model prefixes (betas, alphas_cumprod, model_ema.*, ...) are SingleFilePart::Ignored.
SingleFileName translate_single_file_key(const std::string& key, const SingleFileGeometry& g);

// Opens a .safetensors single-file checkpoint; configs are inferred from tensor shapes with SD 1.x
// defaults for what shapes cannot tell (attention_head_dim 8, 32 norm groups, scaling 0.18215).
ModelFiles open_single_file(const std::string& path);

} // namespace sdl
