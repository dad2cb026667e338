// Reading a LoRA file: kohya in both U-Net namings, peft, the attention-processor spellings, alpha
// tensors, and the refusal of what is no plain SD 1.x LoRA. The input is a tensor list
// (fuzz/tensor_list.h); its values are zeros, so alphas read as 0.
#include "core/io/lora_files.h"
#include "fuzz/harness.h"
#include "fuzz/tensor_list.h"

#include <cmath>

using namespace sdl;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    const auto made = fuzz::tensor_list_file(data, size);
    if (!made)
        return 0;
    LoraFile f;
    if (!fuzz::accepts([&] { f = read_lora_file(made->path()); }))
        return 0;
    fuzz::check(!f.layers.empty(), "an accepted LoRA has no layers");
    fuzz::check(!f.format.empty(), "an accepted LoRA has no format");
    for (const auto& l : f.layers) {
        fuzz::check(!l.module.empty() && l.module.back() != '.', "a layer without a module name");
        fuzz::check(l.rank > 0 && l.down.shape[0] == l.rank && l.up.shape[1] == l.rank,
                    "the rank disagrees with the matrices");
        fuzz::check(l.down.shape.size() == l.up.shape.size(), "a 2-D matrix paired with a 4-D one");
        fuzz::check(std::isfinite(l.alpha) && std::isfinite(l.scale), "alpha or scale not finite");
        fuzz::check(l.network == LoraNetwork::Unet || l.module.rfind("text_model.", 0) == 0,
                    "a text-encoder layer outside text_model.");
    }
    return 0;
}
