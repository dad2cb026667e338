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

// An AutoencoderKL config for VAE weights in diffusers names, from their shapes (SD 1.x defaults for
// what shapes cannot tell: 32 norm groups, scaling factor 0.18215).
nlohmann::json infer_vae_config(const std::string& path, const ComponentFiles& vae);

// The VAE of a file in the original names: the keys under prefix ("first_stage_model." in a
// checkpoint, "" in a standalone VAE file such as vae-ft-mse-840000-ema-pruned) renamed to diffusers
// names, config inferred from shapes. Its training state (loss.*, model_ema.decay,
// model_ema.num_updates) and, in a checkpoint, the other networks are listed in `ignored`; any other
// key is an error naming it.
ComponentFiles open_original_vae(const std::shared_ptr<SafetensorsFile>& file, const std::string& prefix);

// Opens a .safetensors single-file checkpoint; configs are inferred from tensor shapes with SD 1.x
// defaults for what shapes cannot tell (attention_head_dim 8, 32 norm groups, scaling 0.18215).
ModelFiles open_single_file(const std::string& path);

} // namespace sdl
