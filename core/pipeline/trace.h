#pragma once
// A run saved as one safetensors file (the CLI's --trace, the GUI's "Save run"), readable with no
// model loaded. Keys: init [N,4,h,w], steps [S,4,h,w], noise_pred [S,4,h,w], pred_x0 [S,4,h,w],
// timesteps [S], sigmas [S+1], text_embeddings [2,77,D] (uncond, cond), input_ids [2,77],
// image [1,3,H,W] in [0,1]; attention [S,77,h,w] when the run recorded cross-attention maps; settings as
// string metadata.
#include <torch/torch.h>

#include <map>
#include <string>

namespace sdl {

struct Trace {
    torch::Tensor init, steps, noise_pred, pred_x0, timesteps, sigmas, text_embeddings, input_ids, image, attention;
    std::map<std::string, std::string> settings;  // prompt, negative_prompt, steps, guidance, seed, ...
};

void write_trace(const std::string& path, const Trace& trace);  // atomic
Trace read_trace(const std::string& path);                       // throws sdl::Error naming missing keys

} // namespace sdl
