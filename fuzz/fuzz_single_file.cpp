// Opening a single-file CompVis checkpoint: the key translation table and the config inference from
// shapes. The input is a tensor list (fuzz/tensor_list.h).
#include "core/io/model_files.h"
#include "fuzz/harness.h"
#include "fuzz/tensor_list.h"

using namespace sdl;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    const auto made = fuzz::tensor_list_file(data, size);
    if (!made)
        return 0;
    const fuzz::MemFile& file = *made;

    ModelFiles m;
    try {
        m = open_model_files(file.path());
    } catch (const Error& e) {
        // The pickle sniffing must never refuse a file that is valid safetensors.
        const std::string refused = file.path() + ": is a PyTorch pickle";
        if (std::string(e.what()).rfind(refused, 0) == 0 && fuzz::accepts([&] { SafetensorsFile::open(file.path()); }))
            fuzz::fail("a valid safetensors file was refused as a pickle:", e.what());
        return 0;
    } catch (const std::exception& e) {
        fuzz::fail("exception other than sdl::Error:", e.what());
    }
    fuzz::check(m.layout == ModelLayout::SingleFile, "a single file opened as a folder");
    for (const ComponentFiles* c : {&m.text_encoder, &m.unet, &m.vae}) {
        fuzz::check(!c->tensors.empty(), "an opened component has no tensors");
        fuzz::check(c->config.is_object(), "an opened component has no config");
        for (const auto& [name, v] : c->tensors) {
            fuzz::check(v.name == name, "view name differs from its diffusers key");
            fuzz::check(static_cast<uint64_t>(v.numel()) * dtype_size(v.dtype) == v.nbytes,
                        "renamed view: nbytes != numel x dtype size");
        }
    }
    return 0;
}
