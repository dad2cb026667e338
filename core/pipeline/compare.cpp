#include "core/pipeline/compare.h"

#include "core/pipeline/vae_compare.h"
#include "core/schedulers/scheduler.h"
#include "core/util/error.h"

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <functional>
#include <sstream>

namespace sdl {

namespace {

std::string trimmed(const std::string& s) {
    const auto first = s.find_first_not_of(" \t");
    if (first == std::string::npos)
        return {};
    return s.substr(first, s.find_last_not_of(" \t") - first + 1);
}

std::string format_number(double v) {
    std::ostringstream s;
    s << v;
    return s.str();
}

// from_chars, not strtod: the GUI runs under the user's locale, where strtod may want "7,5".
double parse_guidance(const std::string& text) {
    const std::string t = trimmed(text);
    double v = 0;
    const auto [end, ec] = std::from_chars(t.data(), t.data() + t.size(), v);
    if (t.empty() || ec != std::errc() || end != t.data() + t.size() || !std::isfinite(v) || v < 0)
        throw UsageError("guidance value '" + text + "' is not a number >= 0");
    return v;
}

// Any finite strength: negative ones invert a LoRA, ones above 1 exaggerate it.
double parse_lora_strength(const std::string& text) {
    const std::string t = trimmed(text);
    double v = 0;
    const auto [end, ec] = std::from_chars(t.data(), t.data() + t.size(), v);
    if (t.empty() || ec != std::errc() || end != t.data() + t.size() || !std::isfinite(v))
        throw UsageError("LoRA strength '" + text + "' is not a number");
    return v;
}

int parse_steps(const std::string& text) {
    const std::string t = trimmed(text);
    // The scheduler's bound; a model whose scheduler_config.json trains on fewer timesteps is refused by
    // the pipeline when that run starts.
    const int most = SchedulerConfig{}.num_train_timesteps;
    int v = 0;
    const auto [end, ec] = std::from_chars(t.data(), t.data() + t.size(), v);
    if (t.empty() || ec != std::errc() || end != t.data() + t.size() || v < 1 || v > most)
        throw UsageError("steps value '" + text + "' is not an integer in 1.." + std::to_string(most));
    return v;
}

void check_scheduler(const std::string& name) {
    try {
        default_scheduler_config(name);
    } catch (const Error& e) {
        throw UsageError(e.what());
    }
}

// Labels sit above thumbnails and in JSON; long prompts are cut at a UTF-8 character boundary.
std::string prompt_label(size_t index, const std::string& prompt) {
    const std::string head = "prompt " + std::to_string(index + 1);
    if (prompt.empty())
        return head + " (empty)";
    constexpr size_t kMax = 40;
    if (prompt.size() <= kMax)
        return head + ": " + prompt;
    size_t cut = kMax;
    while (cut > 0 && (static_cast<unsigned char>(prompt[cut]) & 0xC0) == 0x80)
        --cut;
    return head + ": " + prompt.substr(0, cut) + "...";
}

// Passes every event on, and keeps each step's latents so runs can be compared after they finish.
class Forwarder : public PipelineObserver {
public:
    explicit Forwarder(ComparisonObserver& to) : to_(to) {}

    std::vector<torch::Tensor> latents;  // per step: [4, h, w] float32 on the CPU

    void on_tokens(const TokenizedPrompt& cond, const TokenizedPrompt& uncond) override { to_.on_tokens(cond, uncond); }
    void on_text_embeddings(const torch::Tensor& e) override { to_.on_text_embeddings(e); }
    void on_initial_latents(const torch::Tensor& init) override { to_.on_initial_latents(init); }
    void on_timesteps(const torch::Tensor& t, const torch::Tensor& s) override { to_.on_timesteps(t, s); }
    void on_step(const StepEvent& e) override {
        // A copy even when already CPU float32: the pipeline owns the tensor it reports.
        latents.push_back(e.latents[0].to(torch::kCPU, torch::kFloat32, false, true));
        to_.on_step(e);
    }
    void on_image(const torch::Tensor& image) override { to_.on_image(image); }
    void on_message(const std::string& text) override { to_.on_message(text); }
    bool cancel_requested() const override { return to_.cancel_requested(); }

private:
    ComparisonObserver& to_;
};

double mean_abs_difference(const torch::Tensor& a, const torch::Tensor& b) {
    return (a.to(torch::kFloat64) - b.to(torch::kFloat64)).abs().mean().item<double>();
}

} // namespace

Comparison make_comparison(const GenerateRequest& base, const std::string& vary,
                           const std::vector<std::string>& values) {
    if (vary != "prompt" && vary != "guidance" && vary != "scheduler" && vary != "steps" && vary != "vae" &&
        vary != "lora")
        throw UsageError("cannot vary '" + vary + "' (expected prompt, guidance, scheduler, steps, vae or lora)");
    if (values.size() < 2)
        throw UsageError("comparing " + vary + " needs at least two values (got " + std::to_string(values.size()) +
                         ")");
    Comparison c;
    c.vary = vary;
    for (size_t i = 0; i < values.size(); ++i) {
        GenerateRequest r = base;
        r.count = 1;
        if (vary == "prompt") {
            r.prompt = values[i];
            c.labels.push_back(prompt_label(i, r.prompt));
        } else if (vary == "guidance") {
            r.guidance = parse_guidance(values[i]);
            c.labels.push_back("guidance " + format_number(r.guidance));
        } else if (vary == "scheduler") {
            r.scheduler = trimmed(values[i]);
            check_scheduler(r.scheduler);
            c.labels.push_back("scheduler " + r.scheduler);
        } else if (vary == "steps") {
            r.steps = parse_steps(values[i]);
            c.labels.push_back("steps " + std::to_string(r.steps));
        } else if (vary == "lora") {
            c.lora_strengths.push_back(parse_lora_strength(values[i]));
            c.labels.push_back("lora " + format_number(c.lora_strengths.back()));
        } else {
            const std::string path = trimmed(values[i]);
            if (path.empty())
                throw UsageError("VAE value " + std::to_string(i + 1) + " is empty (give a path, or 'model' for the "
                                 "model's own VAE)");
            c.vaes.push_back(path == "model" ? std::string() : path);
            c.labels.push_back(path == "model" ? std::string("model's VAE")
                                               : "vae " + std::filesystem::path(path).filename().string());
        }
        c.requests.push_back(std::move(r));
    }
    // The settings held fixed are checked once, so a bad base fails before the first run, not after it.
    check_scheduler(c.requests.front().scheduler);
    return c;
}

int matching_step(int k, int steps, int other_steps) {
    if (steps < 1 || other_steps < 1 || k < 0 || k >= steps)
        throw Error("matching_step: step " + std::to_string(k) + " of " + std::to_string(steps) + " against " +
                    std::to_string(other_steps) + " steps is out of range");
    // Step k completes (k + 1) / steps of the schedule; pick the other run's step that has done the
    // nearest fraction, so the last steps always face each other. Integer rounding, half up.
    const int64_t num = 2 * static_cast<int64_t>(k + 1) * other_steps + steps;
    const int j = static_cast<int>(num / (2 * static_cast<int64_t>(steps))) - 1;
    return std::clamp(j, 0, other_steps - 1);
}

namespace {

// VAEs share one generation: its final latents, decoded by each. The runs' latents are the same
// throughout, so their per-step difference is 0; the images differ by the decoders alone.
ComparisonResult compare_vaes(StableDiffusion& sd, const Comparison& comparison, ComparisonObserver& observer) {
    const auto vaes = load_vaes_for(sd, comparison.vaes);
    observer.on_run(0, comparison.labels.front());
    Forwarder forward(observer);
    const auto t0 = std::chrono::steady_clock::now();
    sd.generate(comparison.requests.front(), forward);
    const double generation = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (forward.latents.empty())
        throw Error("VAE comparison: the generation reported no steps");
    const std::vector<VaeResult> decoded = decode_with_vaes(vaes, forward.latents.back().unsqueeze(0));
    ComparisonResult result;
    for (size_t i = 0; i < decoded.size(); ++i) {
        for (const auto& w : decoded[i].warnings)
            observer.on_message(w);
        result.images.push_back(decoded[i].image);
        result.image_difference.push_back(decoded[i].mean_error);
        result.latent_difference.emplace_back(forward.latents.size(), 0.0);
        std::vector<torch::Tensor> maps;
        for (const auto& l : forward.latents)
            maps.push_back(torch::zeros({l.size(1), l.size(2)}));
        result.difference_maps.push_back(std::move(maps));
        result.seconds.push_back(decoded[i].seconds + (i == 0 ? generation : 0.0));
    }
    return result;
}

// One generation per request; before_run (when set) changes the model for run i first.
ComparisonResult compare_runs(StableDiffusion& sd, const Comparison& comparison, ComparisonObserver& observer,
                              const std::function<void(size_t)>& before_run) {
    ComparisonResult result;
    std::vector<torch::Tensor> first_latents;
    for (size_t i = 0; i < comparison.requests.size(); ++i) {
        if (before_run)
            before_run(i);
        observer.on_run(static_cast<int>(i), i < comparison.labels.size() ? comparison.labels[i] : std::string());
        Forwarder forward(observer);
        const auto t0 = std::chrono::steady_clock::now();
        const torch::Tensor image = sd.generate(comparison.requests[i], forward)[0];  // [3, H, W]
        result.seconds.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());

        const int n = static_cast<int>(forward.latents.size());
        std::vector<double> diff(static_cast<size_t>(n), 0.0);
        std::vector<torch::Tensor> maps;
        if (i == 0) {
            for (const auto& l : forward.latents)
                maps.push_back(torch::zeros({l.size(1), l.size(2)}));
            first_latents = std::move(forward.latents);
            result.image_difference.push_back(0.0);
        } else {
            const int n0 = static_cast<int>(first_latents.size());
            for (int k = 0; k < n && n0 > 0; ++k) {
                const auto& mine = forward.latents[static_cast<size_t>(k)];
                const auto& base = first_latents[static_cast<size_t>(matching_step(k, n, n0))];
                // In float64, so the mean of the map is the mean over every element to rounding.
                const auto map = (mine.to(torch::kFloat64) - base.to(torch::kFloat64)).abs().mean(0);  // [h, w]
                diff[static_cast<size_t>(k)] = map.mean().item<double>();
                maps.push_back(map.to(torch::kFloat32));
            }
            result.image_difference.push_back(mean_abs_difference(image, result.images.front()));
        }
        result.difference_maps.push_back(std::move(maps));
        result.latent_difference.push_back(std::move(diff));
        result.images.push_back(image);
    }
    return result;
}

// The one LoRA applied, at each strength in turn; afterwards the model has what it had before.
ComparisonResult compare_lora_strengths(StableDiffusion& sd, const Comparison& comparison,
                                        ComparisonObserver& observer) {
    std::vector<LoraSpec> before;
    for (const LoraReport& r : sd.loras())
        before.push_back({r.path, r.strength});
    if (before.size() != 1)
        throw UsageError("comparing LoRA strengths needs exactly one LoRA applied (--lora FILE); " +
                         std::to_string(before.size()) + " are");
    if (comparison.lora_strengths.size() != comparison.requests.size())
        throw UsageError("a LoRA comparison needs one strength per run");
    try {
        ComparisonResult result = compare_runs(sd, comparison, observer, [&](size_t i) {
            sd.set_loras({{before.front().path, comparison.lora_strengths[i]}});
        });
        sd.set_loras(before);
        return result;
    } catch (...) {
        sd.set_loras(before);
        throw;
    }
}

} // namespace

ComparisonResult run_comparison(StableDiffusion& sd, const Comparison& comparison, ComparisonObserver& observer) {
    c10::InferenceMode guard;
    if (comparison.vary == "vae")
        return compare_vaes(sd, comparison, observer);
    if (comparison.vary == "lora")
        return compare_lora_strengths(sd, comparison, observer);
    return compare_runs(sd, comparison, observer, nullptr);
}

} // namespace sdl
