// Opening a standalone VAE file: the original (CompVis) names with or without first_stage_model., both
// diffusers attention spellings, 1x1-convolution projections, and the refusal of what is no VAE. The
// input is a tensor list (fuzz/tensor_list.h).
#include "core/io/vae_files.h"
#include "fuzz/harness.h"
#include "fuzz/tensor_list.h"

#include <regex>

using namespace sdl;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    const auto made = fuzz::tensor_list_file(data, size);
    if (!made)
        return 0;
    VaeFiles v;
    if (!fuzz::accepts([&] { v = open_vae_files(made->path()); }))
        return 0;
    fuzz::check(!v.files.tensors.empty(), "an opened VAE has no tensors");
    fuzz::check(v.files.config.is_object(), "an opened VAE has no config");
    for (const auto& [name, view] : v.files.tensors) {
        fuzz::check(view.name == name, "view name differs from its diffusers key");
        fuzz::check(static_cast<uint64_t>(view.numel()) * dtype_size(view.dtype) == view.nbytes,
                    "renamed view: nbytes != numel x dtype size");
        // Only a projection directly under a mid-block attention is a 2022 name; elsewhere such a key
        // is just unknown, for load_weights to refuse.
        static const std::regex old_name(R"(^(encoder|decoder)\.mid_block\.attentions\.[^.]+\.(query|key|value|proj_attn)\.)");
        fuzz::check(!std::regex_search(name, old_name), "a 2022 attention name survived normalisation");
    }
    return 0;
}
