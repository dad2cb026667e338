#include "core/models/precision_probe.h"

#include "core/models/load.h"
#include "core/models/runtime.h"

#include <ATen/CPUGeneratorImpl.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <ctime>
#include <limits>
#include <optional>

namespace sdl {

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

// Probe sizes, for SD 1.5 on 2 cores: a U-Net call on 8x8 latents takes 1.2-1.4 s in fp32 and 0.35-0.45 s
// in bf16, much of it reading the weights (3.4 GB in fp32); 16x16 (1.9 s / 0.45 s) would nearly double
// the probe. A 64x64 image takes the VAE 0.1-0.25 s per call. These sizes show the sign of the difference
// the networks have at full size, if not its size (measured here: U-Net 3.3x faster in bf16 at 8x8, 2.65x
// at 32x32 batch 2; VAE encode and decode 1.4-1.6x at 64x64 and at 256x256).
constexpr int64_t kUnetLatentSide = 8;
constexpr int64_t kVaeLatentSide = 8;
constexpr double kProbeTimestep = 500;  // mid-schedule: a typical step

std::string join(const std::vector<int64_t>& v) {
    std::string s;
    for (int64_t x : v)
        s += (s.empty() ? "" : ",") + std::to_string(x);
    return s;
}

std::string today() {
    const std::time_t now = std::time(nullptr);
    std::tm local{};
    localtime_r(&now, &local);
    char buf[16];
    std::strftime(buf, sizeof buf, "%Y-%m-%d", &local);
    return buf;
}

bool probe_disabled() {
    const char* v = std::getenv("SDLENS_PRECISION_PROBE");
    return v && std::string(v) == "0";
}

torch::Tensor probe_randn(at::IntArrayRef shape, uint64_t seed) {
    return torch::randn(shape, at::detail::createCPUGenerator(seed), torch::TensorOptions().dtype(torch::kFloat));
}

PrecisionMeasurement measurement(const TimedCall& fp32, const TimedCall& bf16) {
    return {fp32.seconds, bf16.seconds, relative_error(fp32.output, bf16.output), today()};
}

// The U-Net once per precision: a fp32 load, timed, cast to bf16 in place, timed again.
struct UnetProbe {
    UNet2DConditionModel unet;
    PrecisionMeasurement m;
};
UnetProbe probe_unet(const ComponentFiles& files, const torch::Device& device) {
    UnetProbe p{load_unet(files, torch::kFloat, device), {}};
    const auto& c = p.unet->config();
    const auto sample = probe_randn({1, c.in_channels, kUnetLatentSide, kUnetLatentSide}, 1).to(device);
    const auto context = probe_randn({1, 77, c.cross_attention_dim.front()}, 2).to(device);
    torch::Dtype dtype = torch::kFloat;
    const std::function<torch::Tensor()> run = [&] {
        return p.unet->forward(sample.to(dtype), kProbeTimestep, context.to(dtype)).to(torch::kFloat);
    };
    const TimedCall fp32 = time_calls({run}).front();
    dtype = torch::kBFloat16;
    p.unet->to(dtype);
    p.m = measurement(fp32, time_calls({run}).front());
    return p;
}

// The VAE in both precisions, calls alternating. Returns the fp32 VAE.
struct VaeProbe {
    AutoencoderKL vae;
    std::optional<PrecisionMeasurement> encode, decode;
};
VaeProbe probe_vae(const ComponentFiles& files, const torch::Device& device, bool encode, bool decode) {
    VaeProbe p{load_vae(files, torch::kFloat, device), {}, {}};
    AutoencoderKL bf16 = load_vae(files, torch::kBFloat16, device);
    const auto& c = p.vae->config();
    const int64_t side = kVaeLatentSide * c.downscale();
    const auto image = probe_randn({1, c.in_channels, side, side}, 3).clamp(-1, 1).to(device);
    // The decoder sees latents divided by the scaling factor, several times larger than unit noise.
    const auto latents =
        (probe_randn({1, c.latent_channels, kVaeLatentSide, kVaeLatentSide}, 4) / c.scaling_factor).to(device);
    const auto encoding = [&](AutoencoderKL vae) -> std::function<torch::Tensor()> {
        return [vae, &image]() mutable { return vae->encode(image).mean.to(torch::kFloat); };
    };
    const auto decoding = [&](AutoencoderKL vae) -> std::function<torch::Tensor()> {
        return [vae, &latents]() mutable { return vae->decode(latents).to(torch::kFloat); };
    };
    if (encode) {
        const auto t = time_calls({encoding(p.vae), encoding(bf16)});
        p.encode = measurement(t[0], t[1]);
    }
    if (decode) {
        const auto t = time_calls({decoding(p.vae), decoding(bf16)});
        p.decode = measurement(t[0], t[1]);
    }
    return p;
}

} // namespace

std::string unet_signature(const UNet2DConditionConfig& c) {
    return "unet " + join(c.block_out_channels) + " x" + join(c.cross_attention_dim) + " l" + join(c.layers_per_block);
}

std::string vae_signature(const AutoencoderKLConfig& c) {
    return "vae " + join(c.block_out_channels) + " l" + std::to_string(c.layers_per_block);
}

std::vector<TimedCall> time_calls(const std::vector<std::function<torch::Tensor()>>& runs) {
    // Short calls get more rounds, up to kMaxRounds, until each run has spent kEnough timed: one
    // disturbed 0.1 s call says little, while two 1 s calls are already a fair minimum.
    constexpr int kMinRounds = 2, kMaxRounds = 5;
    constexpr double kEnough = 0.3;
    for (const auto& run : runs)
        run();
    std::vector<TimedCall> best(runs.size(), {std::numeric_limits<double>::infinity(), {}});
    std::vector<double> spent(runs.size(), 0.0);
    for (int round = 0; round < kMaxRounds; ++round) {
        if (round >= kMinRounds && *std::min_element(spent.begin(), spent.end()) >= kEnough)
            break;
        for (size_t i = 0; i < runs.size(); ++i) {
            const auto t0 = Clock::now();
            auto out = runs[i]();
            const double s = seconds_since(t0);
            spent[i] += s;
            if (s < best[i].seconds)
                best[i] = {s, std::move(out)};
        }
    }
    return best;
}

double relative_error(const torch::Tensor& reference, const torch::Tensor& approx) {
    const auto a = approx.to(torch::kCPU, torch::kDouble);
    if (!torch::isfinite(a).all().item<bool>())
        return std::numeric_limits<double>::infinity();
    const auto r = reference.to(torch::kCPU, torch::kDouble);
    const double norm = r.norm().item<double>();
    const double diff = (a - r).norm().item<double>();
    if (norm == 0)
        return diff == 0 ? 0 : std::numeric_limits<double>::infinity();
    return diff / norm;
}

ChosenPrecisionNetworks load_in_chosen_precision(const ModelFiles& files, const PrecisionRequest& request) {
    c10::InferenceMode guard;
    const torch::Device& device = request.device;
    ChosenPrecisionNetworks out;
    PrecisionPlan& plan = out.plan;

    // Each network's choice when it needs no measurement: forced, fixed for the machine, or cached.
    std::optional<NetworkPrecision> unet, encode, decode;
    const auto all = [&](torch::Dtype d, const std::string& why) { unet = encode = decode = fixed_precision(d, why); };
    if (!request.dtype.empty())
        all(parse_dtype(request.dtype, device), "--dtype");
    else if (device.is_cuda())
        all(default_dtype(device), "CUDA default");
    else if (!cpu_has_native_bf16())
        all(torch::kFloat, "no native bf16");
    else if (probe_disabled())
        all(torch::kBFloat16, "SDLENS_PRECISION_PROBE=0");
    const auto override_with = [&](std::optional<NetworkPrecision>& p, const std::string& dtype) {
        if (!dtype.empty())
            p = fixed_precision(parse_dtype(dtype, device), "set by the caller");
    };
    override_with(unet, request.unet_dtype);
    override_with(encode, request.vae_encode_dtype);
    override_with(decode, request.vae_decode_dtype);

    const PrecisionCache cache(PrecisionCache::default_path());
    const std::string unet_sig = unet_signature(UNet2DConditionConfig::from_json(files.unet.config));
    const std::string vae_sig = vae_signature(AutoencoderKLConfig::from_json(files.vae.config));
    const auto from_cache = [&](std::optional<NetworkPrecision>& p, PrecisionNetwork n, const std::string& sig) {
        if (!p)
            if (const auto e = cache.find(precision_key(n, sig)))
                p = cached_precision(*e);
    };
    from_cache(unet, PrecisionNetwork::Unet, unet_sig);
    from_cache(encode, PrecisionNetwork::VaeEncode, vae_sig);
    from_cache(decode, PrecisionNetwork::VaeDecode, vae_sig);

    std::vector<std::pair<PrecisionKey, PrecisionCache::Entry>> measured;
    const auto keep = [&](std::optional<NetworkPrecision>& p, PrecisionNetwork n, const std::string& sig,
                          const PrecisionMeasurement& m) {
        p = decide_precision(m);
        measured.push_back({precision_key(n, sig), {p->dtype, m}});
    };

    if (unet) {
        out.unet = load_unet(files.unet, unet->dtype, device);
    } else {
        const auto t0 = Clock::now();
        auto probe = probe_unet(files.unet, device);
        keep(unet, PrecisionNetwork::Unet, unet_sig, probe.m);
        out.unet = std::move(probe.unet);
        if (unet->dtype != torch::kBFloat16) {
            out.unet = nullptr;
            out.unet = load_unet(files.unet, unet->dtype, device);
        }
        plan.probe_seconds += seconds_since(t0);
    }

    if (encode && decode) {
        out.vae = load_vae(files.vae, encode->dtype, decode->dtype, device);
    } else {
        const auto t0 = Clock::now();
        auto probe = probe_vae(files.vae, device, !encode, !decode);
        if (probe.encode)
            keep(encode, PrecisionNetwork::VaeEncode, vae_sig, *probe.encode);
        if (probe.decode)
            keep(decode, PrecisionNetwork::VaeDecode, vae_sig, *probe.decode);
        out.vae = std::move(probe.vae);
        out.vae->set_dtypes(encode->dtype, decode->dtype);
        plan.probe_seconds += seconds_since(t0);
    }

    plan.unet = *unet;
    plan.vae_encode = *encode;
    plan.vae_decode = *decode;
    if (!measured.empty())
        if (std::string warning = cache.store(measured); !warning.empty())
            out.warnings.push_back(std::move(warning));
    return out;
}

} // namespace sdl
