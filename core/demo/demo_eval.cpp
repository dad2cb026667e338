#include "core/demo/demo_eval.h"

#include "core/pipeline/image_metrics.h"
#include "core/schedulers/scheduler.h"
#include "core/util/error.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>
#include <random>

namespace sdl {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
// Not the trainer's default seed, so the round trip does not start with the pictures the VAE saw first.
constexpr uint64_t kVaeSeed = 15;

// Sums the conditional pass's cross-attention over the steps.
class AttentionSum : public PipelineObserver {
public:
    void on_step(const StepEvent& e) override {
        if (!e.attention.defined())
            return;
        const auto a = e.attention.to(torch::kFloat32);  // [77, h, w]
        sum_ = sum_.defined() ? sum_ + a : a.clone();
        ++steps_;
    }
    // [77, h, w] averaged over the steps.
    torch::Tensor mean() const {
        if (!sum_.defined())
            throw Error("demo-eval: the pipeline recorded no cross-attention maps (does the U-Net have cross-attention layers?)");
        return sum_ / static_cast<double>(steps_);
    }

private:
    torch::Tensor sum_;
    int steps_ = 0;
};

double mean_of(const std::vector<double>& v) {
    if (v.empty())
        return kNaN;
    double s = 0;
    for (double x : v)
        s += x;
    return s / static_cast<double>(v.size());
}

double min_of(const std::vector<double>& v) { return v.empty() ? kNaN : *std::min_element(v.begin(), v.end()); }

nlohmann::ordered_json number_or_null(double v) { return std::isfinite(v) ? nlohmann::ordered_json(v) : nlohmann::ordered_json(); }

} // namespace

void check_demo_eval_options(const DemoEvalOptions& o) {
    check_scheduler_name(o.scheduler);
    if (o.seeds < 1)
        throw UsageError("--seeds must be at least 1 (got " + std::to_string(o.seeds) + ")");
    if (o.steps < 1)
        throw UsageError("--steps must be at least 1 (got " + std::to_string(o.steps) + ")");
    if (o.vae_images < 1)
        throw UsageError("--vae-images must be at least 1 (got " + std::to_string(o.vae_images) + ")");
    if (!std::isfinite(o.guidance))
        throw UsageError("--guidance must be a finite number");
    for (int c : o.captions)
        if (c < 0 || c >= toy::kCaptionCount)
            throw UsageError("caption index " + std::to_string(c) + " is outside 0.." +
                             std::to_string(toy::kCaptionCount - 1));
}

std::pair<int64_t, int64_t> shape_word_tokens(const ClipTokenizer& tokenizer, int colour, toy::Shape shape) {
    const std::string prefix = std::string("a ") + toy::kColours.at(static_cast<size_t>(colour)).name;
    const std::string caption = toy::caption(colour, shape);
    const auto before = tokenizer.encode(prefix).untruncated_ids;  // BOS ... EOS
    const auto whole = tokenizer.encode(caption).untruncated_ids;
    const auto first = static_cast<int64_t>(before.size()) - 1, last = static_cast<int64_t>(whole.size()) - 1;
    if (last <= first || last > ClipTokenizer::kMaxLength - 1 ||
        !std::equal(before.begin(), before.end() - 1, whole.begin()))
        throw Error("demo-eval: the model's tokenizer does not read \"" + caption + "\" as \"" + prefix +
                    "\" followed by the shape word; is this an SD 1.x CLIP tokenizer?");
    return {first, last};
}

double attention_on_off_ratio(const torch::Tensor& map, const torch::Tensor& ink) {
    const int64_t h = map.size(0), w = map.size(1), H = ink.size(0), W = ink.size(1);
    if (H % h || W % w)
        throw Error("demo-eval: the ink mask (" + std::to_string(H) + "x" + std::to_string(W) +
                    ") is not a whole multiple of the attention grid (" + std::to_string(h) + "x" +
                    std::to_string(w) + ")");
    // [h, w]: the fraction of each grid cell the ink covers
    const auto cover = torch::avg_pool2d(ink.to(torch::kFloat32).view({1, 1, H, W}), {H / h, W / w}).view({h, w});
    const auto on = cover > 0.5;
    const int64_t n_on = on.sum().item<int64_t>();
    if (n_on == 0 || n_on == h * w)
        return kNaN;
    const auto m = map.to(torch::kFloat64);
    return m.masked_select(on).mean().item<double>() / m.masked_select(on.logical_not()).mean().item<double>();
}

DemoEvalResult evaluate_demo(StableDiffusion& sd, const DemoEvalOptions& o, const DemoEvalProgress& progress) {
    check_demo_eval_options(o);
    c10::InferenceMode guard;
    const auto start = std::chrono::steady_clock::now();
    std::vector<int> captions = o.captions;
    if (captions.empty())
        for (int c = 0; c < toy::kCaptionCount; ++c)
            captions.push_back(c);

    DemoEvalResult result;
    std::vector<double> all_ratios;
    int colour_right = 0, shape_right = 0;
    const int total = static_cast<int>(captions.size()) * o.seeds;
    const auto shapes = static_cast<int>(toy::kShapes.size());
    for (int index : captions) {
        const int colour = index / shapes;
        const toy::Shape shape = toy::kShapes.at(static_cast<size_t>(index % shapes));
        const auto [first, last] = shape_word_tokens(sd.tokenizer(), colour, shape);
        DemoCaptionResult c;
        c.caption = toy::caption(colour, shape);
        std::vector<double> ratios;
        for (int seed = 0; seed < o.seeds; ++seed) {
            GenerateRequest r;
            r.prompt = c.caption;
            r.steps = o.steps;
            r.guidance = o.guidance;
            r.scheduler = o.scheduler;
            r.seed = static_cast<uint64_t>(seed);
            r.width = r.height = toy::kImageSize;
            r.record_attention = true;
            AttentionSum attention;
            const auto image = sd.generate(r, attention)[0];  // [3, 128, 128]
            const toy::Reading read = toy::classify(image);
            c.colour_right += read.found && read.colour == colour;
            c.shape_right += read.found && read.shape == shape;
            if (read.found) {
                const auto map = attention.mean().narrow(0, first, last - first).mean(0);  // [h, w]
                const double ratio = attention_on_off_ratio(map, read.mask);
                if (std::isfinite(ratio))
                    ratios.push_back(ratio);
                else
                    ++c.attention_skipped;
            } else {
                ++c.attention_skipped;
            }
            if (o.keep_images)
                c.images.push_back(image);
            ++result.images;
            if (progress)
                progress("generate", result.images, total);
        }
        c.attention_ratio = mean_of(ratios);
        colour_right += c.colour_right;
        shape_right += c.shape_right;
        result.attention_skipped += c.attention_skipped;
        all_ratios.insert(all_ratios.end(), ratios.begin(), ratios.end());
        result.captions.push_back(std::move(c));
    }
    result.colour_accuracy = static_cast<double>(colour_right) / result.images;
    result.shape_accuracy = static_cast<double>(shape_right) / result.images;
    result.attention_ratio_mean = mean_of(all_ratios);
    result.attention_ratio_min = min_of(all_ratios);

    std::mt19937_64 rng(kVaeSeed);
    std::vector<double> psnrs;
    for (int i = 0; i < o.vae_images; ++i) {
        const auto picture = toy::render(toy::random_scene(rng));  // [3, 128, 128] in [0, 1]
        const auto encoded = sd.encode_image((picture * 2 - 1).unsqueeze(0));
        psnrs.push_back(psnr(sd.decode_latents(encoded.latents)[0], picture));
        if (progress)
            progress("vae", i + 1, o.vae_images);
    }
    result.vae_psnr_mean = mean_of(psnrs);
    result.vae_psnr_min = min_of(psnrs);
    result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    return result;
}

nlohmann::ordered_json demo_eval_json(const DemoEvalResult& r, const DemoEvalOptions& o) {
    nlohmann::ordered_json captions = nlohmann::ordered_json::array();
    for (const auto& c : r.captions)
        captions.push_back({{"caption", c.caption},
                            {"colour_right", c.colour_right},
                            {"shape_right", c.shape_right},
                            {"attention_ratio", number_or_null(c.attention_ratio)},
                            {"attention_skipped", c.attention_skipped}});
    return {{"captions", std::move(captions)},
            {"images", r.images},
            {"colour_accuracy", r.colour_accuracy},
            {"shape_accuracy", r.shape_accuracy},
            {"attention_ratio_mean", number_or_null(r.attention_ratio_mean)},
            {"attention_ratio_min", number_or_null(r.attention_ratio_min)},
            {"attention_skipped", r.attention_skipped},
            {"vae_psnr_mean", number_or_null(r.vae_psnr_mean)},
            {"vae_psnr_min", number_or_null(r.vae_psnr_min)},
            {"settings",
             {{"seeds", o.seeds},
              {"steps", o.steps},
              {"guidance", o.guidance},
              {"scheduler", o.scheduler},
              {"size", toy::kImageSize},
              {"vae_images", o.vae_images},
              {"vae_seed", kVaeSeed}}},
            {"seconds", r.seconds}};
}

torch::Tensor demo_contact_sheet(const DemoEvalResult& r) {
    constexpr int64_t kGap = 4, kCell = toy::kImageSize;
    int64_t columns = 0;
    for (const auto& c : r.captions)
        columns = std::max<int64_t>(columns, static_cast<int64_t>(c.images.size()));
    if (r.captions.empty() || columns == 0)
        throw Error("demo-eval: no images kept for the contact sheet (set keep_images)");
    const auto rows = static_cast<int64_t>(r.captions.size());
    auto sheet = torch::full({3, rows * kCell + (rows + 1) * kGap, columns * kCell + (columns + 1) * kGap}, 0.5);
    for (int64_t y = 0; y < rows; ++y)
        for (int64_t x = 0; x < static_cast<int64_t>(r.captions[static_cast<size_t>(y)].images.size()); ++x)
            sheet.narrow(1, kGap + y * (kCell + kGap), kCell)
                .narrow(2, kGap + x * (kCell + kGap), kCell)
                .copy_(r.captions[static_cast<size_t>(y)].images[static_cast<size_t>(x)]);
    return sheet;
}

} // namespace sdl
