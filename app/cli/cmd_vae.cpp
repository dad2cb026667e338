// sdlens-cli vae [--model PATH] [--vae PATH]... (--image PNG | --input FILE:KEY) [--tiled]
//                (--out FILE | --out-dir DIR)
// The VAE round trip: the encoder's Gaussian and the decode of its mean (--out, one VAE), or the same
// image through several VAEs side by side (--out-dir: reconstructions, difference images, metrics).
#include "app/cli/command.h"
#include "app/cli/runtime_flags.h"
#include "core/io/tensor_io.h"
#include "core/models/load.h"
#include "core/models/runtime.h"
#include "core/pipeline/image_tensor.h"
#include "core/pipeline/vae_compare.h"
#include "core/util/error.h"
#include "core/util/image_io.h"

#include <nlohmann/json.hpp>

#include <cmath>
#include <filesystem>
#include <iostream>

namespace {

// Reconstruction errors are a few levels out of 255; ten times is what makes them visible.
constexpr double kDifferenceGain = 10.0;

void save_round_trip(sdl::LoadedVae& v, const torch::Tensor& image, bool tiled, const std::string& out,
                     const std::string& model, torch::Dtype dtype, torch::Device device) {
    const auto dist = v.vae->encode(image.to(device, dtype));
    const auto decoded = sdl::decode_checked(v.vae, dist.mean, tiled);
    if (decoded.redone_in_fp32)
        std::cerr << "sdlens-cli vae: the fp16 decode overflowed (NaN/Inf); redone in fp32\n";
    const auto f32 = [](const torch::Tensor& t) { return t.to(torch::kCPU, torch::kFloat); };
    sdl::save_tensors(out,
                      {{"mean", f32(dist.mean)},
                       {"logvar", f32(dist.logvar)},
                       {"latents", f32(dist.mean) * v.scaling_factor},
                       {"decoded", f32(decoded.image)}},
                      {{"model", model}, {"vae", v.path.empty() ? "model" : v.path},
                       {"dtype", sdl::dtype_label(dtype)}, {"scaling_factor", std::to_string(v.scaling_factor)}});
}

// PSNR is infinite for a perfect reconstruction; JSON has no infinity.
nlohmann::json finite_or_null(double v) { return std::isfinite(v) ? nlohmann::json(v) : nlohmann::json(); }

void save_comparison(const std::vector<sdl::LoadedVae>& vaes, const torch::Tensor& image, const std::string& dir) {
    namespace fs = std::filesystem;
    fs::create_directories(dir);
    const auto results = sdl::compare_vae_round_trips(vaes, image);
    const std::string original = (fs::path(dir) / "original.png").string();
    sdl::write_png(original, sdl::tensor_to_image(image / 2 + 0.5));
    nlohmann::ordered_json out = {{"original", original},
                                  {"width", image.size(3)},
                                  {"height", image.size(2)},
                                  {"difference_gain", kDifferenceGain},
                                  {"vaes", nlohmann::ordered_json::array()}};
    for (size_t i = 0; i < results.size(); ++i) {
        const auto& r = results[i];
        const std::string stem = "vae-" + std::to_string(i + 1);
        const std::string recon = (fs::path(dir) / (stem + ".png")).string();
        const std::string diff = (fs::path(dir) / (stem + "-difference.png")).string();
        sdl::write_png(recon, sdl::tensor_to_image(r.image), {{"vae", r.path.empty() ? "model" : r.path}});
        sdl::write_png(diff, sdl::tensor_to_image((r.difference * kDifferenceGain).clamp(0, 1).expand({3, -1, -1})));
        for (const auto& w : r.warnings)
            std::cerr << "warning: " << w << '\n';
        out["vaes"].push_back({{"label", r.label},
                               {"path", r.path.empty() ? "model" : r.path},
                               {"spelling", r.spelling},
                               {"psnr", finite_or_null(r.psnr)},
                               {"ssim", r.ssim},
                               {"max_error", r.max_error},
                               {"mean_error", r.mean_error},
                               {"latent_mean", r.channel_mean},
                               {"latent_std", r.channel_std},
                               {"seconds", r.seconds},
                               {"reconstruction", recon},
                               {"difference", diff},
                               {"warnings", r.warnings}});
    }
    std::cout << out.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace) << '\n';
}

int run_vae(sdl::cli::Args& args) {
    const std::string model = args.get_or("--model", "");
    const auto vae_paths = args.all("--vae");
    const auto image_path = args.get("--image");
    const auto input_arg = args.get("--input");
    const auto out = args.get("--out");
    const auto out_dir = args.get("--out-dir");
    const bool tiled = args.has("--tiled");
    const auto rt = sdl::cli::runtime_options(args);
    args.finish();
    if (image_path.has_value() == input_arg.has_value())
        throw sdl::UsageError("give exactly one of --image PNG or --input FILE:KEY");
    if (out.has_value() == out_dir.has_value())
        throw sdl::UsageError("give exactly one of --out FILE (one VAE) or --out-dir DIR (a comparison)");
    if (model.empty() && vae_paths.empty())
        throw sdl::UsageError("give --model PATH, --vae PATH, or both");
    if (out && vae_paths.size() > 1)
        throw sdl::UsageError("--out takes one VAE; compare several with --out-dir DIR");
    if (out_dir && tiled)
        throw sdl::UsageError("--tiled applies to --out; a comparison decodes in tiles by itself above 768x768");
    const auto device = sdl::parse_device(rt.device);
    const auto dtype = sdl::parse_dtype(rt.dtype, device);
    if (rt.threads > 0)
        at::set_num_threads(rt.threads);

    // [1, 3, H, W] in [-1, 1]
    const auto image = image_path ? sdl::image_to_tensor(sdl::read_image(*image_path)) : sdl::load_tensor_arg(*input_arg);
    torch::NoGradGuard no_grad;
    if (out) {
        auto v = sdl::load_vae_for(model, vae_paths.empty() ? "" : vae_paths.front(), dtype, device);
        for (const auto& w : v.warnings)
            std::cerr << "warning: " << w << '\n';
        save_round_trip(v, image, tiled, *out, model, dtype, device);
        return 0;
    }
    // The model's own VAE first (the reference of the comparison), then each --vae in order.
    std::vector<sdl::LoadedVae> vaes;
    if (!model.empty())
        vaes.push_back(sdl::load_vae_for(model, "", dtype, device));
    for (const auto& p : vae_paths)
        vaes.push_back(sdl::load_vae_for(model, p, dtype, device));
    save_comparison(vaes, image, *out_dir);
    return 0;
}

sdl::cli::Register reg{"vae",
                       "Encode an image and decode the mean (safetensors: mean, logvar, latents, decoded), or compare "
                       "VAEs on it (--out-dir)",
                       {"--tiled"}, run_vae};

} // namespace
