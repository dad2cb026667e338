#pragma once
// Textual-inversion embeddings as people have them, in safetensors, one embedding per file:
//  - kohya (sd-scripts): {"emb_params": [n, D]}; the trigger is the file's stem;
//  - A1111, saved as safetensors: {"string_to_param.*": [n, D]}; the trigger is the file's stem;
//  - diffusers (learned_embeds.safetensors): {"<token>": [D] or [n, D]}; the trigger is the key.
// Refused, saying why: pickles (.pt/.bin, with how to convert them), other families' embeddings
// (SD 2.x's 1024-wide vectors, SDXL's clip_g/clip_l pair), empty or non-finite vectors, more
// vectors than a prompt holds, and files with any other keys.
#include <torch/torch.h>

#include <string>
#include <vector>

namespace sdl {

struct EmbeddingFile {
    std::string path;
    std::string trigger;
    std::string format;     // "kohya (emb_params)", "a1111 (string_to_param)", "diffusers (learned_embeds)"
    torch::Tensor vectors;  // [n, D] float32, on the CPU
};

// Throws sdl::Error naming the file and what is wrong with it.
EmbeddingFile read_embedding_file(const std::string& path);

// Each of paths, in order. hidden_size > 0 (a loaded text encoder's width) also refuses vectors of
// another width; 0 (no model, e.g. tokenizing) checks only the family. Throws sdl::Error naming both
// files when two have the same trigger (ignoring ASCII case).
std::vector<EmbeddingFile> read_embedding_files(const std::vector<std::string>& paths, int64_t hidden_size);

} // namespace sdl
