// sdlens-cli vae --model PATH (--image PNG | --input FILE:KEY) [--tiled] --out FILE
// The VAE round trip: the encoder's Gaussian and the decode of its mean.
#include "app/cli/command.h"
#include "app/cli/runtime_flags.h"
#include "core/io/model_files.h"
#include "core/io/tensor_io.h"
#include "core/models/load.h"
#include "core/models/runtime.h"
#include "core/pipeline/image_tensor.h"
#include "core/util/error.h"
#include "core/util/image_io.h"

#include <iostream>

namespace {

int run_vae(sdl::cli::Args& args) {
    const std::string model = args.required("--model");
    const auto image_path = args.get("--image");
    const auto input_arg = args.get("--input");
    const std::string out = args.required("--out");
    const bool tiled = args.has("--tiled");
    const auto rt = sdl::cli::runtime_options(args);
    args.finish();
    if (image_path.has_value() == input_arg.has_value())
        throw sdl::UsageError("give exactly one of --image PNG or --input FILE:KEY");
    const auto device = sdl::parse_device(rt.device);
    const auto dtype = sdl::parse_dtype(rt.dtype, device);
    if (rt.threads > 0)
        at::set_num_threads(rt.threads);

    // [1, 3, H, W] in [-1, 1]
    const auto image = image_path ? sdl::image_to_tensor(sdl::read_image(*image_path)) : sdl::load_tensor_arg(*input_arg);
    const auto files = sdl::open_model_files(model);
    torch::NoGradGuard no_grad;
    auto vae = sdl::load_vae(files.vae, dtype, device);
    const auto dist = vae->encode(image.to(device, dtype));
    const auto decoded = sdl::decode_checked(vae, dist.mean, tiled);
    if (decoded.redone_in_fp32)
        std::cerr << "sdlens-cli vae: the fp16 decode overflowed (NaN/Inf); redone in fp32\n";
    const auto f32 = [](const torch::Tensor& t) { return t.to(torch::kCPU, torch::kFloat); };
    sdl::save_tensors(out,
                      {{"mean", f32(dist.mean)},
                       {"logvar", f32(dist.logvar)},
                       {"latents", f32(dist.mean) * vae->scaling_factor()},
                       {"decoded", f32(decoded.image)}},
                      {{"model", model}, {"dtype", sdl::dtype_label(dtype)},
                       {"scaling_factor", std::to_string(vae->scaling_factor())}});
    return 0;
}

sdl::cli::Register reg{"vae", "Encode an image and decode the mean (safetensors: mean, logvar, latents, decoded)",
                       {"--tiled"}, run_vae};

} // namespace
