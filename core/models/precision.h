#pragma once
// Which precision each network runs in on a CPU. bf16 is not faster everywhere: on an Intel Xeon with
// AVX512-BF16 but no AMX the VAE decodes 1.6x slower in bf16 than in fp32 while the U-Net runs 1.9x
// faster, and on an AMD EPYC bf16 wins for both. So on first use of a CPU each network is timed in both
// (core/models/precision_probe.h) and the faster kept, as cuDNN's benchmark mode does; the choice is
// remembered in a small JSON file per CPU, LibTorch version, thread count and network shape.
#include <torch/torch.h>

#include <optional>
#include <string>
#include <vector>

namespace sdl {

// bf16 is eligible for a network only while one probe call's output stays within this relative RMS
// difference (||bf16 - fp32|| / ||fp32||) of fp32's. bf16 keeps 8 significant bits (0.4 % per rounding);
// through a whole network the probe measures 1.3-2.5 % (tiny and SD 1.5-size models: U-Net 1.9-2.4 %,
// VAE encode 2.1-2.2 %, VAE decode 1.3-1.4 %), and with those networks the images stay within the tested
// 4/255 mean and 33 dB of fp32's (core/models/runtime.h). 5 % leaves twice that for other weights, while
// what bf16 gets wrong (overflow to Inf, NaN, a broken kernel) is off by tens of percent or more.
constexpr double kBf16ErrorBound = 0.05;

// The networks timed separately: the VAE's two halves run at different sizes and costs, and the text
// encoder, which runs once per prompt, follows the U-Net.
enum class PrecisionNetwork { Unet, VaeEncode, VaeDecode };
const char* network_key(PrecisionNetwork n);    // "unet", "vae_encode", "vae_decode"
const char* network_label(PrecisionNetwork n);  // "U-Net", "VAE encode", "VAE decode"

// One network timed in both precisions: the fastest call of each, and bf16's relative RMS difference
// from fp32's output (infinity when bf16 gave NaN or Inf).
struct PrecisionMeasurement {
    double fp32_seconds = 0;
    double bf16_seconds = 0;
    double bf16_error = 0;
    std::string date;  // YYYY-MM-DD, local time
};

struct NetworkPrecision {
    torch::Dtype dtype = torch::kFloat32;
    std::string reason;  // "--dtype", "no native bf16", "measured 1.93x faster", "measured: bf16 1.6x slower", ...
    std::optional<PrecisionMeasurement> measured;
    bool cached = false;  // measured on an earlier run and read back from the cache
};

// bf16 when it is faster and within kBf16ErrorBound, else fp32; the reason gives the ratio or the error.
NetworkPrecision decide_precision(const PrecisionMeasurement& m);
NetworkPrecision fixed_precision(torch::Dtype dtype, std::string reason);

struct PrecisionPlan {
    NetworkPrecision unet;        // and the text encoder
    NetworkPrecision vae_encode;  // encoder + quant_conv
    NetworkPrecision vae_decode;  // post_quant_conv + decoder
    double probe_seconds = 0;     // spent measuring at this load; 0 when nothing was measured
    // "bf16" when every network runs in it, else "U-Net bf16 · VAE encode bf16 · VAE decode fp32".
    std::string dtypes() const;
    // "U-Net bf16 (measured 1.93x faster), VAE encode bf16 (...), VAE decode fp32 (measured: bf16 1.6x
    // slower), cached 2026-12-01"; "fp32 for every network (--dtype)" when one reason covers all.
    std::string summary() const;
};

// An entry's identity: a measurement holds only for the CPU, LibTorch build, thread count and network
// shape it was made with.
struct PrecisionKey {
    std::string cpu;
    std::string libtorch;
    int threads = 0;
    std::string network;    // network_key()
    std::string signature;  // the network's shape, e.g. "unet 320,640,1280,1280 x768"
};
// This process's CPU (/proc/cpuinfo "model name"), LibTorch and thread count.
PrecisionKey precision_key(PrecisionNetwork network, std::string signature);
std::string cpu_model_name();  // "unknown" where /proc/cpuinfo has no model name

// The measurements kept between runs. Nothing about the file is an error: a missing, unreadable,
// corrupt or older-format file reads as empty (and is replaced by the next store), and a failed write
// only returns a warning.
class PrecisionCache {
public:
    explicit PrecisionCache(std::string path);
    // $SDLENS_CACHE_DIR, else $XDG_CACHE_HOME/sdlens, else ~/.cache/sdlens; then /precision.json.
    static std::string default_path();
    const std::string& path() const { return path_; }

    struct Entry {
        torch::Dtype dtype = torch::kFloat32;
        PrecisionMeasurement measurement;
    };
    std::optional<Entry> find(const PrecisionKey& key) const;
    // Adds the entries, replacing those with the same keys, and writes the file whole (through a
    // temporary file renamed over it, so a reader never sees half of it). Returns "" or a warning.
    std::string store(const std::vector<std::pair<PrecisionKey, Entry>>& entries) const;

    static constexpr int kFormat = 1;

private:
    std::string path_;
};

// What an entry read back means: its stored dtype, and why, from its measurement.
NetworkPrecision cached_precision(const PrecisionCache::Entry& e);

} // namespace sdl
