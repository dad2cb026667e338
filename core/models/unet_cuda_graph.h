#pragma once
// The U-Net call as a CUDA graph (RuntimeOptions::cuda_graph, `--cuda-graph`): recorded once per
// input shape and replayed. An SD 1.x U-Net call is about a thousand kernels, and in eager mode the
// host launches each of them at every step; a replay is one launch. Needs a LibTorch built with
// CUDA (PyPI's wheel, packaging/build-cuda.sh).
//
// A graph reads and writes fixed addresses: the inputs are copied into buffers it owns, and it
// reads the weights where they were when it was recorded, so whoever changes the weights (a LoRA
// merged, another memory format) calls reset(). Attention recording (ModelHooks) cannot be replayed:
// with hooks set, forward runs eagerly.
#include "core/models/unet_2d_condition.h"

#include <torch/torch.h>

#include <memory>

namespace sdl {

class UNetCudaGraph {
public:
    // Throws sdl::Error on a LibTorch without CUDA graphs.
    explicit UNetCudaGraph(UNet2DConditionModel unet);
    ~UNetCudaGraph();
    UNetCudaGraph(const UNetCudaGraph&) = delete;
    UNetCudaGraph& operator=(const UNetCudaGraph&) = delete;

    // unet->forward for CUDA inputs in the U-Net's dtype, timestep [B]; the result is a fresh tensor.
    torch::Tensor forward(const torch::Tensor& sample, const torch::Tensor& timestep, const torch::Tensor& context,
                          const torch::Tensor& timestep_cond = {});
    void reset();   // drops every recording (and its memory); the next call records again
    int recordings() const;

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

} // namespace sdl
