#include "core/pipeline/trace.h"

#include "core/io/safetensors.h"
#include "core/io/tensor_io.h"
#include "core/util/error.h"

namespace sdl {

namespace {
struct Field {
    const char* key;
    torch::Tensor Trace::*member;
    bool required;
};

// `init`, `steps` and `timesteps` make a run; the rest is optional so that partial runs (cancelled
// before decoding) still open.
const Field kFields[] = {
    {"init", &Trace::init, true},
    {"steps", &Trace::steps, true},
    {"noise_pred", &Trace::noise_pred, false},
    {"pred_x0", &Trace::pred_x0, false},
    {"timesteps", &Trace::timesteps, true},
    {"sigmas", &Trace::sigmas, false},
    {"text_embeddings", &Trace::text_embeddings, false},
    {"input_ids", &Trace::input_ids, false},
    {"image", &Trace::image, false},
    {"attention", &Trace::attention, false},
};
} // namespace

void write_trace(const std::string& path, const Trace& trace) {
    std::map<std::string, torch::Tensor> tensors;
    for (const auto& f : kFields) {
        const torch::Tensor& t = trace.*(f.member);
        // safetensors readers expect what diffusers stores: float32 timesteps, not float64.
        if (t.defined())
            tensors[f.key] = t.scalar_type() == torch::kFloat64 ? t.to(torch::kFloat32) : t;
    }
    auto metadata = trace.settings;
    metadata["format"] = "sdlens-trace-1";
    save_tensors(path, tensors, metadata);
}

Trace read_trace(const std::string& path) {
    const auto file = SafetensorsFile::open(path);
    Trace trace;
    for (const auto& f : kFields) {
        if (file->contains(f.key))
            trace.*(f.member) = to_tensor(file->at(f.key));
        else if (f.required)
            throw Error(path + ": not an SD Lens trace (missing tensor '" + f.key + "')");
    }
    trace.settings = file->metadata();
    trace.settings.erase("format");
    return trace;
}

} // namespace sdl
