#include "core/util/image_io.h"

#include "core/util/error.h"

#include <zlib.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>
#include <unistd.h>

#define STB_IMAGE_IMPLEMENTATION
#define STBI_FAILURE_USERMSG
// No one feeds SD Lens netpbm files, and stb 2.27's reader overflows int on long dimension strings
// and leaves the pixels of a truncated file uninitialised (found by fuzz/fuzz_image.cpp).
#define STBI_NO_PNM
#include <stb/stb_image.h>
#define STB_IMAGE_WRITE_IMPLEMENTATION
#include <stb/stb_image_write.h>

namespace sdl {

namespace {

// 16384 x 16384: far above any size the pipeline can run at, below the memory a desktop has.
constexpr int64_t kMaxImagePixels = int64_t{1} << 28;

void append_be32(std::vector<uint8_t>& out, uint32_t v) {
    for (int shift = 24; shift >= 0; shift -= 8)
        out.push_back(static_cast<uint8_t>(v >> shift));
}

uint32_t read_be32(const uint8_t* p) {
    return (uint32_t(p[0]) << 24) | (uint32_t(p[1]) << 16) | (uint32_t(p[2]) << 8) | uint32_t(p[3]);
}

const uint8_t kPngSignature[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};

// stb 2.27 allocates its compressed-data buffer at the first IDAT chunk with bytes in it; an empty
// first IDAT makes it memcpy 0 bytes to a null pointer (undefined behaviour, reported by UBSan).
// The PNG spec allows such a chunk but no encoder writes one, so decode_image refuses the file
// before stb sees it. Malformed chunk structure is left to stb to report.
bool png_first_idat_is_empty(const uint8_t* data, size_t size) {
    if (size < 8 || std::memcmp(data, kPngSignature, 8) != 0)
        return false;
    size_t pos = 8;
    while (size - pos >= 8) {  // length + type
        const uint32_t len = read_be32(data + pos);
        if (std::memcmp(data + pos + 4, "IDAT", 4) == 0)
            return len == 0;
        if (size - pos < 12 || len > size - pos - 12)
            return false;
        pos += 12 + len;
    }
    return false;
}

std::vector<uint8_t> text_chunk(const std::string& key, const std::string& value) {
    // tEXt is Latin-1 by the PNG spec, but every SD tool writes UTF-8 there; we do as they do.
    std::vector<uint8_t> body(key.begin(), key.end());
    body.push_back(0);
    body.insert(body.end(), value.begin(), value.end());
    std::vector<uint8_t> chunk;
    append_be32(chunk, static_cast<uint32_t>(body.size()));
    const char type[4] = {'t', 'E', 'X', 't'};
    chunk.insert(chunk.end(), type, type + 4);
    chunk.insert(chunk.end(), body.begin(), body.end());
    uLong crc = crc32(0L, reinterpret_cast<const Bytef*>(type), 4);
    crc = crc32(crc, body.data(), static_cast<uInt>(body.size()));
    append_be32(chunk, static_cast<uint32_t>(crc));
    return chunk;
}

void collect(void* context, void* data, int size) {
    auto* out = static_cast<std::vector<uint8_t>*>(context);
    const auto* bytes = static_cast<const uint8_t*>(data);
    out->insert(out->end(), bytes, bytes + size);
}

} // namespace

Image8 decode_image(const uint8_t* data, size_t size, const std::string& what) {
    if (size > static_cast<size_t>(INT32_MAX))
        throw Error(what + ": file too large to be an image");
    if (png_first_idat_is_empty(data, size))
        throw Error(what + ": PNG whose first image data (IDAT) chunk is empty; SD Lens does not read "
                    "such files, re-save it with another program");
    int w = 0, h = 0, n = 0;
    // Checked before decoding: stb allocates the whole image from the header's dimensions before
    // it reads any pixel data, so a 20-byte header could otherwise cost gigabytes.
    if (stbi_info_from_memory(data, static_cast<int>(size), &w, &h, &n) &&
        (w <= 0 || h <= 0 || static_cast<int64_t>(w) * h > kMaxImagePixels))
        throw Error(what + ": image of " + std::to_string(w) + " x " + std::to_string(h) +
                    " pixels: empty or larger than SD Lens reads (" + std::to_string(kMaxImagePixels) + " pixels)");
    stbi_uc* px = stbi_load_from_memory(data, static_cast<int>(size), &w, &h, &n, 3);
    if (!px)
        throw Error(what + ": not a readable image (" + stbi_failure_reason() + ")");
    Image8 img;
    img.width = w;
    img.height = h;
    img.channels = 3;
    img.pixels.assign(px, px + static_cast<size_t>(w) * h * 3);
    stbi_image_free(px);
    return img;
}

Image8 read_image(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in)
        throw Error(path + ": cannot open (" + std::strerror(errno) + ")");
    std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    return decode_image(bytes.data(), bytes.size(), path);
}

std::vector<uint8_t> encode_png(const Image8& image, const std::map<std::string, std::string>& text) {
    if (image.width <= 0 || image.height <= 0 || (image.channels != 3 && image.channels != 4) ||
        image.pixels.size() != static_cast<size_t>(image.width) * image.height * image.channels)
        throw Error("encode_png: inconsistent image buffer");
    std::vector<uint8_t> png;
    if (!stbi_write_png_to_func(collect, &png, image.width, image.height, image.channels, image.pixels.data(),
                                image.width * image.channels))
        throw Error("encode_png: PNG encoder failed");
    if (text.empty())
        return png;
    // Signature (8 bytes) + IHDR (4 length + 4 type + 13 data + 4 CRC): text chunks go right after it.
    constexpr size_t after_ihdr = 8 + 25;
    std::vector<uint8_t> out(png.begin(), png.begin() + after_ihdr);
    for (const auto& [k, v] : text) {
        auto chunk = text_chunk(k, v);
        out.insert(out.end(), chunk.begin(), chunk.end());
    }
    out.insert(out.end(), png.begin() + after_ihdr, png.end());
    return out;
}

void write_png(const std::string& path, const Image8& image, const std::map<std::string, std::string>& text) {
    const auto png = encode_png(image, text);
    write_file_atomic(path, png.data(), png.size());
}

std::map<std::string, std::string> read_png_text(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in)
        throw Error(path + ": cannot open (" + std::strerror(errno) + ")");
    std::vector<uint8_t> b((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    if (b.size() < 8 || std::memcmp(b.data(), kPngSignature, 8) != 0)
        throw Error(path + ": not a PNG file");
    std::map<std::string, std::string> text;
    size_t pos = 8;
    while (pos + 12 <= b.size()) {
        const uint32_t len = read_be32(&b[pos]);
        if (len > b.size() - pos - 12)
            break;
        const std::string type(reinterpret_cast<const char*>(&b[pos + 4]), 4);
        if (type == "tEXt") {
            const char* body = reinterpret_cast<const char*>(&b[pos + 8]);
            const size_t key_len = strnlen(body, len);
            if (key_len < len)
                text[std::string(body, key_len)] = std::string(body + key_len + 1, len - key_len - 1);
        }
        if (type == "IEND")
            break;
        pos += 12 + len;
    }
    return text;
}

void write_file_atomic(const std::string& path, const void* data, size_t size) {
    const std::string tmp = path + ".tmp-" + std::to_string(::getpid());
    std::FILE* f = std::fopen(tmp.c_str(), "wb");
    if (!f)
        throw Error(path + ": cannot write (" + std::strerror(errno) + ")");
    const bool ok = std::fwrite(data, 1, size, f) == size && std::fflush(f) == 0 && ::fsync(fileno(f)) == 0;
    const int err = errno;
    std::fclose(f);
    if (!ok || std::rename(tmp.c_str(), path.c_str()) != 0) {
        const int e = ok ? errno : err;
        std::remove(tmp.c_str());
        throw Error(path + ": write failed (" + std::strerror(e) + ")");
    }
}

} // namespace sdl
