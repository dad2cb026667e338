#pragma once
// GroupNorm, optionally fused with the SiLU after it, for channels-last activations on the CPU
// (kernels/group_norm_kernel.h). The oneDNN convolutions hand every ResNet block NHWC tensors, and
// LibTorch 1.13's own channels-last group_norm sums bfloat16 in bfloat16: at 64x64 pixels its output
// is wrong by whole units (the reason SD Lens refused bf16 channels-last on 1.13 before this).
#include <torch/torch.h>

#include <string>

namespace sdl {

// x is a 4-D float32 or bfloat16 CPU tensor stored channels-last (and not also plain contiguous,
// where LibTorch's path stays), and no gradient is wanted.
bool group_norm_nhwc_applies(const torch::Tensor& x);

// torch::group_norm(x, groups, weight, bias, eps), then SiLU when silu, for x as above. Statistics in
// float64 over float32 block sums; the output is x's type and layout. isa: "avx512", "avx2", "generic"
// or empty for the widest this CPU runs (tests run each).
torch::Tensor group_norm_nhwc(const torch::Tensor& x, int64_t groups, const torch::Tensor& weight,
                              const torch::Tensor& bias, double eps, bool silu, const std::string& isa = {});

} // namespace sdl
