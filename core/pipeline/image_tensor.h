#pragma once
// Conversions between 8-bit images and the pipeline's image tensors.
#include "core/util/image_io.h"

#include <torch/torch.h>

namespace sdl {

// RGB Image8 -> [1, 3, H, W] float32 in [-1, 1], the VAE's input range.
torch::Tensor image_to_tensor(const Image8& image);
// [3, H, W] or [1, 3, H, W] float in [0, 1] -> RGB Image8 (rounded, clamped).
Image8 tensor_to_image(const torch::Tensor& image);
// Centre-crops to the largest multiple of 8 in each dimension (no resampling); true when it cropped.
bool crop_to_multiple_of_8(Image8& image);

} // namespace sdl
