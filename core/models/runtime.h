#pragma once
// --device / --dtype as the networks accept them, with the refusals a user can act on.
#include <torch/torch.h>

#include <string>

namespace sdl {

// "cpu" or "cuda" (which must be available). Throws sdl::UsageError for other names.
torch::Device parse_device(const std::string& name);
// "fp32", "fp16", "bf16"; empty: the device's default_dtype(). fp16 on CPU is refused: LibTorch 1.13
// has no CPU fp16 kernels for convolutions, norms or matmuls (bf16 has them).
torch::Dtype parse_dtype(const std::string& name, const torch::Device& device);
// fp16 on CUDA. On a CPU with bf16 instructions (AVX512-BF16 or AMX), bf16: the U-Net 2.5-6x and the VAE 1.6x faster than fp32,
// and images within 4/255 mean / 33 dB PSNR of fp32's (tested; measured 1.4-2.5/255, 37-43 dB);
// elsewhere fp32, since emulated bf16 is slower than fp32. fp32 reproduces diffusers' CPU numbers to 1e-5.
// Not every such CPU runs every network faster in bf16, so the pipeline measures each one instead
// (core/models/precision.h); this stays the default of the commands that run one network alone.
torch::Dtype default_dtype(const torch::Device& device);
bool cpu_has_native_bf16();
const char* dtype_label(torch::Dtype t);  // "fp32", "fp16", "bf16"

} // namespace sdl
