#include "core/pipeline/vae_compare.h"

#include "core/models/runtime.h"
#include "core/pipeline/image_metrics.h"
#include "core/util/error.h"

#include <chrono>

namespace sdl {

namespace {

torch::Tensor to_unit(const torch::Tensor& decoded) { return (decoded.to(torch::kFloat32) / 2 + 0.5).clamp(0, 1).cpu(); }

// [1, 4, h, w] scaled latents -> [3, H, W] in [0, 1].
torch::Tensor decode(const LoadedVae& v, const torch::Tensor& latents, std::vector<std::string>& warnings) {
    AutoencoderKL vae = v.vae;  // the holder shares the module; decoding is not const
    const auto p = vae->parameters().front();
    const bool tiled = latents.size(2) * latents.size(3) > kTiledDecodeAbove;
    auto result = decode_checked(vae, (latents / v.scaling_factor).to(p.device()), tiled);
    if (result.redone_in_fp32)
        warnings.push_back(v.label + ": the fp16 decode overflowed (NaN/Inf); redone in fp32");
    auto image = to_unit(result.image)[0];
    if (!torch::isfinite(image).all().item<bool>())
        throw Error(v.label + ": NaN or Inf in the VAE decode (try --dtype fp32, or check the VAE's weights)");
    return image;
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

VaeResult measured(const LoadedVae& v, const torch::Tensor& reference, torch::Tensor image,
                   std::vector<std::string> warnings, double seconds) {
    VaeResult r;
    r.seconds = seconds;
    r.label = v.label;
    r.path = v.path;
    r.spelling = v.spelling;
    r.warnings = v.warnings;
    r.warnings.insert(r.warnings.end(), warnings.begin(), warnings.end());
    const auto diff = (reference - image).abs();
    r.difference = diff.mean(0);
    r.mean_error = diff.mean().item<double>();
    r.max_error = diff.max().item<double>() * 255.0;
    r.psnr = psnr(reference, image);
    r.ssim = ssim(reference, image);
    r.image = std::move(image);
    return r;
}

void check_vaes(const std::vector<LoadedVae>& vaes) {
    if (vaes.empty())
        throw UsageError("no VAE to compare");
}

} // namespace

std::vector<VaeResult> compare_vae_round_trips(const std::vector<LoadedVae>& vaes, const torch::Tensor& image) {
    c10::InferenceMode guard;
    check_vaes(vaes);
    if (image.dim() != 4 || image.size(0) != 1 || image.size(1) != 3 || image.size(2) % 8 || image.size(3) % 8)
        throw Error("VAE comparison: expected one image [1, 3, H, W] with H and W multiples of 8");
    const auto reference = to_unit(image)[0];
    std::vector<VaeResult> out;
    for (const auto& v : vaes) {
        const auto t0 = std::chrono::steady_clock::now();
        AutoencoderKL vae = v.vae;  // the holder shares the module; encode is not const
        const auto p = vae->parameters().front();
        const auto mean = vae->encode(image.to(p.device())).mean.to(torch::kFloat32).cpu();
        const auto latents = mean * v.scaling_factor;  // [1, 4, h, w]
        std::vector<std::string> warnings;
        auto decoded = decode(v, latents, warnings);
        VaeResult r = measured(v, reference, std::move(decoded), std::move(warnings), seconds_since(t0));
        r.latents = latents[0];
        const auto flat = r.latents.flatten(1);  // [4, h*w]
        for (int64_t c = 0; c < flat.size(0); ++c) {
            r.channel_mean.push_back(flat[c].mean().item<double>());
            r.channel_std.push_back(flat[c].std().item<double>());
        }
        out.push_back(std::move(r));
    }
    return out;
}

std::vector<VaeResult> decode_with_vaes(const std::vector<LoadedVae>& vaes, const torch::Tensor& latents) {
    c10::InferenceMode guard;
    check_vaes(vaes);
    if (latents.dim() != 4 || latents.size(0) != 1 || latents.size(1) != 4)
        throw Error("VAE comparison: expected one set of latents [1, 4, h, w]");
    std::vector<VaeResult> out;
    torch::Tensor reference;
    for (const auto& v : vaes) {
        const auto t0 = std::chrono::steady_clock::now();
        std::vector<std::string> warnings;
        auto decoded = decode(v, latents.to(torch::kFloat32), warnings);
        if (!reference.defined())
            reference = decoded;
        const double seconds = seconds_since(t0);
        out.push_back(measured(v, reference, std::move(decoded), std::move(warnings), seconds));
    }
    return out;
}

std::vector<LoadedVae> load_vaes_for(const StableDiffusion& sd, const std::vector<std::string>& vaes) {
    const auto& info = sd.info();
    const auto device = parse_device(info.device);
    std::vector<LoadedVae> out;
    for (const auto& path : vaes)
        out.push_back(load_vae_for(info.path, path, info.precision.vae_encode.dtype, info.precision.vae_decode.dtype,
                                   device));
    return out;
}

} // namespace sdl
