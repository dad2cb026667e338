// sdlens-cli unet --model PATH --sample FILE:KEY --context FILE:KEY --timestep T --out FILE
//                  [--lora FILE[:STRENGTH]]...
// One U-Net call. T is a number (the whole batch) or FILE:KEY (one timestep per sample).
#include "app/cli/command.h"
#include "app/cli/runtime_flags.h"
#include "core/io/model_files.h"
#include "core/io/tensor_io.h"
#include "core/models/load.h"
#include "core/models/runtime.h"
#include "core/util/error.h"

#include <cstdlib>

namespace {

torch::Tensor parse_timestep(const std::string& text) {
    char* end = nullptr;
    const double t = std::strtod(text.c_str(), &end);
    if (!text.empty() && *end == '\0')
        return torch::tensor(t, torch::kDouble);
    if (text.find(':') == std::string::npos)
        throw sdl::UsageError("--timestep expects a number or FILE:KEY, got '" + text + "'");
    return sdl::load_tensor_arg(text);
}

int run_unet(sdl::cli::Args& args) {
    const std::string model = args.required("--model");
    const std::string sample_arg = args.required("--sample");
    const std::string context_arg = args.required("--context");
    const std::string timestep_arg = args.required("--timestep");
    const std::string out = args.required("--out");
    auto rt = sdl::cli::runtime_options(args);
    rt.loras = sdl::cli::lora_flags(args);
    args.finish();
    const auto device = sdl::parse_device(rt.device);
    const auto dtype = sdl::parse_dtype(rt.dtype, device);
    if (rt.threads > 0)
        at::set_num_threads(rt.threads);

    const auto timestep = parse_timestep(timestep_arg);
    const auto sample = sdl::load_tensor_arg(sample_arg).to(device, dtype);    // [B, 4, h, w]
    const auto context = sdl::load_tensor_arg(context_arg).to(device, dtype);  // [B, 77, D]
    const auto files = sdl::open_model_files(model);
    torch::NoGradGuard no_grad;
    auto unet = sdl::load_unet(files.unet, dtype, device);
    sdl::cli::apply_loras_alone(rt.loras, nullptr, unet.get());
    const auto result = unet->forward(sample, timestep, context);
    std::map<std::string, std::string> metadata{
        {"model", model}, {"timestep", timestep_arg}, {"dtype", sdl::dtype_label(dtype)}};
    if (!rt.loras.empty())
        metadata["loras"] = sdl::cli::loras_json(rt.loras);
    sdl::save_tensors(out, {{"out", result.to(torch::kCPU, torch::kFloat)}}, metadata);
    return 0;
}

sdl::cli::Register reg{"unet", "One U-Net call on a latent sample and text context (safetensors: out)", {}, run_unet};

} // namespace
