#include "core/pipeline/pipeline.h"

#include "core/io/model_files.h"
#include "core/models/autoencoder_kl.h"
#include "core/models/hooks.h"
#include "core/models/layers.h"
#include "core/models/clip_text_model.h"
#include "core/models/unet_2d_condition.h"
#include "core/models/unet_cuda_graph.h"
#include "core/models/load.h"
#include "core/models/lora.h"
#include "core/models/precision_probe.h"
#include "core/models/runtime.h"
#include "core/models/weights.h"
#include "core/pipeline/textual_inversion.h"
#include "core/schedulers/scheduler.h"
#include "core/util/error.h"

#include <ATen/CPUGeneratorImpl.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <thread>

namespace sdl {

namespace {

ClipTokenizer make_tokenizer(const TokenizerFiles& t) {
    if (!t.vocab_json.empty() && !t.merges_txt.empty())
        return ClipTokenizer::from_vocab_merges(t.vocab_json, t.merges_txt);
    if (!t.tokenizer_json.empty())
        return ClipTokenizer::from_tokenizer_json(t.tokenizer_json);
    return ClipTokenizer::bundled();
}

torch::Tensor ids_tensor(const std::vector<TokenizedPrompt>& prompts) {
    std::vector<int64_t> flat;
    for (const auto& p : prompts)
        flat.insert(flat.end(), p.input_ids.begin(), p.input_ids.end());
    return torch::tensor(flat, torch::kInt64).view({static_cast<int64_t>(prompts.size()), ClipTokenizer::kMaxLength});
}

double available_bytes() {
    std::ifstream in("/proc/meminfo");
    std::string key;
    double kb = 0;
    while (in >> key >> kb) {
        if (key == "MemAvailable:")
            return kb * 1024.0;
        in.ignore(256, '\n');
    }
    return 0;  // unknown: no check
}

// Refuses up front what would not fit rather than being killed mid-run. The constants were
// measured on SD 1.5 in float32 (512x512: U-Net call ~0.5 GB of activations, VAE decode ~1.6 GB),
// scaled by the element size; attention is chunked, so both grow linearly with the pixel count.
// Images of a batch run one after another, so the count does not matter.
void check_memory(int width, int height, torch::Dtype unet_dtype, torch::Dtype vae_dtype, const torch::Device& device) {
    if (!device.is_cpu())
        return;
    const auto elem = [](torch::Dtype d) { return d == torch::kFloat32 ? 4.0 : 2.0; };
    const double latent_px = static_cast<double>(width / 8) * (height / 8);
    const double unet = 2.0 * latent_px * 320 * elem(unet_dtype) * 48;
    const double vae_px = std::min(latent_px, static_cast<double>(kTiledDecodeAbove)) * 64;
    const double vae = vae_px * 128 * elem(vae_dtype) * 12;
    const double need = 1.2 * std::max(unet, vae);
    const double have = available_bytes();
    if (have > 0 && need > have) {
        char msg[256];
        std::snprintf(msg, sizeof msg,
                      "a %dx%d image needs about %.1f GiB of working memory on the CPU but only %.1f GiB is "
                      "available; choose a smaller size",
                      width, height, need / (1u << 30), have / (1u << 30));
        throw Error(msg);
    }
}

Error numerical_failure(const char* stage) {
    return Error(std::string("numerical failure: NaN or Inf in the ") + stage +
                 " (try --dtype fp32, or check the model weights)");
}

void check_finite(const torch::Tensor& t, const char* stage) {
    if (!torch::isfinite(t).all().item<bool>())
        throw numerical_failure(stage);
}

} // namespace

struct StableDiffusion::Impl {
    ModelInfo info;
    torch::Device device = torch::kCPU;
    torch::Dtype dtype = torch::kFloat32;  // the U-Net's and the text encoder's; the VAE's sides hold their own
    bool channels_last = false;
    bool deferred_nan_check = false;
    std::unique_ptr<UNetCudaGraph> unet_graph;  // RuntimeOptions::cuda_graph
    std::unique_ptr<ClipTokenizer> tokenizer;
    ClipTextModel text_encoder{nullptr};
    UNet2DConditionModel unet{nullptr};
    AutoencoderKL vae{nullptr};
    // The LoRAs applied, each prepared once (re-read when its file changes) and merged into the weights.
    struct AppliedLora {
        std::shared_ptr<const PreparedLora> lora;
        std::filesystem::file_time_type written;
    };
    std::vector<AppliedLora> applied_loras;
    LoraMerger lora_merger;
    std::vector<LoraReport> lora_reports;
    nlohmann::json scheduler_json;
    std::vector<EmbeddingInfo> embeddings;

    std::unique_ptr<Scheduler> scheduler(const std::string& name, int steps, bool karras = false) const {
        // The model's scheduler config describes how it was trained (betas, prediction type); how
        // to sample (spacing, offset) belongs to the chosen sampler, as when one builds e.g.
        // LMSDiscreteScheduler with the model's betas in diffusers. An LCM checkpoint's
        // original_inference_steps and timestep_scaling describe its distillation, so they count too.
        static const char* kTrainingKeys[] = {"num_train_timesteps", "beta_start", "beta_end", "beta_schedule",
                                              "trained_betas", "prediction_type", "original_inference_steps",
                                              "timestep_scaling"};
        nlohmann::json training = nlohmann::json::object();
        for (const char* key : kTrainingKeys)
            if (scheduler_json.contains(key))
                training[key] = scheduler_json[key];
        SchedulerConfig cfg = SchedulerConfig::from_json(training, default_scheduler_config(name));
        cfg.use_karras_sigmas = cfg.use_karras_sigmas || karras;
        auto s = make_scheduler(name, cfg);
        s->set_timesteps(steps);
        return s;
    }

    // [B, 77, D] in float32 on the device.
    torch::Tensor encode_ids(const torch::Tensor& ids, int clip_skip) {
        if (clip_skip < 1 || clip_skip > info.text_layers)
            throw UsageError("clip skip " + std::to_string(clip_skip) + " is out of range 1.." +
                             std::to_string(info.text_layers));
        return text_encoder->encode(ids.to(device), clip_skip).to(torch::kFloat32);
    }

    torch::Tensor unet_call(const torch::Tensor& sample, double t, const torch::Tensor& context,
                            const torch::Tensor& timestep_cond = {}) {
        auto ts = torch::full({sample.size(0)}, t, torch::TensorOptions().dtype(torch::kFloat32).device(device));
        const auto x = sample.to(device, dtype), ctx = context.to(device, dtype);
        const auto cond = timestep_cond.defined() ? timestep_cond.to(device, dtype) : timestep_cond;
        auto out = unet_graph ? unet_graph->forward(x, ts, ctx, cond) : unet->forward(x, ts, ctx, cond);
        return out.to(torch::kFloat32).contiguous();
    }

    // After every change of weights: a swapped VAE arrives contiguous, LoRA merging writes weights
    // in the layout of the bases it kept, and a CUDA graph reads the weights' old addresses. The
    // convolutions then keep only their oneDNN-packed weights (layers.h: set_packed_only).
    void weights_changed() {
        if (channels_last) {
            use_channels_last(*unet);
            use_channels_last(*vae);
        }
        set_packed_only(*unet, true);
        set_packed_only(*vae, true);
        if (unet_graph)
            unet_graph->reset();
    }

    // Classifier-free guidance: one batched call on [uncond, cond]. An LCM-distilled U-Net learnt the
    // guided prediction itself: it is told w = guidance - 1 through its guidance-scale embedding and
    // runs once on the prompt alone, as diffusers' LatentConsistencyModelPipeline runs it.
    struct Guided {
        torch::Tensor pred, cond, uncond;
        torch::Tensor attention;  // [77, h, w] of the first conditional sample, when recorded
        std::vector<torch::Tensor> attention_levels;
    };
    Guided guided_noise(const torch::Tensor& scaled, double t, const torch::Tensor& embeds, double guidance,
                        bool record_attention = false) {
        const int64_t guidance_dim = unet->config().time_cond_proj_dim;
        const bool cfg = guidance > 1.0 && guidance_dim == 0;
        const int64_t n = scaled.size(0);
        std::vector<AttentionProbs> probs;
        ModelHooks hooks;
        if (record_attention) {
            hooks.attention = &probs;
            unet->set_hooks(&hooks);
        }
        Guided g;
        try {
            if (!cfg) {
                const torch::Tensor w = guidance_dim > 0 ? guidance_scale_embedding(
                                                               torch::full({n}, guidance - 1, torch::kFloat32), guidance_dim)
                                                         : torch::Tensor();
                g.cond = unet_call(scaled, t, embeds.narrow(0, 1, 1).expand({n, -1, -1}), w);
                g.pred = g.cond;
            } else {
                auto batch = torch::cat({scaled, scaled});
                auto ctx = torch::cat({embeds.narrow(0, 0, 1).expand({n, -1, -1}), embeds.narrow(0, 1, 1).expand({n, -1, -1})});
                auto out = unet_call(batch, t, ctx);
                g.uncond = out.narrow(0, 0, n);
                g.cond = out.narrow(0, n, n);
                g.pred = g.uncond + guidance * (g.cond - g.uncond);
            }
        } catch (...) {
            unet->set_hooks(nullptr);
            throw;
        }
        if (record_attention) {
            unet->set_hooks(nullptr);
            aggregate_attention(probs, cfg ? n : 0, scaled.size(2), scaled.size(3), g);
        }
        return g;
    }

    // DAAM-style aggregation: each layer's [h_l * w_l, 77] map of one sample; layers of one resolution
    // averaged at their own grid (the levels), and every layer bilinearly upsampled to the latent grid and
    // averaged (the overall map, so each level weighs by its number of layers).
    static void aggregate_attention(const std::vector<AttentionProbs>& probs, int64_t sample, int64_t h, int64_t w,
                                    Guided& g) {
        if (probs.empty())
            return;
        std::vector<std::pair<torch::Tensor, int>> levels;  // (sum, layers), finest first
        torch::Tensor sum = torch::zeros({static_cast<int64_t>(probs.front().probs.size(2)), h, w});
        for (const auto& p : probs) {
            auto m = p.probs[sample].to(torch::kFloat32).t().reshape({-1, p.height, p.width}).cpu();  // [77, h_l, w_l]
            auto level = std::find_if(levels.begin(), levels.end(),
                                      [&](const auto& l) { return l.first.size(1) == p.height && l.first.size(2) == p.width; });
            if (level == levels.end())
                levels.emplace_back(m.clone(), 1);
            else {
                level->first += m;
                ++level->second;
            }
            if (p.height != h || p.width != w)
                m = torch::nn::functional::interpolate(
                        m.unsqueeze(0), torch::nn::functional::InterpolateFuncOptions()
                                            .size(std::vector<int64_t>{h, w})
                                            .mode(torch::kBilinear)
                                            .align_corners(false))[0];
            sum += m;
        }
        std::sort(levels.begin(), levels.end(),
                  [](const auto& a, const auto& b) { return a.first.size(1) * a.first.size(2) > b.first.size(1) * b.first.size(2); });
        g.attention = sum / static_cast<double>(probs.size());
        for (auto& [level_sum, layers] : levels)
            g.attention_levels.push_back(level_sum / static_cast<double>(layers));
    }

    torch::Tensor decode(const torch::Tensor& latents, PipelineObserver* observer) {
        const bool tiled = latents.size(2) * latents.size(3) > kTiledDecodeAbove;
        auto result = decode_checked(vae, (latents / info.scaling_factor).to(device), tiled);
        if (result.redone_in_fp32 && observer)
            observer->on_message("the fp16 VAE decode overflowed (NaN/Inf); redone in fp32");
        auto img = result.image.to(torch::kFloat32);
        check_finite(img, "VAE decode");
        return (img / 2 + 0.5).clamp(0, 1).cpu().contiguous();
    }
};

StableDiffusion::StableDiffusion() : impl_(std::make_unique<Impl>()) {}
StableDiffusion::~StableDiffusion() = default;

std::unique_ptr<StableDiffusion> StableDiffusion::load(const std::string& path, const RuntimeOptions& options) {
    const auto t0 = std::chrono::steady_clock::now();
    c10::InferenceMode guard;
    const int threads = options.threads > 0 ? options.threads
                                            : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
    at::set_num_threads(threads);

    std::unique_ptr<StableDiffusion> sd(new StableDiffusion());
    Impl& m = *sd->impl_;
    m.device = parse_device(options.device);

    ModelFiles files = open_model_files(path);
    m.tokenizer = std::make_unique<ClipTokenizer>(make_tokenizer(files.tokenizer));
    m.scheduler_json = files.scheduler_config;

    auto chosen = load_in_chosen_precision(
        files, {m.device, options.dtype, options.unet_dtype, options.vae_encode_dtype, options.vae_decode_dtype});
    m.dtype = chosen.plan.unet.dtype;
    m.unet = chosen.unet;
    m.vae = chosen.vae;
    m.text_encoder = load_text_encoder(files.text_encoder, m.dtype, m.device);
    const auto& te_cfg = m.text_encoder->config();

    ModelInfo& info = m.info;
    info.path = path;
    info.layout = layout_name(files.layout);
    info.device = options.device;
    info.dtype = dtype_label(m.dtype);
    info.precision = chosen.plan;
    info.text_params = parameter_count(*m.text_encoder);
    info.unet_params = parameter_count(*m.unet);
    info.vae_params = parameter_count(*m.vae);
    info.text_hidden = te_cfg.hidden_size;
    info.text_layers = te_cfg.num_hidden_layers;
    info.scaling_factor = m.vae->config().scaling_factor;
    info.vae_spelling = files.vae.spelling;
    info.native_size = static_cast<int>(m.unet->config().sample_size) * 8;
    if (!options.vae.empty())
        sd->set_vae(options.vae);
    if (!options.loras.empty())
        sd->set_loras(options.loras);
    if (!options.embeddings.empty())
        sd->set_embeddings(options.embeddings);
    m.channels_last = options.channels_last;
    info.channels_last = options.channels_last;
    m.deferred_nan_check = options.deferred_nan_check;
    if (options.cuda_graph) {
        if (!m.device.is_cuda())
            throw UsageError("CUDA graphs (--cuda-graph) need --device cuda");
        m.unet_graph = std::make_unique<UNetCudaGraph>(m.unet);
    }
    m.weights_changed();
    info.warnings.insert(info.warnings.end(), chosen.warnings.begin(), chosen.warnings.end());
    info.load_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    return sd;
}

std::vector<std::string> StableDiffusion::set_vae(const std::string& path) {
    c10::InferenceMode guard;
    Impl& m = *impl_;
    LoadedVae v = load_vae_for(m.info.path, path, m.vae->encoder_dtype(), m.vae->decoder_dtype(), m.device);
    m.vae = v.vae;
    m.weights_changed();
    ModelInfo& info = m.info;
    info.vae = path.empty() ? std::string() : v.label;
    info.vae_path = path;
    info.vae_spelling = v.spelling;
    info.vae_params = parameter_count(*m.vae);
    info.warnings = v.warnings;
    return v.warnings;
}

std::vector<LoraReport> StableDiffusion::set_loras(const std::vector<LoraSpec>& loras) {
    c10::InferenceMode guard;
    Impl& m = *impl_;
    restore_plain_weights(*m.unet);  // LoRAs are checked against, and merged into, the plain weights
    std::vector<Impl::AppliedLora> prepared;
    for (const LoraSpec& spec : loras) {
        if (!std::isfinite(spec.strength))
            throw UsageError(spec.path + ": the LoRA strength must be a finite number");
        std::error_code ec;
        const auto written = std::filesystem::last_write_time(spec.path, ec);
        const auto same = std::find_if(m.applied_loras.begin(), m.applied_loras.end(), [&](const Impl::AppliedLora& a) {
            return a.lora->path == spec.path && !ec && a.written == written;
        });
        if (same != m.applied_loras.end())
            prepared.push_back(*same);
        else
            prepared.push_back({std::make_shared<const PreparedLora>(
                                    prepare_lora(read_lora_file(spec.path), m.text_encoder.get(), m.unet.get())),
                                written});
    }
    std::vector<LoraMerger::Applied> applied;
    for (size_t i = 0; i < loras.size(); ++i)
        applied.push_back({prepared[i].lora.get(), loras[i].strength});
    std::vector<std::vector<double>> changes;
    try {
        changes = m.lora_merger.merge(m.text_encoder.get(), m.unet.get(), applied);
    } catch (...) {
        // The merger has put every base weight back.
        m.applied_loras.clear();
        m.lora_reports.clear();
        m.weights_changed();
        throw;
    }
    m.weights_changed();
    std::vector<LoraReport> reports;
    for (size_t i = 0; i < loras.size(); ++i) {
        const PreparedLora& p = *prepared[i].lora;
        LoraReport r{p.path, p.name, p.format, p.rank, p.alpha, loras[i].strength, {}};
        for (size_t j = 0; j < p.layers.size(); ++j) {
            const LoraDelta& d = p.layers[j];
            const bool unet = d.network == LoraNetwork::Unet;
            r.layers.push_back({lora_network_name(d.network), d.module, unet ? unet_level(d.module) : "", changes[i][j]});
        }
        reports.push_back(std::move(r));
    }
    m.applied_loras = std::move(prepared);
    m.lora_reports = reports;
    return reports;
}

const std::vector<LoraReport>& StableDiffusion::loras() const { return impl_->lora_reports; }

std::vector<EmbeddingInfo> StableDiffusion::set_embeddings(const std::vector<std::string>& paths) {
    c10::InferenceMode guard;
    Impl& m = *impl_;
    const auto files = read_embedding_files(paths, m.info.text_hidden);
    *m.tokenizer = apply_embeddings(*m.tokenizer, m.text_encoder, files);
    m.embeddings.clear();
    for (const auto& f : files)
        m.embeddings.push_back({f.path, f.trigger, static_cast<int>(f.vectors.size(0)), f.format});
    return m.embeddings;
}

const std::vector<EmbeddingInfo>& StableDiffusion::embeddings() const { return impl_->embeddings; }

const ModelInfo& StableDiffusion::info() const { return impl_->info; }
const ClipTokenizer& StableDiffusion::tokenizer() const { return *impl_->tokenizer; }

torch::Tensor StableDiffusion::encode_prompt(const std::string& prompt, int clip_skip) {
    c10::InferenceMode guard;
    return impl_->encode_ids(ids_tensor({impl_->tokenizer->encode(prompt)}), clip_skip).cpu();
}

std::vector<torch::Tensor> StableDiffusion::text_hidden_states(const std::string& prompt) {
    c10::InferenceMode guard;
    auto out = impl_->text_encoder->forward(ids_tensor({impl_->tokenizer->encode(prompt)}).to(impl_->device));
    std::vector<torch::Tensor> states;
    for (size_t i = 0; i + 1 < out.hidden_states.size(); ++i)
        states.push_back(out.hidden_states[i].to(torch::kFloat32).cpu());
    states.push_back(out.last_hidden_state.to(torch::kFloat32).cpu());
    return states;
}

EncodedImage StableDiffusion::encode_image(const torch::Tensor& image) {
    c10::InferenceMode guard;
    if (image.dim() != 4 || image.size(1) != 3 || image.size(2) % 8 || image.size(3) % 8)
        throw Error("encode_image: expected [1, 3, H, W] with H and W multiples of 8");
    auto dist = impl_->vae->encode(image.to(impl_->device));
    EncodedImage e;
    e.mean = dist.mean.to(torch::kFloat32).cpu().contiguous();
    e.logvar = dist.logvar.to(torch::kFloat32).cpu().contiguous();
    e.latents = e.mean * impl_->info.scaling_factor;
    return e;
}

torch::Tensor StableDiffusion::decode_latents(const torch::Tensor& latents, PipelineObserver* observer) {
    c10::InferenceMode guard;
    return impl_->decode(latents, observer);
}

torch::Tensor StableDiffusion::predict_noise(const torch::Tensor& sample, double t, const torch::Tensor& context) {
    c10::InferenceMode guard;
    return impl_->unet_call(sample, t, context);
}

torch::Tensor StableDiffusion::generate(const GenerateRequest& r, PipelineObserver& observer) {
    c10::InferenceMode guard;
    Impl& m = *impl_;
    if (r.width <= 0 || r.height <= 0 || r.width % 8 || r.height % 8)
        throw UsageError("width and height must be positive multiples of 8 (got " + std::to_string(r.width) + "x" +
                         std::to_string(r.height) + ")");
    if (r.steps < 1)
        throw UsageError("steps must be at least 1 (got " + std::to_string(r.steps) + ")");
    if (r.count < 1)
        throw UsageError("count must be at least 1");
    if (r.init_image.defined() && (r.strength <= 0.0 || r.strength > 1.0))
        throw UsageError("strength must be in (0, 1] (got " + std::to_string(r.strength) + ")");

    check_memory(r.width, r.height, m.dtype, m.vae->decoder_dtype(), m.device);

    const auto cond = m.tokenizer->encode(r.prompt);
    const auto uncond = m.tokenizer->encode(r.negative_prompt);
    observer.on_tokens(cond, uncond);
    auto embeds = m.encode_ids(ids_tensor({uncond, cond}), r.clip_skip);  // [2, 77, D]: uncond, cond
    check_finite(embeds, "text encoder output");
    observer.on_text_embeddings(embeds.cpu());

    const int64_t h = r.height / 8, w = r.width / 8;
    std::vector<torch::Tensor> images;
    // Each image is its own run with its own generator, so image i reproduces a single run with
    // seed + i exactly, stochastic schedulers included.
    for (int img = 0; img < r.count; ++img) {
        auto gen = at::make_generator<at::CPUGeneratorImpl>(r.seed + static_cast<uint64_t>(img));
        auto sched = m.scheduler(r.scheduler, r.steps, r.karras);
        const auto& timesteps = sched->timesteps();
        const auto& sigmas = sched->sigmas();
        observer.on_timesteps(timesteps, sigmas);
        const int64_t n_steps = timesteps.size(0);
        int64_t start = 0;

        torch::Tensor latents;
        if (r.init_image.defined()) {
            if (r.init_image.size(2) != r.height || r.init_image.size(3) != r.width)
                throw UsageError("the init image must be resized to the requested size first");
            auto dist = m.vae->encode(r.init_image.to(m.device));
            auto init = dist.sample(gen).to(torch::kFloat32).cpu().contiguous() * m.info.scaling_factor;
            const int64_t init_steps = std::min<int64_t>(static_cast<int64_t>(r.steps * r.strength), r.steps);
            start = std::max<int64_t>(r.steps - init_steps, 0);
            if (start >= n_steps)
                throw UsageError("strength " + std::to_string(r.strength) + " leaves no denoising steps");
            auto noise = torch::randn(init.sizes(), gen, torch::kFloat32);
            observer.on_initial_latents(init);
            latents = sched->add_noise(init, noise, timesteps[start].item<double>());
        } else if (r.init_latents.defined()) {
            if (r.init_latents.dim() != 4 || r.init_latents.size(1) != 4 || r.init_latents.size(2) != h ||
                r.init_latents.size(3) != w)
                throw UsageError("init latents must have shape [N, 4, " + std::to_string(h) + ", " +
                                 std::to_string(w) + "]");
            auto init = r.init_latents.narrow(0, std::min<int64_t>(img, r.init_latents.size(0) - 1), 1)
                            .to(torch::kFloat32).cpu();
            observer.on_initial_latents(init);
            latents = init * sched->init_noise_sigma();
        } else {
            auto init = torch::randn({1, 4, h, w}, gen, torch::kFloat32);
            observer.on_initial_latents(init);
            latents = init * sched->init_noise_sigma();
        }
        latents = latents.to(m.device);

        torch::Tensor all_finite;  // deferred_nan_check: the device's verdict over the steps so far
        for (int64_t i = start; i < n_steps; ++i) {
            if (observer.cancel_requested())
                throw Cancelled();
            const double t = timesteps[i].item<double>();
            auto scaled = sched->scale_model_input(latents, static_cast<int>(i));
            auto g = m.guided_noise(scaled, t, embeds, r.guidance, r.record_attention);
            auto out = sched->step(g.pred, static_cast<int>(i), latents, gen);
            latents = out.prev_sample;
            if (m.deferred_nan_check) {
                const auto finite = torch::isfinite(latents).all();
                all_finite = all_finite.defined() ? all_finite.logical_and(finite) : finite;
            } else {
                check_finite(latents, "denoising loop");
            }
            StepEvent e;
            e.index = static_cast<int>(i - start);
            e.total = static_cast<int>(n_steps - start);
            e.timestep = t;
            e.sigma = sigmas.defined() && sigmas.numel() > i ? sigmas[i].item<double>() : 0.0;
            e.latents = latents;
            e.noise_pred = g.pred;
            e.noise_cond = g.cond;
            e.noise_uncond = g.uncond;
            e.pred_x0 = out.pred_original_sample;
            e.attention = g.attention;
            e.attention_levels = std::move(g.attention_levels);
            observer.on_step(e);
        }
        if (all_finite.defined() && !all_finite.item<bool>())
            throw numerical_failure("denoising loop");
        if (observer.cancel_requested())
            throw Cancelled();
        auto image = m.decode(latents, &observer);
        observer.on_image(image);
        images.push_back(image);
    }
    return torch::cat(images);
}

std::vector<torch::Tensor> StableDiffusion::noise_progression(const torch::Tensor& latents, const torch::Tensor& noise,
                                                              const std::string& scheduler, int steps,
                                                              const std::vector<int>& at_steps) {
    c10::InferenceMode guard;
    auto sched = impl_->scheduler(scheduler, steps);
    const auto& ts = sched->timesteps();
    std::vector<torch::Tensor> out;
    for (int k : at_steps) {
        if (k < 0 || k >= ts.size(0))
            throw UsageError("step " + std::to_string(k) + " is outside 0.." + std::to_string(ts.size(0) - 1));
        out.push_back(sched->add_noise(latents, noise, ts[k].item<double>()));
    }
    return out;
}

UNetStepProbe StableDiffusion::unet_step_probe(const torch::Tensor& latents, const torch::Tensor& noise,
                                               const std::string& prompt, const std::string& scheduler, int steps,
                                               int k, double guidance) {
    c10::InferenceMode guard;
    Impl& m = *impl_;
    auto sched = m.scheduler(scheduler, steps);
    const auto& ts = sched->timesteps();
    if (k < 0 || k >= ts.size(0))
        throw UsageError("step " + std::to_string(k) + " is outside 0.." + std::to_string(ts.size(0) - 1));
    UNetStepProbe p;
    p.timestep = ts[k].item<double>();
    p.sigma = sched->sigmas().defined() && sched->sigmas().numel() > k ? sched->sigmas()[k].item<double>() : 0.0;
    p.noisy_latents = sched->add_noise(latents, noise, p.timestep);
    auto embeds = m.encode_ids(ids_tensor({m.tokenizer->encode(""), m.tokenizer->encode(prompt)}), 1);
    auto scaled = sched->scale_model_input(p.noisy_latents.to(m.device), k);
    p.noise_pred = m.guided_noise(scaled, p.timestep, embeds, guidance).pred.cpu();
    p.naive_x0 = p.noisy_latents - p.noise_pred;
    p.pred_x0 = sched->step(p.noise_pred.to(m.device), k, p.noisy_latents.to(m.device)).pred_original_sample.cpu();
    return p;
}

} // namespace sdl
