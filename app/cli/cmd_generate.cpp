// sdlens-cli generate: txt2img / img2img with an optional full step trace.
#include "app/cli/command.h"
#include "app/cli/runtime_flags.h"
#include "core/io/tensor_io.h"
#include "core/pipeline/image_tensor.h"
#include "core/pipeline/pipeline.h"
#include "core/pipeline/trace.h"
#include "core/schedulers/scheduler.h"
#include "core/util/error.h"

#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <random>
#include <sstream>
#include <unistd.h>

namespace sdl::cli {

namespace {

// Keeps every step for --trace and draws a progress bar when stderr is a terminal.
class CliObserver : public PipelineObserver {
public:
    CliObserver(bool keep_steps, bool progress) : keep_(keep_steps), progress_(progress) {}

    void on_tokens(const TokenizedPrompt& cond, const TokenizedPrompt& uncond) override {
        if (cond.truncated)
            std::fprintf(stderr, "warning: the prompt is longer than 77 tokens; the rest is ignored\n");
        ids_ = torch::tensor(uncond.input_ids).view({1, -1});
        ids_ = torch::cat({ids_, torch::tensor(cond.input_ids).view({1, -1})});
    }
    void on_text_embeddings(const torch::Tensor& e) override { embeddings_ = e; }
    void on_timesteps(const torch::Tensor& t, const torch::Tensor& s) override {
        timesteps_ = t;
        sigmas_ = s;
    }
    void on_initial_latents(const torch::Tensor& init) override {
        ++run_;
        if (run_ == 1)
            init_ = init;
        start_ = std::chrono::steady_clock::now();
    }
    void on_step(const StepEvent& e) override {
        if (e.attention.defined() && run_ == 1)
            attention_.push_back(e.attention);
        if (keep_ && run_ == 1) {
            steps_.push_back(e.latents.cpu());
            noise_.push_back(e.noise_pred.cpu());
            x0_.push_back(e.pred_x0.cpu());
            step_timesteps_.push_back(e.timestep);
        }
        if (progress_)
            draw(e.index + 1, e.total);
    }
    void on_message(const std::string& text) override { std::fprintf(stderr, "note: %s\n", text.c_str()); }

    Trace trace(const torch::Tensor& image, std::map<std::string, std::string> settings) const {
        Trace t;
        t.init = init_;
        t.steps = torch::stack(steps_);
        t.noise_pred = torch::stack(noise_).squeeze(1);
        t.pred_x0 = torch::stack(x0_).squeeze(1);
        t.steps = t.steps.squeeze(1);
        t.timesteps = torch::tensor(step_timesteps_, torch::kFloat64);
        t.sigmas = sigmas_;
        t.text_embeddings = embeddings_;
        t.input_ids = ids_;
        t.image = image.narrow(0, 0, 1);
        if (!attention_.empty())
            t.attention = torch::stack(attention_);
        t.settings = std::move(settings);
        return t;
    }

    // [steps, 77, H/8, W/8] plus the ids of the prompt's tokens, so a reader can label the maps.
    void save_attention(const std::string& path, const std::map<std::string, std::string>& settings) const {
        save_tensors(path, {{"attention", torch::stack(attention_)}, {"input_ids", ids_[1].clone()}}, settings);
    }

private:
    void draw(int done, int total) {
        const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
        const double rate = secs > 0 ? done / secs : 0;
        const double eta = rate > 0 ? (total - done) / rate : 0;
        constexpr int width = 30;
        const int filled = total ? done * width / total : 0;
        std::fprintf(stderr, "\r[%-*s] %d/%d  %.2f it/s  ETA %.0fs ", width, std::string(filled, '#').c_str(), done,
                     total, rate, eta);
        if (done == total)
            std::fprintf(stderr, "\n");
        std::fflush(stderr);
    }

    bool keep_, progress_;
    int run_ = 0;
    std::chrono::steady_clock::time_point start_;
    torch::Tensor ids_, embeddings_, timesteps_, sigmas_, init_;
    std::vector<torch::Tensor> steps_, noise_, x0_, attention_;
    std::vector<double> step_timesteps_;
};

std::string sampler_label(const std::string& name, bool karras) {
    static const std::map<std::string, std::string> labels = {
        {"lms", "LMS"}, {"pndm", "PLMS"}, {"ddim", "DDIM"}, {"euler", "Euler"}, {"euler_a", "Euler a"},
        {"dpmpp_2m", "DPM++ 2M"}, {"lcm", "LCM"}};
    const auto it = labels.find(name);
    const std::string base = it == labels.end() ? name : it->second;
    return karras ? base + " Karras" : base;
}

std::string format_number(double v) {
    std::ostringstream s;
    s << v;
    return s.str();
}

// AUTOMATIC1111's "parameters" text: other SD tools read a PNG's settings from it. A1111 writes LoRAs
// as <lora:name:strength> in the prompt; the prompt here is the one the text encoder saw, so they go in
// a "Lora" field of their own, quoted (as A1111 quotes a value with commas) when there are several.
std::string a1111_parameters(const GenerateRequest& r, uint64_t seed, const std::string& model, const std::string& vae,
                             const std::vector<LoraReport>& loras) {
    std::ostringstream s;
    s << r.prompt << "\n";
    if (!r.negative_prompt.empty())
        s << "Negative prompt: " << r.negative_prompt << "\n";
    s << "Steps: " << r.steps << ", Sampler: " << sampler_label(r.scheduler, r.karras)
      << ", CFG scale: " << format_number(r.guidance) << ", Seed: " << seed << ", Size: " << r.width << "x"
      << r.height << ", Model: " << std::filesystem::path(model).filename().string();
    if (!vae.empty())
        s << ", VAE: " << vae;
    if (!loras.empty()) {
        std::string list;
        for (const LoraReport& l : loras)
            list += (list.empty() ? "" : ", ") + l.name + ":" + format_number(l.strength);
        s << ", Lora: " << (loras.size() > 1 ? "\"" + list + "\"" : list);
    }
    if (r.clip_skip != 1)
        s << ", Clip skip: " << r.clip_skip;
    if (r.init_image.defined())
        s << ", Denoising strength: " << format_number(r.strength);
    return s.str();
}

std::string nth_path(const std::string& path, int i) {
    if (i == 0)
        return path;
    std::filesystem::path p(path);
    return (p.parent_path() / (p.stem().string() + "-" + std::to_string(i) + p.extension().string())).string();
}

int run_generate(Args& args) {
    GenerateRequest r;
    const std::string model = args.required("--model");
    r.prompt = args.required("--prompt");
    r.negative_prompt = args.get_or("--negative-prompt", "");
    r.steps = args.get_int("--steps", 50);
    r.guidance = args.get_double("--guidance", 7.5);
    r.width = args.get_int("--width", 512);
    r.height = args.get_int("--height", 512);
    r.scheduler = args.get_or("--scheduler", "lms");
    r.karras = args.has("--karras");
    r.count = args.get_int("--count", 1);
    r.clip_skip = args.get_int("--clip-skip", 1);
    const auto seed_arg = args.get("--seed");
    const auto init_latents = args.get("--init-latents");
    const auto image = args.get("--image");
    r.strength = args.get_double("--strength", 0.8);
    const std::string out = args.get_or("--out", "sdlens.png");
    const auto trace_path = args.get("--trace");
    const auto attention_path = args.get("--attention");
    r.record_attention = attention_path.has_value();
    const RuntimeOptions options = runtime_options_with_vae(args);
    args.finish();

    check_scheduler_name(r.scheduler);
    if (seed_arg && init_latents)
        throw UsageError("--seed and --init-latents are exclusive");
    if (r.steps < 1)
        throw UsageError("--steps must be at least 1");
    if (r.width <= 0 || r.height <= 0 || r.width % 8 || r.height % 8)
        throw UsageError("--width and --height must be positive multiples of 8 (got " + std::to_string(r.width) +
                         "x" + std::to_string(r.height) + ")");
    if (seed_arg) {
        try {
            size_t used = 0;
            r.seed = std::stoull(*seed_arg, &used);
            if (used != seed_arg->size())
                throw std::invalid_argument("trailing");
        } catch (const std::exception&) {
            throw UsageError("--seed expects a non-negative integer, got '" + *seed_arg + "'");
        }
    } else {
        r.seed = std::random_device{}() & 0xffffffffu;
        std::fprintf(stderr, "seed: %llu\n", static_cast<unsigned long long>(r.seed));
    }
    if (init_latents)
        r.init_latents = load_tensor_arg(*init_latents);
    if (image) {
        Image8 img = read_image(*image);
        if (img.width != r.width || img.height != r.height)
            throw UsageError("--image is " + std::to_string(img.width) + "x" + std::to_string(img.height) +
                             " but --width/--height ask for " + std::to_string(r.width) + "x" +
                             std::to_string(r.height));
        r.init_image = image_to_tensor(img);
    }

    const auto t0 = std::chrono::steady_clock::now();
    auto sd = StableDiffusion::load(model, options);
    print_load_warnings(*sd);
    CliObserver observer(trace_path.has_value(), isatty(fileno(stderr)) != 0);
    const torch::Tensor images = sd->generate(r, observer);
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();

    nlohmann::json summary;
    summary["seed"] = r.seed;
    summary["seconds"] = seconds;
    summary["precision"] = sd->info().precision.summary();
    for (const LoraReport& l : sd->loras())
        summary["loras"].push_back(
            {{"path", l.path}, {"format", l.format}, {"strength", l.strength}, {"layers", l.layers.size()}});
    for (int i = 0; i < images.size(0); ++i) {
        const std::string params = a1111_parameters(r, r.seed + i, model, sd->info().vae, sd->loras());
        write_png(nth_path(out, i), tensor_to_image(images[i]), {{"parameters", params}});
        summary["images"].push_back(nth_path(out, i));
    }
    std::map<std::string, std::string> settings = {
        {"prompt", r.prompt}, {"negative_prompt", r.negative_prompt}, {"steps", std::to_string(r.steps)},
        {"guidance", format_number(r.guidance)}, {"width", std::to_string(r.width)},
        {"height", std::to_string(r.height)}, {"scheduler", r.scheduler}, {"karras", r.karras ? "1" : "0"},
        {"seed", std::to_string(r.seed)}, {"clip_skip", std::to_string(r.clip_skip)}, {"model", model},
        {"vae", sd->info().vae.empty() ? "model" : sd->info().vae_path},
        {"parameters", a1111_parameters(r, r.seed, model, sd->info().vae, sd->loras())}};
    if (!options.loras.empty())
        settings["loras"] = loras_json(options.loras);
    if (!options.embeddings.empty())
        settings["embeddings"] =
            nlohmann::json(options.embeddings).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    if (trace_path) {
        write_trace(*trace_path, observer.trace(images, settings));
        summary["trace"] = *trace_path;
    }
    if (attention_path) {
        observer.save_attention(*attention_path, settings);
        summary["attention"] = *attention_path;
    }
    std::printf("%s\n", summary.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
    return 0;
}

const Register reg{"generate", "Make images from a prompt (txt2img, img2img), optionally tracing every step",
                   {"--karras", "--cuda-graph", "--deferred-nan-check"}, run_generate};

} // namespace
} // namespace sdl::cli
