#pragma once
// How well a demo model learnt the toy world (core/demo/toy_world.h), measured the way issue 15 asks:
// images generated for every caption through the real pipeline and read back by toy::classify (right
// colour? right shape?), whether the shape word's cross-attention lands on the drawn shape, and how
// well the VAE reconstructs toy-world pictures.
#include "core/demo/toy_world.h"
#include "core/pipeline/pipeline.h"

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <functional>
#include <string>
#include <utility>
#include <vector>

namespace sdl {

struct DemoEvalOptions {
    int seeds = 3;                   // per caption: seeds 0 .. seeds-1
    int steps = 20;
    double guidance = 5;
    std::string scheduler = "dpmpp_2m";
    int vae_images = 32;             // toy-world pictures for the VAE round trip
    std::vector<int> captions;       // toy::caption_index values to generate; empty: all 12
    bool keep_images = false;        // keep the generated images (for a contact sheet)
};

struct DemoCaptionResult {
    std::string caption;
    int colour_right = 0, shape_right = 0;  // counts over the seeds
    // mean over this caption's images of mean(map on the shape) / mean(map off it), for the shape word's
    // cross-attention averaged over the steps; NaN when every image was skipped
    double attention_ratio = 0;
    int attention_skipped = 0;       // images without a ratio: no ink found, or none of the grid on (or off) it
    std::vector<torch::Tensor> images;  // [3, 128, 128] in [0, 1] per seed, when keep_images
};

struct DemoEvalResult {
    std::vector<DemoCaptionResult> captions;
    int images = 0;
    double colour_accuracy = 0, shape_accuracy = 0;        // fractions of all generated images
    double attention_ratio_mean = 0, attention_ratio_min = 0;  // over the images with a ratio; NaN when none
    int attention_skipped = 0;
    double vae_psnr_mean = 0, vae_psnr_min = 0;            // dB on [0, 1] images
    double seconds = 0;
};

// Called after each generated image and each VAE round trip: what is running, how far.
using DemoEvalProgress = std::function<void(const std::string& stage, int done, int total)>;

// Throws sdl::UsageError for options out of range (an unknown scheduler, no seeds, ...), so a caller can
// refuse them before loading a model.
void check_demo_eval_options(const DemoEvalOptions& options);

// Throws what check_demo_eval_options throws.
DemoEvalResult evaluate_demo(StableDiffusion& sd, const DemoEvalOptions& options, const DemoEvalProgress& progress = {});

// Where the shape word's tokens sit in the tokenized caption "a <colour> <shape>": [first, last) (BOS,
// "a", colour, shape with SD 1.x's CLIP vocabulary: [3, 4)). Throws sdl::Error when the tokenizer does
// not read the caption as its prefix followed by the shape word.
std::pair<int64_t, int64_t> shape_word_tokens(const ClipTokenizer& tokenizer, int colour, toy::Shape shape);

// The shape word's cross-attention on the shape against off it: mean(map where the ink covers over half
// a cell of the map's grid) / mean(map elsewhere). map [h, w]; ink [H, W] bool, H and W multiples of h
// and w. NaN when the grid has no cell on the shape or none off it.
double attention_on_off_ratio(const torch::Tensor& map, const torch::Tensor& ink);

// The JSON that `sdlens-cli demo-eval` prints: per caption, the totals, the settings, the seconds.
// NaN (a figure with nothing to measure) is written as null.
nlohmann::ordered_json demo_eval_json(const DemoEvalResult& result, const DemoEvalOptions& options);

// Rows = captions, columns = seeds, 4 grey pixels between cells: [3, H, W] in [0, 1]. Needs keep_images.
torch::Tensor demo_contact_sheet(const DemoEvalResult& result);

} // namespace sdl
