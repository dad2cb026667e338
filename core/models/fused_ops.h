#pragma once
// GroupNorm, optionally fused with the SiLU after it, for channels-last activations on the CPU
// (kernels/fused_kernel.h). The oneDNN convolutions hand every ResNet block NHWC tensors, and
// LibTorch 1.13's own channels-last group_norm sums bfloat16 in bfloat16: at 64x64 pixels its output
// is wrong by whole units (the reason SD Lens refused bf16 channels-last on 1.13 before this).
#include <torch/torch.h>

#include <string>

namespace sdl {

// x is a 4-D bfloat16 CPU tensor stored channels-last (and not also plain contiguous, where LibTorch's
// path stays), and no gradient is wanted. group_norm_nhwc itself also takes float32 (tests, callers).
bool group_norm_nhwc_applies(const torch::Tensor& x);

// torch::group_norm(x, groups, weight, bias, eps), then SiLU when silu, for x as above. Statistics in
// float64 over float32 block sums; the output is x's type and layout. isa: "avx512", "avx2", "generic"
// or empty for the widest this CPU runs (tests run each). in_place: the result is written over x and
// returned (a fresh 64-134 MB activation per call costs its page faults: a fifth of a 512x512 VAE decode).
torch::Tensor group_norm_nhwc(const torch::Tensor& x, int64_t groups, const torch::Tensor& weight,
                              const torch::Tensor& bias, double eps, bool silu, const std::string& isa = {},
                              bool in_place = false);

// LayerNorm over the last dimension through SD Lens' kernel, for contiguous float32 or bfloat16 CPU
// tensors with no gradient wanted (LibTorch 1.13's bfloat16 layer_norm took 375 ms of a 3.8 s SD 1.5
// U-Net call at 512x512). Statistics in float32 per row, centred; output of x's type.
bool row_kernels_apply(const torch::Tensor& x);  // layer_norm_rows and geglu
torch::Tensor layer_norm_rows(const torch::Tensor& x, const torch::Tensor& weight, const torch::Tensor& bias,
                              double eps, const std::string& isa = {});

// diffusers' GEGLU after its projection: x [..., 2f] -> x[..., :f] * gelu(x[..., f:]) (exact GELU),
// one pass instead of LibTorch's gelu on a strided half and a multiply (242 ms of the 512x512 U-Net
// call in bfloat16). For tensors as layer_norm_rows takes them.
torch::Tensor geglu(const torch::Tensor& x, const std::string& isa = {});

} // namespace sdl
