#pragma once
// Convolutions on the CPU through oneDNN directly, each weight reordered once into the blocked layout
// its kernel reads and kept there. LibTorch's own path (mkldnn_convolution) reorders the weights at
// every call, and on NCHW tensors the input and output too: for SD 1.5's 1280-channel levels, where
// a weight is large and the activations small, that reordering is most of a convolution's time.
// Activations go in and come out channels-last (NHWC), the layout oneDNN's brgemm kernels read, so a
// network of such convolutions converts its input once and never again.
#include <torch/torch.h>

#include <cstdint>
#include <memory>

namespace sdl {

enum class CpuConv {
    onednn,  // this file's path, the default where the build has oneDNN
    aten,    // torch::conv2d, as before it: for comparisons (`bench --conv-kernel aten`)
};
void set_cpu_conv(CpuConv c);  // onednn in a build without oneDNN: an sdl::UsageError
CpuConv cpu_conv();
bool have_onednn_conv();      // this build links oneDNN
const char* cpu_conv_label();  // "onednn (brgconv:avx512_core_bf16)", ... or "aten"

// The packed weights and the primitives of one convolution layer, per input shape. Rebuilt when the
// weight or bias changes (another tensor, another dtype, or written in place: a LoRA merge).
class OnednnConvCache;

// Whether onednn_conv2d computes this call: the CPU path is onednn, x and weight are float32 or
// bfloat16 CPU tensors of one type, and no gradient is wanted (training keeps autograd's conv2d).
bool onednn_conv_applies(const torch::Tensor& x, const torch::Tensor& weight);

// torch::conv2d(x, weight, bias, stride, padding) with a square kernel, stride and padding.
// x [B, I, H, W] in any layout -> [B, O, H', W'] channels-last. cache: the layer's own, created here.
torch::Tensor onednn_conv2d(const torch::Tensor& x, const torch::Tensor& weight, const torch::Tensor& bias,
                            int64_t stride, int64_t padding, std::shared_ptr<OnednnConvCache>& cache);

// A packed weight is a second copy of the parameter: 1.2 GB more for SD 1.5's U-Net and VAE in bf16.
// release_plain_weight frees the parameter's own storage once the cache holds it packed (the parameter
// becomes an empty tensor of its dtype and device, so a reader that forgot to restore it fails on the
// shape rather than reading stale values); restore_plain_weight writes it back from the packed copy,
// exactly (a reorder is a permutation). Both are no-ops where they have nothing to do.
void release_plain_weight(OnednnConvCache* cache, torch::Tensor& weight);
void restore_plain_weight(OnednnConvCache* cache, torch::Tensor& weight);
// Whether the cache holds a packed copy of values the weight no longer has (after a dtype change, a
// merge): dropping it at once frees that memory rather than at the layer's next call.
bool onednn_cache_stale(const OnednnConvCache* cache, const torch::Tensor& weight);

} // namespace sdl
