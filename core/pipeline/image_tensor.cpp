#include "core/pipeline/image_tensor.h"

#include "core/util/error.h"

namespace sdl {

torch::Tensor image_to_tensor(const Image8& image) {
    if (image.channels != 3)
        throw Error("image_to_tensor: expected an RGB image");
    auto t = torch::from_blob(const_cast<uint8_t*>(image.pixels.data()), {image.height, image.width, 3}, torch::kUInt8)
                 .permute({2, 0, 1})
                 .to(torch::kFloat32)
                 .unsqueeze(0);
    return t / 127.5 - 1.0;
}

Image8 tensor_to_image(const torch::Tensor& image) {
    auto t = image.dim() == 4 ? image[0] : image;
    if (t.dim() != 3 || t.size(0) != 3)
        throw Error("tensor_to_image: expected [3, H, W]");
    // Same rounding as diffusers' numpy_to_pil: (x * 255).round().
    auto hwc = (t.to(torch::kFloat32).cpu().clamp(0, 1) * 255.0).round().to(torch::kUInt8).permute({1, 2, 0}).contiguous();
    Image8 out;
    out.height = static_cast<int>(hwc.size(0));
    out.width = static_cast<int>(hwc.size(1));
    out.channels = 3;
    out.pixels.assign(hwc.data_ptr<uint8_t>(), hwc.data_ptr<uint8_t>() + hwc.numel());
    return out;
}

bool crop_to_multiple_of_8(Image8& image) {
    const int w = image.width / 8 * 8, h = image.height / 8 * 8;
    if (w == 0 || h == 0)
        throw Error("image is smaller than 8x8 pixels");
    if (w == image.width && h == image.height)
        return false;
    const int x0 = (image.width - w) / 2, y0 = (image.height - h) / 2;
    std::vector<uint8_t> px(static_cast<size_t>(w) * h * image.channels);
    for (int y = 0; y < h; ++y) {
        const uint8_t* src = &image.pixels[(static_cast<size_t>(y + y0) * image.width + x0) * image.channels];
        std::copy(src, src + static_cast<size_t>(w) * image.channels, &px[static_cast<size_t>(y) * w * image.channels]);
    }
    image.pixels = std::move(px);
    image.width = w;
    image.height = h;
    return true;
}

} // namespace sdl
