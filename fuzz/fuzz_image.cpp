// The image loader (--image, the GUI's img2img input) and the PNG tEXt reader (a generation's
// "parameters") on arbitrary bytes. A small decoded image also goes through encode_png and back,
// which must reproduce it exactly.
#include "core/util/image_io.h"
#include "fuzz/harness.h"
#include "fuzz/mem_file.h"

using namespace sdl;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    Image8 img;
    if (fuzz::accepts([&] { img = decode_image(data, size, "fuzz input"); })) {
        fuzz::check(img.width > 0 && img.height > 0 && img.channels == 3, "bad dimensions");
        fuzz::check(img.pixels.size() == static_cast<size_t>(img.width) * img.height * 3, "pixel count");
        if (static_cast<size_t>(img.width) * img.height <= 64 * 64) {
            const auto png = encode_png(img, {{"parameters", "fuzz"}});
            const Image8 back = decode_image(png.data(), png.size(), "re-encoded fuzz input");
            fuzz::check(back.width == img.width && back.height == img.height && back.pixels == img.pixels,
                        "encode_png/decode_image round trip differs");
        }
    }
    const fuzz::MemFile file(data, size);
    fuzz::accepts([&] {
        unsigned n = 0;
        for (const auto& [key, value] : read_png_text(file.path()))
            n += static_cast<unsigned>(key.size() + value.size());
        fuzz::sink(n);
    });
    return 0;
}
