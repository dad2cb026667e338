#pragma once
// 8-bit image files, torch-free. PNGs are written atomically and may carry tEXt chunks (the
// "parameters" chunk in AUTOMATIC1111's format lets other tools read a generation's settings).
#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace sdl {

struct Image8 {
    int width = 0;
    int height = 0;
    int channels = 0;             // 3 (RGB) or 4 (RGBA)
    std::vector<uint8_t> pixels;  // row-major, interleaved
};

// PNG, JPEG, BMP, ... decoded to RGB. Throws sdl::Error naming the file and why it is not an image.
Image8 read_image(const std::string& path);
Image8 decode_image(const uint8_t* data, size_t size, const std::string& what);

void write_png(const std::string& path, const Image8& image, const std::map<std::string, std::string>& text = {});
std::vector<uint8_t> encode_png(const Image8& image, const std::map<std::string, std::string>& text = {});
// tEXt chunks of a PNG file (empty when none).
std::map<std::string, std::string> read_png_text(const std::string& path);

// Writes bytes to path through a temporary file and a rename, so a reader never sees half a file.
void write_file_atomic(const std::string& path, const void* data, size_t size);

} // namespace sdl
