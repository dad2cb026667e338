#include "core/models/runtime.h"

#include "core/util/error.h"

#include <ATen/detail/CUDAHooksInterface.h>
#include <torch/version.h>

namespace sdl {

torch::Device parse_device(const std::string& name) {
    if (name == "cpu")
        return torch::kCPU;
    if (name == "cuda") {
        if (!at::detail::getCUDAHooks().hasCUDART())
            throw Error("--device cuda: this build's LibTorch " TORCH_VERSION
                        " has no CUDA (build with packaging/build-cuda.sh for a CUDA-enabled one)");
        if (!torch::cuda::is_available())
            throw Error("--device cuda: LibTorch " TORCH_VERSION
                        " has CUDA, but no GPU is visible (no NVIDIA driver or device on this machine)");
        // fp32 means fp32: LibTorch lets cuDNN convolutions round to TF32 by default, 10 mantissa bits,
        // which is far outside the 1e-4 parity SD Lens keeps with diffusers' float32 numbers.
        at::globalContext().setAllowTF32CuDNN(false);
        at::globalContext().setAllowTF32CuBLAS(false);
        return torch::kCUDA;
    }
    throw UsageError("unknown device '" + name + "' (expected cpu or cuda)");
}

bool cpu_has_native_bf16() {
#if defined(__x86_64__) || defined(__i386__)
    return __builtin_cpu_supports("avx512bf16") || __builtin_cpu_supports("amx-bf16");
#else
    return false;
#endif
}

torch::Dtype default_dtype(const torch::Device& device) {
    if (device.is_cuda())
        return torch::kHalf;
    return cpu_has_native_bf16() ? torch::kBFloat16 : torch::kFloat;
}

torch::Dtype parse_dtype(const std::string& name, const torch::Device& device) {
    if (name.empty())
        return default_dtype(device);
    if (name == "fp32")
        return torch::kFloat;
    if (name == "bf16")
        return torch::kBFloat16;
    if (name == "fp16") {
#if TORCH_VERSION_MAJOR < 2
        if (!device.is_cuda())
            throw UsageError("--dtype fp16 is not supported on CPU by LibTorch " TORCH_VERSION
                             " (no fp16 CPU kernels for convolution, norms, matmul); use fp32 or bf16");
#endif
        return torch::kHalf;
    }
    throw UsageError("unknown dtype '" + name + "' (expected fp32, fp16 or bf16)");
}

const char* dtype_label(torch::Dtype t) {
    switch (t) {
    case torch::kHalf: return "fp16";
    case torch::kBFloat16: return "bf16";
    default: return "fp32";
    }
}

} // namespace sdl
