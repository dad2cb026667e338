// Opening a single-file CompVis checkpoint: the key translation table and the config inference from
// shapes. The safetensors byte format has its own target, so here the input is a readable list of
// tensors, one per line: "KEY DTYPE DIM...". The harness writes a well-formed file from it (tensor
// bytes are sparse zeros), so mutations explore names and shapes instead of breaking offsets.
#include "core/io/model_files.h"
#include "fuzz/harness.h"
#include "fuzz/mem_file.h"

#include <nlohmann/json.hpp>

#include <cstring>
#include <sstream>

using namespace sdl;

namespace {

// Sparse, so only address space; bounded so a mutated dimension cannot ask for terabytes.
constexpr uint64_t kMaxDataBytes = uint64_t{1} << 32;

size_t element_size(const std::string& dtype) {
    if (dtype == "F32" || dtype == "I32")
        return 4;
    if (dtype == "F16" || dtype == "BF16")
        return 2;
    if (dtype == "I64")
        return 8;
    return 1;  // a dtype the reader refuses; still worth writing to see that it does
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    std::istringstream lines(std::string(reinterpret_cast<const char*>(data), size));
    nlohmann::json header = nlohmann::json::object();
    uint64_t offset = 0;
    for (std::string line; std::getline(lines, line);) {
        std::istringstream words(line);
        std::string key, dtype;
        if (!(words >> key >> dtype))
            continue;
        std::vector<uint64_t> shape;
        uint64_t bytes = element_size(dtype);
        for (uint64_t d; words >> d;) {
            if (d > kMaxDataBytes || (d && bytes > kMaxDataBytes / d))
                return 0;
            shape.push_back(d);
            bytes *= d;
        }
        if (offset + bytes > kMaxDataBytes)
            return 0;
        header[key] = {{"dtype", dtype}, {"shape", shape}, {"data_offsets", {offset, offset + bytes}}};
        offset += bytes;
    }
    // Keys are arbitrary bytes; JSON wants UTF-8, and the replacement keeps the file readable.
    const std::string text = header.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    std::vector<uint8_t> head(8 + text.size());
    const uint64_t len = text.size();
    std::memcpy(head.data(), &len, 8);
    std::memcpy(head.data() + 8, text.data(), text.size());
    const fuzz::MemFile file(head.data(), head.size(), head.size() + offset);

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
