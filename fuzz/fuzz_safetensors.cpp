// The safetensors reader on arbitrary bytes: anything malformed must end in sdl::Error, and every
// view of an accepted file must have the size its shape needs and lie inside the data section.
#include "core/io/safetensors.h"
#include "fuzz/harness.h"
#include "fuzz/mem_file.h"

#include <algorithm>
#include <cstring>

using namespace sdl;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    const fuzz::MemFile file(data, size);
    fuzz::accepts([&] {
        const auto f = SafetensorsFile::open(file.path());
        uint64_t header_len = 0;
        std::memcpy(&header_len, data, 8);  // open() succeeded, so there are at least 8 bytes
        const uint64_t data_section = size - 8 - header_len;
        const uint8_t* lo = nullptr;
        const uint8_t* hi = nullptr;
        unsigned sum = 0;
        for (const auto& [name, v] : f->tensors()) {
            fuzz::check(v.name == name, "view name differs from its key");
            fuzz::check(static_cast<uint64_t>(v.numel()) * dtype_size(v.dtype) == v.nbytes,
                        "nbytes != numel x dtype size");
            fuzz::check(f->contains(name) && f->at(name).data == v.data, "at()/contains() disagree with tensors()");
            if (!v.nbytes)
                continue;
            lo = lo ? std::min(lo, v.data) : v.data;
            hi = hi ? std::max(hi, v.data + v.nbytes) : v.data + v.nbytes;
            // Reading every byte faults on a view that reaches past the mapping.
            for (size_t i = 0; i < v.nbytes; ++i)
                sum += v.data[i];
        }
        // The data section is contiguous, so all views together span at most its size.
        fuzz::check(!lo || static_cast<uint64_t>(hi - lo) <= data_section, "views span more than the data section");
        for (const auto& [key, value] : f->metadata())
            sum += static_cast<unsigned>(key.size() + value.size());
        fuzz::sink(sum);
    });
    return 0;
}
