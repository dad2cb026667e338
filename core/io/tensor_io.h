#pragma once
// Glue between safetensors views and torch tensors.
#include "core/io/safetensors.h"

#include <torch/torch.h>

#include <map>
#include <string>

namespace sdl {

// Copies (and converts) one view into a tensor of the given dtype on the given device.
torch::Tensor to_tensor(const TensorView& v, torch::Dtype dtype, const torch::Device& device = torch::kCPU);
// Same, keeping the stored dtype.
torch::Tensor to_tensor(const TensorView& v);

// Writes tensors (any device; F32/F16/BF16/I64/I32) atomically.
void save_tensors(const std::string& path, const std::map<std::string, torch::Tensor>& tensors,
                  const std::map<std::string, std::string>& metadata = {});

// "FILE:KEY" -> that tensor (stored dtype). Errors name the file and the missing key.
torch::Tensor load_tensor_arg(const std::string& file_colon_key);

} // namespace sdl
