#pragma once
// Loads the U-Net and the VAE in the precision each runs fastest in on this machine (core/models/precision.h):
// from the cache when this CPU, LibTorch, thread count and network shape were measured before, else by
// timing each network on a small input in fp32 and then in bf16.
#include "core/io/model_files.h"
#include "core/models/autoencoder_kl.h"
#include "core/models/configs.h"
#include "core/models/precision.h"
#include "core/models/unet_2d_condition.h"

#include <torch/torch.h>

#include <functional>
#include <string>
#include <vector>

namespace sdl {

struct PrecisionRequest {
    torch::Device device = torch::kCPU;
    std::string dtype;  // "fp32", "fp16", "bf16" for every network (--dtype); "" to choose
    // One network's dtype, over dtype and the measurement; "" leaves it to them.
    std::string unet_dtype, vae_encode_dtype, vae_decode_dtype;
};

struct ChosenPrecisionNetworks {
    UNet2DConditionModel unet{nullptr};
    AutoencoderKL vae{nullptr};
    PrecisionPlan plan;
    std::vector<std::string> warnings;  // a cache file that could not be written
};

// Without a dtype, on a CPU with native bf16 (cpu_has_native_bf16) each network not in the cache is
// timed (SD 1.5: about 10 s on 2 cores, once). Elsewhere fp16 on CUDA and fp32 on CPUs without
// native bf16, where emulated bf16 is slower. SDLENS_PRECISION_PROBE=0 turns the measurement off: bf16
// for every network then, as before measurements existed. The VAE is held in both precisions while it is
// timed (SD 1.5: 0.5 GB), so that fp32 and bf16 calls alternate. The U-Net is held once: loaded in fp32,
// timed, cast to bf16 in place and timed again, and read from its file again when fp32 wins, so the peak
// is that of an fp32 load (SD 1.5: 3.4 GB) rather than both (5.1 GB).
ChosenPrecisionNetworks load_in_chosen_precision(const ModelFiles& files, const PrecisionRequest& request);

// The shapes a measurement depends on: SD 1.5's U-Net is "unet 320,640,1280,1280 x768 l2", its VAE
// "vae 128,256,512,512 l2".
std::string unet_signature(const UNet2DConditionConfig& c);
std::string vae_signature(const AutoencoderKLConfig& c);

struct TimedCall {
    double seconds = 0;  // the fastest timed call
    torch::Tensor output;
};
// A warm-up call of each (it allocates and picks kernels), then rounds calling each in turn (two, or
// up to five for calls shorter than 0.15 s); per run the fastest call. On a machine shared with other
// work the minimum is the call least disturbed, and alternating puts the runs under the same load.
std::vector<TimedCall> time_calls(const std::vector<std::function<torch::Tensor()>>& runs);
// ||approx - reference|| / ||reference|| in float64; infinity when approx is not finite.
double relative_error(const torch::Tensor& reference, const torch::Tensor& approx);

} // namespace sdl
