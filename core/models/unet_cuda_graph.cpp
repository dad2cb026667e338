#include "core/models/unet_cuda_graph.h"

#include "core/util/error.h"

#include <map>
#include <vector>

#ifdef SDLENS_WITH_CUDA
#include <ATen/cuda/CUDAGraph.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#endif

namespace sdl {

#ifdef SDLENS_WITH_CUDA

namespace {

// The buffers one graph reads (inputs) and writes (out), at the addresses it was recorded with.
struct Recording {
    torch::Tensor sample, timestep, context, cond, out;
    std::unique_ptr<at::cuda::CUDAGraph> graph;
};

std::vector<int64_t> shape_key(const torch::Tensor& sample, const torch::Tensor& context, const torch::Tensor& cond) {
    std::vector<int64_t> key = sample.sizes().vec();
    key.insert(key.end(), context.sizes().begin(), context.sizes().end());
    key.push_back(cond.defined() ? cond.size(1) : 0);
    key.push_back(static_cast<int64_t>(sample.scalar_type()));
    key.push_back(sample.device().index());
    return key;
}

} // namespace

struct UNetCudaGraph::Impl {
    UNet2DConditionModel unet{nullptr};
    std::map<std::vector<int64_t>, Recording> recordings;

    Recording record(const torch::Tensor& sample, const torch::Tensor& timestep, const torch::Tensor& context,
                     const torch::Tensor& cond) {
        Recording r;
        r.sample = sample.clone();
        r.timestep = timestep.clone();
        r.context = context.clone();
        if (cond.defined())
            r.cond = cond.clone();
        // Capture must run on a stream of its own. The warm-up calls before it let cuBLAS and cuDNN
        // choose their algorithms and allocate their workspaces outside the graph.
        torch::cuda::synchronize();
        const c10::cuda::CUDAStream side = c10::cuda::getStreamFromPool(false, sample.device().index());
        {
            const c10::cuda::CUDAStreamGuard on_side(side);
            for (int i = 0; i < 2; ++i)
                unet->forward(r.sample, r.timestep, r.context, r.cond);
            side.synchronize();
            r.graph = std::make_unique<at::cuda::CUDAGraph>();
            r.graph->capture_begin();
            r.out = unet->forward(r.sample, r.timestep, r.context, r.cond);
            r.graph->capture_end();
        }
        torch::cuda::synchronize();
        return r;
    }
};

UNetCudaGraph::UNetCudaGraph(UNet2DConditionModel unet) : impl_(std::make_unique<Impl>()) {
    impl_->unet = std::move(unet);
}

torch::Tensor UNetCudaGraph::forward(const torch::Tensor& sample, const torch::Tensor& timestep,
                                     const torch::Tensor& context, const torch::Tensor& timestep_cond) {
    UNet2DConditionModel& unet = impl_->unet;
    if (unet->hooks())
        return unet->forward(sample, timestep, context, timestep_cond);
    if (!sample.is_cuda())
        throw Error("the U-Net's CUDA graph was given a sample on " + sample.device().str());
    const auto key = shape_key(sample, context, timestep_cond);
    auto it = impl_->recordings.find(key);
    if (it == impl_->recordings.end())
        it = impl_->recordings.emplace(key, impl_->record(sample, timestep, context, timestep_cond)).first;
    Recording& r = it->second;
    r.sample.copy_(sample);
    r.timestep.copy_(timestep);
    r.context.copy_(context);
    if (timestep_cond.defined())
        r.cond.copy_(timestep_cond);
    r.graph->replay();
    return r.out.clone();  // the next replay overwrites out
}

void UNetCudaGraph::reset() { impl_->recordings.clear(); }

int UNetCudaGraph::recordings() const { return static_cast<int>(impl_->recordings.size()); }

#else

struct UNetCudaGraph::Impl {};

UNetCudaGraph::UNetCudaGraph(UNet2DConditionModel) {
    throw Error("CUDA graphs need a LibTorch built with CUDA; this build's has none "
                "(build with packaging/build-cuda.sh)");
}

torch::Tensor UNetCudaGraph::forward(const torch::Tensor&, const torch::Tensor&, const torch::Tensor&,
                                     const torch::Tensor&) {
    throw Error("CUDA graphs need a LibTorch built with CUDA");
}

void UNetCudaGraph::reset() {}

int UNetCudaGraph::recordings() const { return 0; }

#endif

UNetCudaGraph::~UNetCudaGraph() = default;

} // namespace sdl
