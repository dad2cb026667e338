#include "core/io/tensor_io.h"

#include "core/util/error.h"

#include <cstring>

namespace sdl {

namespace {

torch::Dtype torch_dtype(DType t) {
    switch (t) {
    case DType::F32: return torch::kFloat32;
    case DType::F16: return torch::kFloat16;
    case DType::BF16: return torch::kBFloat16;
    case DType::I64: return torch::kInt64;
    case DType::I32: return torch::kInt32;
    }
    throw Error("unknown safetensors dtype");
}

DType safetensors_dtype(torch::Dtype t, const std::string& path, const std::string& name) {
    switch (t) {
    case torch::kFloat32: return DType::F32;
    case torch::kFloat16: return DType::F16;
    case torch::kBFloat16: return DType::BF16;
    case torch::kInt64: return DType::I64;
    case torch::kInt32: return DType::I32;
    default:
        throw Error(path + ": cannot write tensor '" + name + "' of dtype " + std::string(c10::toString(t)) +
                    " (supported: float32, float16, bfloat16, int64, int32)");
    }
}

} // namespace

torch::Tensor to_tensor(const TensorView& v, torch::Dtype dtype, const torch::Device& device) {
    const auto stored = torch_dtype(v.dtype);
    if (v.nbytes == 0)
        return torch::empty(v.shape, torch::TensorOptions().dtype(dtype).device(device));
    // safetensors aligns the data section, not each tensor: an F32 after an odd-length F16 can
    // sit on a 2-byte boundary. Kernels may assume natural alignment, so such a view is first
    // copied into aligned storage; aligned views are converted straight from the mapping.
    torch::Tensor out;
    if (reinterpret_cast<uintptr_t>(v.data) % dtype_size(v.dtype) != 0) {
        auto aligned = torch::empty(v.shape, torch::TensorOptions().dtype(stored));
        std::memcpy(aligned.data_ptr(), v.data, v.nbytes);
        out = aligned.to(device, dtype);
    } else {
        // The mapping is read-only; the view is only read by the copying conversion.
        const auto view =
            torch::from_blob(const_cast<uint8_t*>(v.data), v.shape, torch::TensorOptions().dtype(stored));
        out = view.to(device, dtype, /*non_blocking=*/false, /*copy=*/true);
    }
    // Loading converts each weight once; its file pages need not stay resident next to the copy.
    release_pages(v);
    return out;
}

torch::Tensor to_tensor(const TensorView& v) { return to_tensor(v, torch_dtype(v.dtype)); }

void save_tensors(const std::string& path, const std::map<std::string, torch::Tensor>& tensors,
                  const std::map<std::string, std::string>& metadata) {
    std::vector<TensorSpec> specs;
    std::vector<const torch::Tensor*> order;
    specs.reserve(tensors.size());
    order.reserve(tensors.size());
    for (const auto& [name, t] : tensors) {
        if (!t.defined())
            throw Error(path + ": cannot write tensor '" + name + "': it is undefined");
        specs.push_back({name, safetensors_dtype(t.scalar_type(), path, name), t.sizes().vec()});
        order.push_back(&t);
    }
    // One contiguous CPU copy at a time, so saving device tensors never doubles their memory.
    write_safetensors_streamed(
        path, specs,
        [&](size_t i, uint8_t* out) {
            const auto cpu = order[i]->detach().to(torch::kCPU).contiguous();
            if (cpu.numel())
                std::memcpy(out, cpu.data_ptr(), cpu.nbytes());
        },
        metadata);
}

torch::Tensor load_tensor_arg(const std::string& file_colon_key) {
    // The last colon splits, so file names may contain colons; tensor names never do.
    const auto colon = file_colon_key.rfind(':');
    if (colon == std::string::npos || colon == 0 || colon + 1 == file_colon_key.size())
        throw UsageError("expected FILE:KEY (e.g. trace.safetensors:unet.out), got '" + file_colon_key + "'");
    const auto file = SafetensorsFile::open(file_colon_key.substr(0, colon));
    return to_tensor(file->at(file_colon_key.substr(colon + 1)));
}

} // namespace sdl
