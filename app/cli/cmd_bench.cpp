// sdlens-cli bench: one JSON object of timings for people and notes (not a test: machines are noisy).
#include "app/cli/command.h"
#include "app/cli/runtime_flags.h"
#include "core/util/error.h"
#include "core/models/flash_attention.h"
#include "core/models/onednn_conv.h"
#include "core/models/runtime.h"
#include "core/pipeline/pipeline.h"

#include <nlohmann/json.hpp>

#include <torch/csrc/autograd/profiler_legacy.h>
#include <torch/version.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <map>
#include <sys/resource.h>

namespace sdl::cli {

namespace {

using Clock = std::chrono::steady_clock;

double ms_since(Clock::time_point t0) {
    return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

double peak_rss_mb() {
    rusage u{};
    getrusage(RUSAGE_SELF, &u);
    return u.ru_maxrss / 1024.0;
}

// Lines of at::show_config() that say which BLAS and oneDNN LibTorch was built with.
std::vector<std::string> backend_lines() {
    std::vector<std::string> out;
    std::string cfg = at::show_config();
    size_t pos = 0;
    while (pos < cfg.size()) {
        const size_t end = cfg.find('\n', pos);
        std::string line = cfg.substr(pos, end == std::string::npos ? std::string::npos : end - pos);
        if (line.find("BLAS") != std::string::npos || line.find("MKL") != std::string::npos ||
            line.find("oneDNN") != std::string::npos || line.find("OpenMP") != std::string::npos) {
            line.erase(0, line.find_first_not_of(" -"));
            out.push_back(line);
        }
        if (end == std::string::npos)
            break;
        pos = end + 1;
    }
    return out;
}

void sync(const torch::Device& d) {
    if (d.is_cuda())
        torch::cuda::synchronize();
}

struct Stats {
    double median = 0, min = 0;
};

template <class F>
Stats time_repeated(int repeat, const torch::Device& device, F&& f) {
    f();  // warm-up: first calls allocate and pick kernels
    sync(device);
    std::vector<double> ms;
    for (int i = 0; i < repeat; ++i) {
        const auto t0 = Clock::now();
        f();
        sync(device);
        ms.push_back(ms_since(t0));
    }
    std::sort(ms.begin(), ms.end());
    return {ms[ms.size() / 2], ms.front()};
}

// Self time (children excluded) per operator over one run of f, largest first: says whether
// convolutions, matmuls, norms or copies dominate without an external profiler.
template <class F>
nlohmann::json profile_ops(F&& f) {
    namespace prof = torch::autograd::profiler;
    std::map<std::string, std::pair<double, int>> self;  // name -> (self ms, calls)
    {
        prof::TLSLegacyProfilerGuard guard(
            torch::profiler::impl::ProfilerConfig(torch::profiler::impl::ProfilerState::CPU),
            [&](const prof::thread_event_lists& lists) {
                for (const auto& events : lists) {
                    // Open ranges: the push event and the time its children took.
                    std::vector<std::pair<const prof::LegacyEvent*, double>> open;
                    for (const auto& e : events) {
                        if (e.kindStr() == "push") {
                            open.emplace_back(&e, 0.0);
                        } else if (e.kindStr() == "pop" && !open.empty()) {
                            const auto [start, children] = open.back();
                            open.pop_back();
                            const double ms = start->cpuElapsedUs(e) / 1000.0;
                            auto& slot = self[start->name()];
                            slot.first += ms - children;
                            slot.second += 1;
                            if (!open.empty())
                                open.back().second += ms;
                        }
                    }
                }
            });
        f();
    }
    std::vector<std::pair<std::string, std::pair<double, int>>> rows(self.begin(), self.end());
    std::sort(rows.begin(), rows.end(), [](const auto& a, const auto& b) { return a.second.first > b.second.first; });
    nlohmann::json out = nlohmann::json::array();
    for (size_t i = 0; i < rows.size() && i < 15; ++i)
        out.push_back({{"op", rows[i].first}, {"self_ms", rows[i].second.first}, {"calls", rows[i].second.second}});
    return out;
}

nlohmann::json network_precision_json(const NetworkPrecision& p) {
    nlohmann::json j = {{"dtype", dtype_label(p.dtype)}, {"reason", p.reason}};
    if (p.measured) {
        const auto& m = *p.measured;
        j["fp32_seconds"] = m.fp32_seconds;
        j["bf16_seconds"] = m.bf16_seconds;
        j["bf16_error"] = std::isfinite(m.bf16_error) ? nlohmann::json(m.bf16_error) : nlohmann::json(nullptr);
        j["measured"] = m.date;
        j["cached"] = p.cached;
    }
    return j;
}

// Each network's dtype and why; the text encoder runs in the U-Net's.
nlohmann::json precision_json(const PrecisionPlan& plan) {
    return {{"summary", plan.summary()},
            {"unet", network_precision_json(plan.unet)},
            {"vae_encode", network_precision_json(plan.vae_encode)},
            {"vae_decode", network_precision_json(plan.vae_decode)},
            {"probe_seconds", plan.probe_seconds}};
}

int run_bench(Args& args) {
    const std::string model = args.required("--model");
    const int width = args.get_int("--width", 512);
    const int height = args.get_int("--height", 512);
    const int steps = args.get_int("--steps", 20);
    const std::string scheduler = args.get_or("--scheduler", "lms");
    const int repeat = std::max(1, args.get_int("--repeat", 3));
    const bool skip_pipeline = args.has("--no-pipeline");
    const bool profile = args.has("--profile");
    const bool attention = args.has("--attention");
    const std::string kernel = args.get_or("--attention-kernel", "flash");
    const std::string conv = args.get_or("--conv-kernel", have_onednn_conv() ? "onednn" : "aten");
    const RuntimeOptions options = runtime_options_with_vae(args);
    args.finish();
    if (width <= 0 || height <= 0 || width % 8 || height % 8)
        throw UsageError("--width and --height must be positive multiples of 8");
    if (kernel != "flash" && kernel != "sdpa" && kernel != "plain")
        throw UsageError("--attention-kernel is flash, sdpa or plain, not '" + kernel + "'");
    set_cpu_attention(kernel == "plain" ? CpuAttention::plain
                      : kernel == "sdpa" ? CpuAttention::sdpa
                                         : CpuAttention::flash);
    if (conv != "onednn" && conv != "aten")
        throw UsageError("--conv-kernel is onednn or aten, not '" + conv + "'");
    set_cpu_conv(conv == "aten" ? CpuConv::aten : CpuConv::onednn);

    const auto t_load = Clock::now();
    auto sd = StableDiffusion::load(model, options);
    print_load_warnings(*sd);
    const double load_s = ms_since(t_load) / 1000.0;
    const torch::Device device(options.device == "cuda" ? torch::kCUDA : torch::kCPU);

    nlohmann::json j;
    j["versions"] = {{"libtorch", TORCH_VERSION},
                     {"device", device.is_cuda() ? "cuda" : cpu_model_name()},
                     {"backends", backend_lines()},
                     {"threads", at::get_num_threads()}};
    j["attention_kernel"] = device.is_cuda() ? "cuda" : cpu_attention_label();
    j["memory_format"] = options.channels_last ? "channels-last" : "contiguous";
    j["cuda_graph"] = options.cuda_graph;
    j["nan_check"] = options.deferred_nan_check ? "after the last step" : "every step";
    j["model"] = model;
    j["vae"] = sd->info().vae.empty() ? "model" : sd->info().vae_path;
    for (const LoraReport& l : sd->loras())
        j["loras"].push_back({{"path", l.path}, {"strength", l.strength}, {"layers", l.layers.size()}});
    for (const EmbeddingInfo& e : sd->embeddings())
        j["embeddings"].push_back({{"path", e.path}, {"trigger", e.trigger}, {"vectors", e.vectors}});
    j["dtype"] = sd->info().dtype;
    j["precision"] = precision_json(sd->info().precision);
    j["size"] = {width, height};
    j["load_s"] = load_s;

    const int64_t h = height / 8, w = width / 8;
    torch::Tensor context;
    const Stats te = time_repeated(repeat, device, [&] { context = sd->encode_prompt("a dog wearing hat"); });
    auto ctx2 = torch::cat({context, context});
    auto sample = torch::randn({2, 4, h, w});
    const Stats unet = time_repeated(repeat, device, [&] { sd->predict_noise(sample, 500.0, ctx2); });
    auto image = torch::rand({1, 3, height, width}) * 2 - 1;
    const Stats enc = time_repeated(repeat, device, [&] { sd->encode_image(image); });
    auto latents = torch::randn({1, 4, h, w});
    const Stats dec = time_repeated(repeat, device, [&] { sd->decode_latents(latents); });
    j["text_encode_ms"] = {{"median", te.median}, {"min", te.min}};
    j["unet_call_ms"] = {{"batch", 2}, {"median", unet.median}, {"min", unet.min}};
    j["vae_encode_ms"] = {{"median", enc.median}, {"min", enc.min}};
    j["vae_decode_ms"] = {{"median", dec.median}, {"min", dec.min}};
    j["conv_kernel"] = device.is_cuda() ? "cuda" : cpu_conv_label();  // after a call: oneDNN's choice is known
    if (profile) {
        j["profile"]["unet_call"] = profile_ops([&] { sd->predict_noise(sample, 500.0, ctx2); });
        j["profile"]["vae_decode"] = profile_ops([&] { sd->decode_latents(latents); });
    }

    if (!skip_pipeline) {
        GenerateRequest r;
        r.prompt = "a dog wearing hat";
        r.steps = steps;
        r.width = width;
        r.height = height;
        r.scheduler = scheduler;
        r.seed = 0;
        PipelineObserver obs;
        const auto t0 = Clock::now();
        sd->generate(r, obs);
        sync(device);
        const double s = ms_since(t0) / 1000.0;
        j["pipeline"] = {{"steps", steps}, {"scheduler", scheduler}, {"seconds", s}, {"it_per_s", steps / s}};
        if (attention) {
            // The same run recording the maps, kept as the GUI keeps them: what asking for them costs.
            struct Keep : PipelineObserver {
                int64_t bytes = 0;
                std::vector<torch::Tensor> kept;
                void on_step(const StepEvent& e) override {
                    kept.push_back(e.attention);
                    kept.insert(kept.end(), e.attention_levels.begin(), e.attention_levels.end());
                    for (auto it = kept.end() - 1 - static_cast<std::ptrdiff_t>(e.attention_levels.size());
                         it != kept.end(); ++it)
                        bytes += it->numel() * static_cast<int64_t>(it->element_size());
                }
            } keep;
            r.record_attention = true;
            const double rss_before = peak_rss_mb();
            const auto t1 = Clock::now();
            sd->generate(r, keep);
            sync(device);
            const double sa = ms_since(t1) / 1000.0;
            j["pipeline_with_attention"] = {{"seconds", sa},
                                            {"it_per_s", steps / sa},
                                            {"extra_seconds_per_step", (sa - s) / steps},
                                            {"maps_mb", keep.bytes / 1048576.0},
                                            {"peak_rss_growth_mb", peak_rss_mb() - rss_before}};
        }
    }
    j["peak_rss_mb"] = peak_rss_mb();
    std::printf("%s\n", j.dump(2).c_str());
    return 0;
}

const Register reg{"bench",
                   "Time text encoder, U-Net call, VAE and the whole pipeline (JSON; --no-pipeline skips the run, "
                   "--profile adds the operators taking the most time, --attention runs the pipeline again "
                   "recording the cross-attention maps; --attention-kernel sdpa times the CPU attention through LibTorch "
                   "2.x's scaled_dot_product_attention, plain as bmm, softmax, bmm, instead of the flash kernel; "
                   "--conv-kernel aten runs the CPU convolutions through LibTorch instead of oneDNN with prepacked "
                   "weights; "
                   "--memory-format channels-last runs the U-Net and the VAE in NHWC order; --cuda-graph replays "
                   "the U-Net call as a CUDA graph; --deferred-nan-check reads the latents' NaN check once, after "
                   "the last step)",
                   {"--no-pipeline", "--profile", "--attention", "--cuda-graph", "--deferred-nan-check"}, run_bench};

} // namespace
} // namespace sdl::cli
