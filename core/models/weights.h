#pragma once
// Weights go from the mapped safetensors views straight into module parameters: module names are
// the state-dict keys, so loading is a lookup, and every mismatch is named.
#include "core/io/model_files.h"

#include <torch/torch.h>

#include <string>
#include <vector>

namespace sdl {

struct ModelCheck {
    std::vector<std::string> missing;     // "key [shape]": in the module, not in the files
    std::vector<std::string> unexpected;  // "key [shape]": in the files, not in the module
    std::vector<std::string> misshapen;   // "key: module [a, b], file [c, d]"
    bool ok() const { return missing.empty() && unexpected.empty() && misshapen.empty(); }
};

// "[a, b, c]", as the loaders' messages write shapes.
std::string shape_str(c10::IntArrayRef shape);

// Compares the module's parameters and buffers with files.tensors by name and shape.
ModelCheck check_weights(torch::nn::Module& module, const ComponentFiles& files);

// Replaces every parameter and buffer with the file's tensor, converted once, straight into dtype
// on device. Throws sdl::Error naming the component, its file and the first mismatching keys when
// check_weights finds anything (nothing is loaded then).
void load_weights(torch::nn::Module& module, const ComponentFiles& files, torch::Dtype dtype,
                  torch::Device device = torch::kCPU);

// Benchmarks and tests without a model file (CPU modules): N(0, 0.02) weights, unit norm scales.
void init_random(torch::nn::Module& module, uint64_t seed);

// Parameter count (for info panels and reports).
int64_t parameter_count(torch::nn::Module& module);

} // namespace sdl
