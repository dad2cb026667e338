#pragma once
// --device / --dtype as the networks accept them, with the refusals a user can act on.
#include <torch/torch.h>

#include <string>

namespace sdl {

// "cpu" or "cuda" (which must be available). Throws sdl::UsageError for other names.
torch::Device parse_device(const std::string& name);
// "fp32", "fp16", "bf16"; empty: fp16 on CUDA, fp32 on CPU. fp16 on CPU is refused: LibTorch 1.13
// has no CPU fp16 kernels for convolutions, norms or matmuls (bf16 has them).
torch::Dtype parse_dtype(const std::string& name, const torch::Device& device);
const char* dtype_label(torch::Dtype t);  // "fp32", "fp16", "bf16"

} // namespace sdl
