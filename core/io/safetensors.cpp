#include "core/io/safetensors.h"

#include "core/util/error.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <limits>

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

// The format is little-endian; tensors are handed out as raw views, so a big-endian host would
// need byte swapping everywhere. No supported platform is big-endian.
static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "safetensors views assume a little-endian host");

namespace sdl {

namespace {

constexpr size_t kLengthBytes = 8;
// Far larger than any real header (sd15 is ~100 KB); refusing more keeps a corrupt length from
// making us parse gigabytes of tensor data as JSON.
constexpr uint64_t kMaxHeaderBytes = 100u << 20;

std::string sys_error() { return std::strerror(errno); }

bool parse_dtype(const std::string& s, DType& out) {
    static const std::pair<const char*, DType> table[] = {
        {"F32", DType::F32}, {"F16", DType::F16}, {"BF16", DType::BF16},
        {"I64", DType::I64}, {"I32", DType::I32}};
    for (const auto& [name, t] : table)
        if (s == name) {
            out = t;
            return true;
        }
    return false;
}

std::string shape_str(const std::vector<int64_t>& shape) {
    std::string s = "[";
    for (size_t i = 0; i < shape.size(); ++i)
        s += (i ? ", " : "") + std::to_string(shape[i]);
    return s + "]";
}

// numel x element size, or false on overflow / negative dims.
bool byte_size(const std::vector<int64_t>& shape, DType t, uint64_t& out) {
    uint64_t n = dtype_size(t);
    for (int64_t d : shape) {
        if (d < 0)
            return false;
        if (d != 0 && n > std::numeric_limits<uint64_t>::max() / static_cast<uint64_t>(d))
            return false;
        n *= static_cast<uint64_t>(d);
    }
    out = n;
    return true;
}

class Fd {
public:
    explicit Fd(int fd) : fd_(fd) {}
    ~Fd() {
        if (fd_ >= 0)
            ::close(fd_);
    }
    Fd(const Fd&) = delete;
    Fd& operator=(const Fd&) = delete;
    int get() const { return fd_; }
    int release() {
        const int f = fd_;
        fd_ = -1;
        return f;
    }

private:
    int fd_;
};

} // namespace

const char* dtype_name(DType t) {
    switch (t) {
    case DType::F32: return "F32";
    case DType::F16: return "F16";
    case DType::BF16: return "BF16";
    case DType::I64: return "I64";
    case DType::I32: return "I32";
    }
    return "?";
}

size_t dtype_size(DType t) {
    switch (t) {
    case DType::F32: return 4;
    case DType::F16: return 2;
    case DType::BF16: return 2;
    case DType::I64: return 8;
    case DType::I32: return 4;
    }
    return 0;
}

int64_t TensorView::numel() const {
    int64_t n = 1;
    for (int64_t d : shape)
        n *= d;
    return n;
}

void release_pages(const TensorView& v) {
    if (v.nbytes == 0)
        return;
    // Rounding outwards is safe: the mapping is private and never written, so a neighbour's
    // dropped page is simply re-read from the file.
    const auto page = static_cast<uintptr_t>(::sysconf(_SC_PAGESIZE));
    const auto begin = reinterpret_cast<uintptr_t>(v.data) & ~(page - 1);
    const auto end = (reinterpret_cast<uintptr_t>(v.data) + v.nbytes + page - 1) & ~(page - 1);
    ::madvise(reinterpret_cast<void*>(begin), end - begin, MADV_DONTNEED);
}

std::shared_ptr<SafetensorsFile> SafetensorsFile::open(const std::string& path) {
    Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (fd.get() < 0)
        throw Error(path + ": cannot open: " + sys_error());
    struct stat st {};
    if (::fstat(fd.get(), &st) != 0)
        throw Error(path + ": cannot stat: " + sys_error());
    if (!S_ISREG(st.st_mode))
        throw Error(path + ": not a regular file (expected a .safetensors file)");
    const auto size = static_cast<uint64_t>(st.st_size);
    if (size < kLengthBytes)
        throw Error(path + ": truncated: " + std::to_string(size) +
                    " bytes, but a safetensors file starts with an 8-byte header length");

    std::shared_ptr<SafetensorsFile> f(new SafetensorsFile());
    f->path_ = path;
    void* m = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd.get(), 0);
    if (m == MAP_FAILED)
        throw Error(path + ": cannot memory-map " + std::to_string(size) + " bytes: " + sys_error());
    f->map_ = m;
    f->map_size_ = size;
    const auto* bytes = static_cast<const uint8_t*>(m);

    uint64_t header_len = 0;
    std::memcpy(&header_len, bytes, kLengthBytes);
    if (header_len > size - kLengthBytes)
        throw Error(path + ": header length " + std::to_string(header_len) + " runs past the end of the file (" +
                    std::to_string(size) + " bytes): truncated or not a safetensors file");
    if (header_len > kMaxHeaderBytes)
        throw Error(path + ": header length " + std::to_string(header_len) + " is implausibly large (limit " +
                    std::to_string(kMaxHeaderBytes) + "): not a safetensors file");
    if (header_len < 2)
        throw Error(path + ": header length " + std::to_string(header_len) +
                    " is too short for a JSON header: not a safetensors file");

    const char* hbegin = reinterpret_cast<const char*>(bytes + kLengthBytes);
    nlohmann::json header;
    try {
        header = nlohmann::json::parse(hbegin, hbegin + header_len);
    } catch (const nlohmann::json::parse_error& e) {
        throw Error(path + ": header is not valid JSON (" + e.what() + "): corrupt or not a safetensors file");
    }
    if (!header.is_object())
        throw Error(path + ": header is JSON " + std::string(header.type_name()) +
                    ", expected an object mapping tensor names to {dtype, shape, data_offsets}");

    const uint64_t data_start = kLengthBytes + header_len;
    const uint64_t data_size = size - data_start;
    struct Range {
        uint64_t begin, end;
        const std::string* name;
    };
    std::vector<Range> ranges;
    ranges.reserve(header.size());

    for (auto it = header.begin(); it != header.end(); ++it) {
        const std::string& name = it.key();
        const auto& e = it.value();
        if (name == "__metadata__") {
            if (!e.is_object())
                throw Error(path + ": __metadata__ is " + std::string(e.type_name()) +
                            ", expected an object of strings");
            for (auto m2 = e.begin(); m2 != e.end(); ++m2) {
                if (!m2->is_string())
                    throw Error(path + ": __metadata__['" + m2.key() + "'] is " + std::string(m2->type_name()) +
                                ", expected a string");
                f->metadata_[m2.key()] = m2->get<std::string>();
            }
            continue;
        }
        const std::string where = path + ": tensor '" + name + "'";
        if (!e.is_object())
            throw Error(where + ": entry is " + std::string(e.type_name()) +
                        ", expected {dtype, shape, data_offsets}");
        const auto dt = e.find("dtype");
        const auto sh = e.find("shape");
        const auto off = e.find("data_offsets");
        if (dt == e.end() || sh == e.end() || off == e.end())
            throw Error(where + ": entry lacks dtype, shape or data_offsets");
        if (!dt->is_string())
            throw Error(where + ": dtype is " + std::string(dt->type_name()) + ", expected a string");
        TensorView v;
        v.name = name;
        if (!parse_dtype(dt->get<std::string>(), v.dtype))
            throw Error(where + " has dtype " + dt->get<std::string>() +
                        ", which SD Lens does not read (supported: F32, F16, BF16, I64, I32)");
        if (!sh->is_array())
            throw Error(where + ": shape is " + std::string(sh->type_name()) + ", expected an array");
        for (const auto& d : *sh) {
            if (!d.is_number_integer() || d.get<int64_t>() < 0)
                throw Error(where + ": shape " + sh->dump() + " must hold non-negative integers");
            v.shape.push_back(d.get<int64_t>());
        }
        if (!off->is_array() || off->size() != 2 || !(*off)[0].is_number_unsigned() ||
            !(*off)[1].is_number_unsigned())
            throw Error(where + ": data_offsets " + off->dump() + " must be [begin, end] with non-negative integers");
        const auto begin = (*off)[0].get<uint64_t>();
        const auto end = (*off)[1].get<uint64_t>();
        if (begin > end || end > data_size)
            throw Error(where + ": data_offsets [" + std::to_string(begin) + ", " + std::to_string(end) +
                        "] lie outside the data section of " + std::to_string(data_size) +
                        " bytes: truncated or corrupt file");
        uint64_t expected = 0;
        if (!byte_size(v.shape, v.dtype, expected))
            throw Error(where + ": shape " + shape_str(v.shape) + " is too large");
        if (expected != end - begin)
            throw Error(where + ": shape " + shape_str(v.shape) + " x " + dtype_name(v.dtype) + " needs " +
                        std::to_string(expected) + " bytes, but data_offsets give " + std::to_string(end - begin));
        v.data = bytes + data_start + begin;
        v.nbytes = static_cast<size_t>(end - begin);
        auto [pos, inserted] = f->tensors_.emplace(name, std::move(v));
        ranges.push_back({begin, end, &pos->first});
    }

    std::sort(ranges.begin(), ranges.end(),
              [](const Range& a, const Range& b) { return a.begin < b.begin || (a.begin == b.begin && a.end < b.end); });
    for (size_t i = 1; i < ranges.size(); ++i) {
        const Range& prev = ranges[i - 1];
        const Range& cur = ranges[i];
        // Empty tensors occupy no bytes and may share an offset with anything.
        if (cur.begin < prev.end && cur.begin != cur.end)
            throw Error(path + ": tensors '" + *prev.name + "' [" + std::to_string(prev.begin) + ", " +
                        std::to_string(prev.end) + ") and '" + *cur.name + "' [" + std::to_string(cur.begin) + ", " +
                        std::to_string(cur.end) + ") overlap: corrupt file");
    }
    return f;
}

SafetensorsFile::~SafetensorsFile() {
    if (map_)
        ::munmap(map_, map_size_);
}

const TensorView& SafetensorsFile::at(const std::string& name) const {
    const auto it = tensors_.find(name);
    if (it == tensors_.end())
        throw Error(path_ + ": no tensor named '" + name + "' (the file has " + std::to_string(tensors_.size()) +
                    " tensors)");
    return it->second;
}

void write_safetensors_streamed(const std::string& path, const std::vector<TensorSpec>& specs, const FillTensor& fill,
                                const std::map<std::string, std::string>& metadata) {
    nlohmann::json header = nlohmann::json::object();
    if (!metadata.empty())
        header["__metadata__"] = metadata;
    std::vector<uint64_t> sizes;
    sizes.reserve(specs.size());
    uint64_t offset = 0;
    for (const auto& s : specs) {
        if (s.name == "__metadata__" || header.contains(s.name))
            throw Error(path + ": cannot write tensor '" + s.name + "': the name is " +
                        (s.name == "__metadata__" ? "reserved" : "used twice"));
        uint64_t n = 0;
        if (!byte_size(s.shape, s.dtype, n))
            throw Error(path + ": cannot write tensor '" + s.name + "': invalid shape " + shape_str(s.shape));
        header[s.name] = {{"dtype", dtype_name(s.dtype)}, {"shape", s.shape}, {"data_offsets", {offset, offset + n}}};
        sizes.push_back(n);
        offset += n;
    }
    std::string text = header.dump();
    // Readers may map tensor data straight from the file; starting the data section on an 8-byte
    // boundary keeps every dtype naturally aligned when offsets are. Spaces are valid JSON padding.
    text.append((kLengthBytes - (kLengthBytes + text.size()) % kLengthBytes) % kLengthBytes, ' ');

    std::string tmp = path + ".tmp.XXXXXX";
    Fd fd(::mkstemp(tmp.data()));
    if (fd.get() < 0)
        throw Error(path + ": cannot create a temporary file next to it: " + sys_error());
    // Until the rename succeeds, any exit removes the partial file.
    struct Unlink {
        const std::string& p;
        bool armed = true;
        ~Unlink() {
            if (armed)
                ::unlink(p.c_str());
        }
    } cleanup{tmp};

    auto write_all = [&](const void* data, size_t n) {
        const auto* p = static_cast<const uint8_t*>(data);
        while (n > 0) {
            const ssize_t w = ::write(fd.get(), p, n);
            if (w < 0 && errno == EINTR)
                continue;
            if (w <= 0)
                throw Error(path + ": write failed: " + sys_error());
            p += w;
            n -= static_cast<size_t>(w);
        }
    };
    const uint64_t header_len = text.size();
    write_all(&header_len, kLengthBytes);
    write_all(text.data(), text.size());
    std::vector<uint8_t> buffer;
    for (size_t i = 0; i < specs.size(); ++i) {
        buffer.resize(static_cast<size_t>(sizes[i]));
        fill(i, buffer.data());
        write_all(buffer.data(), buffer.size());
    }
    if (::fchmod(fd.get(), 0644) != 0 || ::fsync(fd.get()) != 0)
        throw Error(path + ": cannot finish writing: " + sys_error());
    if (::close(fd.release()) != 0)
        throw Error(path + ": cannot finish writing: " + sys_error());
    if (::rename(tmp.c_str(), path.c_str()) != 0)
        throw Error(path + ": cannot move the finished file into place: " + sys_error());
    cleanup.armed = false;
}

void write_safetensors(const std::string& path, const std::vector<TensorBlob>& tensors,
                       const std::map<std::string, std::string>& metadata) {
    std::vector<TensorSpec> specs;
    specs.reserve(tensors.size());
    for (const auto& t : tensors) {
        uint64_t n = 0;
        if (!byte_size(t.shape, t.dtype, n) || n != t.nbytes)
            throw Error(path + ": cannot write tensor '" + t.name + "': shape " + shape_str(t.shape) + " x " +
                        dtype_name(t.dtype) + " needs " + std::to_string(n) + " bytes, but " +
                        std::to_string(t.nbytes) + " were given");
        specs.push_back({t.name, t.dtype, t.shape});
    }
    write_safetensors_streamed(
        path, specs,
        [&](size_t i, uint8_t* out) {
            if (tensors[i].nbytes)
                std::memcpy(out, tensors[i].data, tensors[i].nbytes);
        },
        metadata);
}

} // namespace sdl
