#pragma once
// The Stable Diffusion pipeline as diffusers runs it, with every intermediate value reported to a
// PipelineObserver. Owns the three networks; not thread-safe: one caller at a time (the GUI's
// worker thread, the CLI's main thread).
#include "core/models/precision.h"
#include "core/pipeline/observer.h"
#include "core/tokenizer/clip_tokenizer.h"

#include <torch/torch.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace sdl {

// A LoRA to apply: its file and how strongly (negative and above 1 allowed).
struct LoraSpec {
    std::string path;
    double strength = 1.0;
};

struct RuntimeOptions {
    std::string device = "cpu";  // "cpu" or "cuda"
    std::string dtype;           // "fp32", "fp16", "bf16" for every network; empty: each network's fastest
                                 // on this machine, measured once and cached (core/models/precision_probe.h)
    int threads = 0;             // CPU threads; 0: all cores
    std::string vae;             // a VAE to use instead of the model's own (see open_vae_files); empty: its own
    std::vector<LoraSpec> loras;          // applied after loading (set_loras)
    std::vector<std::string> embeddings;  // textual-inversion files loaded after loading (set_embeddings)
    // The U-Net and the VAE in channels-last order (use_channels_last): same numbers, another speed,
    // measured by `bench --memory-format channels-last`. The text encoder has no convolutions.
    bool channels_last = false;
    // CUDA only, measured by `bench --cuda-graph`: the U-Net call recorded once as a CUDA graph and
    // replayed at every step (core/models/unet_cuda_graph.h). Attention recording runs eagerly.
    bool cuda_graph = false;
    // The NaN/Inf check of the latents computed on the device at every step but read once, after the
    // last step, so the loop never waits for the device (on CUDA each read is a host sync). A
    // numerical failure is then reported after the last step instead of at the step it happened.
    bool deferred_nan_check = false;
    // One network's dtype, over dtype and the measurement (mixed-precision tests); "": as dtype says.
    std::string unet_dtype, vae_encode_dtype, vae_decode_dtype;
};

struct GenerateRequest {
    std::string prompt;
    std::string negative_prompt;   // empty = unconditional
    int steps = 50;
    double guidance = 7.5;
    int width = 512;
    int height = 512;
    std::string scheduler = "lms";
    bool karras = false;
    uint64_t seed = 0;
    int count = 1;                 // images per prompt; seeds seed, seed+1, ...
    int clip_skip = 1;
    torch::Tensor init_latents;    // optional [count, 4, H/8, W/8], before init_noise_sigma
    torch::Tensor init_image;      // optional img2img source [1, 3, H, W] in [-1, 1]
    double strength = 0.8;         // img2img
    bool record_attention = false; // fill StepEvent::attention (costs memory and time only when set)
};

struct ModelInfo {
    std::string path;
    std::string layout;            // "diffusers" or "single-file"
    std::string device;
    std::string dtype;             // the U-Net's and the text encoder's; precision has each network's and why
    bool channels_last = false;    // RuntimeOptions::channels_last
    PrecisionPlan precision;
    int64_t text_params = 0, unet_params = 0, vae_params = 0;
    int text_hidden = 0;           // D of the text embeddings
    int text_layers = 0;
    double scaling_factor = 0.18215;
    double load_seconds = 0;
    std::string vae_spelling;      // how the VAE's keys were written: "diffusers", "original (CompVis)", ...
    std::string vae;               // the VAE in use: empty for the model's own, else its name
    std::string vae_path;          // and where it came from
    std::vector<std::string> warnings;  // from loading (a VAE trained for another family, ...)
    int native_size = 512;         // the image side the U-Net was trained for: its sample_size x 8 (the VAE's factor)
};

// What one applied LoRA changes, layer by layer: where in the networks it acts.
struct LoraLayerReport {
    std::string network;         // "text_encoder" or "unet"
    std::string module;          // SD Lens' (diffusers) module name: "down_blocks.1.attentions.0.proj_in"
    std::string level;           // U-Net resolution level: "down 0", "mid", "up 2"; "" for the text encoder
    double relative_change = 0;  // ||strength * scale * up @ down|| / ||W|| (Frobenius)
};

struct LoraReport {
    std::string path;
    std::string name;            // the file's stem
    std::string format;          // "kohya", "kohya (original names)", "peft", "diffusers (attention processors)"
    int64_t rank = 0;            // the largest rank among its layers
    double alpha = 0;            // alpha of its first layer (alpha = rank where the file has none)
    double strength = 1.0;
    std::vector<LoraLayerReport> layers;
};

// A textual-inversion embedding loaded into the tokenizer and the text encoder.
struct EmbeddingInfo {
    std::string path;
    std::string trigger;         // the word that stands for it in prompts
    int vectors = 0;             // how many token positions it takes
    std::string format;          // "kohya (emb_params)", "a1111 (string_to_param)", "diffusers (learned_embeds)"
};

struct EncodedImage {
    torch::Tensor mean;      // [1, 4, H/8, W/8]
    torch::Tensor logvar;    // [1, 4, H/8, W/8]
    torch::Tensor latents;   // mean * scaling_factor
};

// The article's fig. 11-12 experiment: one U-Net call on a noised latent.
struct UNetStepProbe {
    double timestep = 0;
    double sigma = 0;
    torch::Tensor noisy_latents;     // [1, 4, h, w] add_noise(latents, noise, t)
    torch::Tensor noise_pred;        // [1, 4, h, w] guided
    torch::Tensor naive_x0;          // noisy - noise_pred, as the article decodes it
    torch::Tensor pred_x0;           // the scheduler's proper x0 estimate
};

class StableDiffusion {
public:
    // path: diffusers folder or single-file checkpoint. Throws sdl::Error.
    static std::unique_ptr<StableDiffusion> load(const std::string& path, const RuntimeOptions& options = {});
    ~StableDiffusion();

    const ModelInfo& info() const;
    const ClipTokenizer& tokenizer() const;

    // Uses the VAE at path instead of the current one ("" for the model's own). The scaling factor stays
    // the model's. Returns the warnings of opening it (also in info().warnings). Throws sdl::Error, and
    // keeps the current VAE then.
    std::vector<std::string> set_vae(const std::string& path);

    // Applies exactly these LoRAs to the text encoder and U-Net, replacing whatever was applied before,
    // from the base weights kept aside: after any sequence of calls, set_loras({}) gives the base weights
    // bit for bit. Throws sdl::Error for a file that is not an SD 1.x LoRA (the LoRAs applied before
    // stay applied then). A file is prepared once and kept while applied, re-read when it changes.
    std::vector<LoraReport> set_loras(const std::vector<LoraSpec>& loras);
    const std::vector<LoraReport>& loras() const;

    // Loads exactly these textual-inversion embeddings, replacing the previous ones; their triggers
    // become their vectors in prompts. Throws sdl::Error (nothing changed then) for a bad file.
    std::vector<EmbeddingInfo> set_embeddings(const std::vector<std::string>& paths);
    const std::vector<EmbeddingInfo>& embeddings() const;

    // [1, 77, D] for clip_skip 1 (after the final norm), or the (clip_skip)-th hidden state from the end.
    torch::Tensor encode_prompt(const std::string& prompt, int clip_skip = 1);
    // Every hidden state: embeddings output, then each layer's; the last one after the final norm.
    std::vector<torch::Tensor> text_hidden_states(const std::string& prompt);

    EncodedImage encode_image(const torch::Tensor& image);  // [1, 3, H, W] in [-1, 1]
    // latents [N, 4, h, w] already multiplied by the scaling factor -> [N, 3, H, W] in [0, 1].
    torch::Tensor decode_latents(const torch::Tensor& latents, PipelineObserver* observer = nullptr);

    // One U-Net call: sample [B, 4, h, w] at timestep t with context [B, 77, D] -> float32 [B, 4, h, w].
    torch::Tensor predict_noise(const torch::Tensor& sample, double t, const torch::Tensor& context);

    // Runs txt2img or img2img; returns the images [count, 3, H, W] in [0, 1] (CPU, float32).
    torch::Tensor generate(const GenerateRequest& request, PipelineObserver& observer);

    // add_noise of latents at the scheduler's timesteps[k] for each k (article fig. 10).
    std::vector<torch::Tensor> noise_progression(const torch::Tensor& latents, const torch::Tensor& noise,
                                                 const std::string& scheduler, int steps,
                                                 const std::vector<int>& at_steps);
    UNetStepProbe unet_step_probe(const torch::Tensor& latents, const torch::Tensor& noise, const std::string& prompt,
                                  const std::string& scheduler, int steps, int k, double guidance = 1.0);

private:
    StableDiffusion();
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

// Cheap latent -> RGB preview: SD 1.x's 4x3 linear approximation. [N, 4, h, w] -> [N, 3, h, w] in [0, 1].
torch::Tensor latent_preview(const torch::Tensor& latents);

// torch.randn(shape, generator=torch.Generator("cpu").manual_seed(seed)), bit for bit.
torch::Tensor seeded_randn(at::IntArrayRef shape, uint64_t seed);

} // namespace sdl
