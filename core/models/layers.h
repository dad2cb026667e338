#pragma once
// The few primitive layers the networks need. Unlike torch::nn's, they allocate their parameters
// with torch::empty and do not initialise them: every value is replaced by load_weights (or
// init_random), so random initialisation of a billion parameters would be wasted seconds, and
// untouched empty storage costs no resident memory (the sd15 shape check builds the full
// networks for free). Parameter names (weight, bias) are the PyTorch ones.
#include "core/models/onednn_conv.h"

#include <torch/torch.h>

#include <cstdint>
#include <memory>

namespace sdl {

class LinearImpl : public torch::nn::Module {
public:
    LinearImpl(int64_t in_features, int64_t out_features, bool bias = true);
    torch::Tensor forward(const torch::Tensor& x);  // [..., in] -> [..., out]
    torch::Tensor weight, bias;                      // [out, in], [out] (undefined without bias)
};
TORCH_MODULE(Linear);

class Conv2dImpl : public torch::nn::Module {
public:
    Conv2dImpl(int64_t in_channels, int64_t out_channels, int64_t kernel, int64_t stride = 1, int64_t padding = 0);
    // [B, in, H, W] -> [B, out, H', W']; channels-last through oneDNN on the CPU (onednn_conv.h)
    torch::Tensor forward(const torch::Tensor& x);
    // packed only: once oneDNN holds the weight packed, the parameter's storage is freed (an empty
    // tensor) until restore_plain_weights; LibTorch's path restores it by itself.
    void set_packed_only(bool on);
    void restore_plain();
    torch::Tensor weight, bias;
    int64_t stride, padding;

private:
    std::shared_ptr<OnednnConvCache> packed_;  // the weights in oneDNN's layout, made at the first call
    bool packed_only_ = false;
};
TORCH_MODULE(Conv2d);

class GroupNormImpl : public torch::nn::Module {
public:
    GroupNormImpl(int64_t groups, int64_t channels, double eps);
    // Channels-last CPU activations through SD Lens' kernel (group_norm.h), others through LibTorch.
    torch::Tensor forward(const torch::Tensor& x);
    torch::Tensor forward_silu(const torch::Tensor& x);  // SiLU(forward(x)), fused where the kernel runs
    torch::Tensor forward_silu_(const torch::Tensor& x);  // the same, written over x where the kernel runs
    torch::Tensor weight, bias;
    int64_t groups;
    double eps;
};
TORCH_MODULE(GroupNorm);

class LayerNormImpl : public torch::nn::Module {
public:
    LayerNormImpl(int64_t dim, double eps);
    torch::Tensor forward(const torch::Tensor& x);  // normalises the last dimension
    torch::Tensor weight, bias;
    double eps;
};
TORCH_MODULE(LayerNorm);

class EmbeddingImpl : public torch::nn::Module {
public:
    EmbeddingImpl(int64_t count, int64_t dim);
    torch::Tensor forward(const torch::Tensor& ids);  // [...] int64 -> [..., dim]
    torch::Tensor weight;                              // [count, dim]
};
TORCH_MODULE(Embedding);

// Every 4-D parameter (the convolutions' weights) in channels-last order, [O, kH, kW, I] in memory.
// A convolution with such a weight returns channels-last activations, so the whole network then runs
// NHWC without converting its input: the layout that cuDNN's fp16 tensor-core kernels and oneDNN
// prefer. Values are unchanged; idempotent.
void use_channels_last(torch::nn::Module& m);

// Every Conv2d of m packed only (Conv2dImpl::set_packed_only), or back to plain weights. The pipeline
// turns it on for the U-Net and the VAE: it halves what their convolutions hold in memory.
void set_packed_only(torch::nn::Module& m, bool on);
// Writes every released convolution weight of m back, before anything reads or changes the weights
// (LoRA merges, a memory-format change). Values are exactly those released.
void restore_plain_weights(torch::nn::Module& m);

} // namespace sdl
