#pragma once
// Targets that fuzz how a file's tensor names and shapes are read (not the safetensors byte format,
// which has its own target) take a readable list, one tensor per line: "KEY DTYPE DIM...". This
// writes a well-formed safetensors file from it (tensor bytes are sparse zeros), so mutations explore
// names and shapes instead of breaking offsets.
#include "fuzz/mem_file.h"

#include <nlohmann/json.hpp>

#include <cstring>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

namespace sdl::fuzz {

// The file for the list in data, or null when a mutated dimension asks for more than the bound.
inline std::unique_ptr<MemFile> tensor_list_file(const uint8_t* data, size_t size) {
    // Sparse, so only address space; bounded so a mutated dimension cannot ask for terabytes.
    constexpr uint64_t kMaxDataBytes = uint64_t{1} << 32;
    const auto element_size = [](const std::string& dtype) -> uint64_t {
        if (dtype == "F32" || dtype == "I32")
            return 4;
        if (dtype == "F16" || dtype == "BF16")
            return 2;
        if (dtype == "I64")
            return 8;
        return 1;  // a dtype the reader refuses; still worth writing to see that it does
    };
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
                return nullptr;
            shape.push_back(d);
            bytes *= d;
        }
        if (offset + bytes > kMaxDataBytes)
            return nullptr;
        header[key] = {{"dtype", dtype}, {"shape", shape}, {"data_offsets", {offset, offset + bytes}}};
        offset += bytes;
    }
    // Keys are arbitrary bytes; JSON wants UTF-8, and the replacement keeps the file readable.
    const std::string text = header.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    std::vector<uint8_t> head(8 + text.size());
    const uint64_t len = text.size();
    std::memcpy(head.data(), &len, 8);
    std::memcpy(head.data() + 8, text.data(), text.size());
    return std::make_unique<MemFile>(head.data(), head.size(), head.size() + offset);
}

} // namespace sdl::fuzz
