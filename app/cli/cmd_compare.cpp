// sdlens-cli compare: the same seed and settings with one of them varied; the images side by side and how
// far each run drifts from the first, step by step.
#include "app/cli/command.h"
#include "app/cli/runtime_flags.h"
#include "core/pipeline/compare.h"
#include "core/pipeline/image_tensor.h"
#include "core/util/error.h"
#include "core/util/image_io.h"

#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <random>
#include <unistd.h>

namespace sdl::cli {

namespace {

class CompareObserver : public ComparisonObserver {
public:
    CompareObserver(int runs, bool progress) : runs_(runs), progress_(progress) {}

    void on_run(int index, const std::string& label) override {
        index_ = index;
        label_ = label;
        start_ = std::chrono::steady_clock::now();
    }
    void on_tokens(const TokenizedPrompt& cond, const TokenizedPrompt&) override {
        if (cond.truncated)
            std::fprintf(stderr, "warning: %s: the prompt is longer than 77 tokens; the rest is ignored\n",
                         label_.c_str());
    }
    void on_step(const StepEvent& e) override {
        if (progress_)
            draw(e.index + 1, e.total);
    }
    void on_message(const std::string& text) override { std::fprintf(stderr, "note: %s\n", text.c_str()); }

private:
    void draw(int done, int total) {
        const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
        constexpr int width = 20;
        const int filled = total ? done * width / total : 0;
        std::fprintf(stderr, "\rrun %d/%d %-24.24s [%-*s] %d/%d  %.1fs ", index_ + 1, runs_, label_.c_str(), width,
                     std::string(filled, '#').c_str(), done, total, secs);
        if (done == total)
            std::fprintf(stderr, "\n");
        std::fflush(stderr);
    }

    int runs_;
    bool progress_;
    int index_ = 0;
    std::string label_;
    std::chrono::steady_clock::time_point start_;
};

std::vector<std::string> split_commas(const std::string& text) {
    std::vector<std::string> out;
    size_t from = 0;
    for (size_t comma; (comma = text.find(',', from)) != std::string::npos; from = comma + 1)
        out.push_back(text.substr(from, comma - from));
    out.push_back(text.substr(from));
    return out;
}

uint64_t parse_seed(const std::string& text) {
    try {
        size_t used = 0;
        const uint64_t seed = std::stoull(text, &used);
        if (used != text.size() || text.front() == '-')
            throw std::invalid_argument("trailing");
        return seed;
    } catch (const std::exception&) {
        throw UsageError("--seed expects a non-negative integer, got '" + text + "'");
    }
}

using Json = nlohmann::ordered_json;  // keys in the order the README documents them

// What a reader of a PNG needs to redo that run with `generate`.
Json run_settings(const Comparison& c, size_t i) {
    const GenerateRequest& r = c.requests[i];
    Json j = {{"label", c.labels[i]}, {"prompt", r.prompt}, {"negative_prompt", r.negative_prompt},
              {"steps", r.steps}, {"guidance", r.guidance}, {"scheduler", r.scheduler}, {"karras", r.karras},
              {"seed", r.seed}, {"width", r.width}, {"height", r.height}, {"clip_skip", r.clip_skip}};
    if (!c.vaes.empty())
        j["vae"] = c.vaes[i].empty() ? "model" : c.vaes[i];
    if (!c.lora_strengths.empty())
        j["lora_strength"] = c.lora_strengths[i];
    return j;
}

std::string dump(const Json& j) { return j.dump(-1, ' ', false, Json::error_handler_t::replace); }

int run_compare(Args& args) {
    const std::string model = args.required("--model");
    const std::string vary = args.required("--vary");
    // The varied setting comes only from the values; a base value for it would be silently dropped.
    auto fixed = [&](const std::string& flag) {
        auto v = args.get(flag);
        if (v && flag == "--" + vary)
            throw UsageError(flag + " is what --vary " + vary + " changes; give each value with --value");
        return v;
    };
    GenerateRequest base;
    const auto prompt = fixed("--prompt");
    base.prompt = prompt.value_or("");
    base.negative_prompt = args.get_or("--negative-prompt", "");
    fixed("--steps");
    base.steps = args.get_int("--steps", 50);
    fixed("--guidance");
    base.guidance = args.get_double("--guidance", 7.5);
    base.scheduler = fixed("--scheduler").value_or("lms");
    base.karras = args.has("--karras");
    base.width = args.get_int("--width", 512);
    base.height = args.get_int("--height", 512);
    base.clip_skip = args.get_int("--clip-skip", 1);
    const auto seed_arg = args.get("--seed");
    std::vector<std::string> values = args.all("--value");
    const auto listed = args.all("--values");
    const std::string out = args.get_or("--out", "sdlens-compare.png");
    const auto out_dir = args.get("--out-dir");
    RuntimeOptions options = runtime_options(args);
    options.vae = fixed("--vae").value_or("");
    options.loras = lora_flags(args);
    options.embeddings = embedding_flags(args);
    args.finish();

    if (!listed.empty()) {
        if (!values.empty())
            throw UsageError("--value and --values are exclusive");
        if (vary == "prompt")
            throw UsageError("--values splits at commas, which prompts contain; give each prompt with --value");
        for (const auto& list : listed)
            for (auto& v : split_commas(list))
                values.push_back(std::move(v));
    }
    if (base.steps < 1)
        throw UsageError("--steps must be at least 1");
    if (base.width <= 0 || base.height <= 0 || base.width % 8 || base.height % 8)
        throw UsageError("--width and --height must be positive multiples of 8 (got " + std::to_string(base.width) +
                         "x" + std::to_string(base.height) + ")");
    base.seed = seed_arg ? parse_seed(*seed_arg) : std::random_device{}() & 0xffffffffu;
    const Comparison comparison = make_comparison(base, vary, values);
    if (!prompt && vary != "prompt")
        throw UsageError("missing required flag --prompt");
    if (vary == "lora" && options.loras.size() != 1)
        throw UsageError("--vary lora varies the strength of exactly one --lora FILE; " +
                         std::to_string(options.loras.size()) + " given");
    if (!seed_arg)
        std::fprintf(stderr, "seed: %llu\n", static_cast<unsigned long long>(base.seed));

    auto sd = StableDiffusion::load(model, options);
    print_load_warnings(*sd);
    const int runs = static_cast<int>(comparison.requests.size());
    CompareObserver observer(runs, isatty(fileno(stderr)) != 0);
    const ComparisonResult result = run_comparison(*sd, comparison, observer);

    Json described = {{"vary", vary}, {"model", model}, {"runs", Json::array()}};
    if (!options.vae.empty())
        described["vae"] = options.vae;
    for (const LoraSpec& l : options.loras)
        described["loras"].push_back({{"path", l.path}, {"strength", l.strength}});
    if (!options.embeddings.empty())
        described["embeddings"] = options.embeddings;
    for (int i = 0; i < runs; ++i)
        described["runs"].push_back(run_settings(comparison, static_cast<size_t>(i)));
    write_png(out, tensor_to_image(torch::cat(result.images, 2)), {{"comparison", dump(described)}});

    Json summary = {{"vary", vary}, {"seed", base.seed}, {"strip", out}, {"runs", Json::array()}};
    if (out_dir)
        std::filesystem::create_directories(*out_dir);
    for (int i = 0; i < runs; ++i) {
        const GenerateRequest& r = comparison.requests[i];
        Json run = {{"label", comparison.labels[i]},
                    {"steps", r.steps},
                    {"guidance", r.guidance},
                    {"scheduler", r.scheduler},
                    {"prompt", r.prompt},
                    {"seconds", result.seconds[i]},
                    {"image_difference", result.image_difference[i]},
                    {"latent_difference", result.latent_difference[i]}};
        if (!comparison.vaes.empty())
            run["vae"] = comparison.vaes[i].empty() ? "model" : comparison.vaes[i];
        if (!comparison.lora_strengths.empty())
            run["lora_strength"] = comparison.lora_strengths[i];
        if (out_dir) {
            const auto path = (std::filesystem::path(*out_dir) / ("run-" + std::to_string(i + 1) + ".png")).string();
            write_png(path, tensor_to_image(result.images[i]),
                      {{"comparison", dump(run_settings(comparison, static_cast<size_t>(i)))}});
            run["image"] = path;
        }
        summary["runs"].push_back(std::move(run));
    }
    std::printf("%s\n", dump(summary).c_str());
    return 0;
}

const Register reg{"compare", "Run the same seed with one setting varied; the images side by side and their drift",
                   {"--karras"}, run_compare};

} // namespace
} // namespace sdl::cli
