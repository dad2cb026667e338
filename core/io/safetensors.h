#pragma once
// safetensors: an 8-byte little-endian header length, a JSON header, then raw tensor bytes.
// The reader memory-maps the file and validates the whole header before any tensor is touched.
// This header is torch-free; core/io/tensor_io.h converts views to torch tensors.
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace sdl {

enum class DType { F32, F16, BF16, I64, I32 };

const char* dtype_name(DType t);   // "F32", "F16", ...
size_t dtype_size(DType t);

struct TensorView {
    std::string name;
    DType dtype;
    std::vector<int64_t> shape;
    const uint8_t* data = nullptr;  // points into the mapping; valid while the file is alive
    size_t nbytes = 0;
    int64_t numel() const;
};

// Lets the kernel drop the view's pages from this process' memory once they have been copied out
// (loading sd15 into fp32 would otherwise also keep the whole 2 GB mapping resident). The view
// stays valid: its pages are read from the file again if touched.
void release_pages(const TensorView& v);

class SafetensorsFile {
public:
    // Throws sdl::Error naming the file and the problem (truncated, bad JSON, header length past
    // the end, offsets out of range or overlapping, unknown dtype with the tensor's name, ...).
    static std::shared_ptr<SafetensorsFile> open(const std::string& path);
    ~SafetensorsFile();
    SafetensorsFile(const SafetensorsFile&) = delete;
    SafetensorsFile& operator=(const SafetensorsFile&) = delete;

    const std::string& path() const { return path_; }
    const std::map<std::string, TensorView>& tensors() const { return tensors_; }
    const std::map<std::string, std::string>& metadata() const { return metadata_; }
    const TensorView& at(const std::string& name) const;  // throws naming file and key
    bool contains(const std::string& name) const { return tensors_.count(name) != 0; }

private:
    SafetensorsFile() = default;
    std::string path_;
    void* map_ = nullptr;
    size_t map_size_ = 0;
    std::map<std::string, TensorView> tensors_;
    std::map<std::string, std::string> metadata_;
};

// One tensor to write: bytes already in the target dtype, little-endian.
struct TensorBlob {
    std::string name;
    DType dtype;
    std::vector<int64_t> shape;
    const void* data;
    size_t nbytes;
};

// Writes atomically (temporary file + rename) so a crash never leaves a half-written file.
void write_safetensors(const std::string& path, const std::vector<TensorBlob>& tensors,
                       const std::map<std::string, std::string>& metadata = {});

// The streaming form, for files too large to hold in memory twice (make-model's sd15 is ~2 GB):
// the header is written from the specs, then fill(i, out) is called once per spec, in order, to
// put spec i's bytes (numel x dtype size, little-endian) into out. Same atomicity as above.
struct TensorSpec {
    std::string name;
    DType dtype;
    std::vector<int64_t> shape;
};
using FillTensor = std::function<void(size_t index, uint8_t* out)>;
void write_safetensors_streamed(const std::string& path, const std::vector<TensorSpec>& specs,
                                const FillTensor& fill,
                                const std::map<std::string, std::string>& metadata = {});

} // namespace sdl
