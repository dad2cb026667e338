#include "core/demo/demo_trainer.h"

#include "core/demo/toy_world.h"
#include "core/io/safetensors.h"
#include "core/models/autoencoder_kl.h"
#include "core/models/clip_text_model.h"
#include "core/models/flash_attention.h"
#include "core/models/unet_2d_condition.h"
#include "core/schedulers/scheduler.h"
#include "core/tokenizer/clip_tokenizer.h"
#include "core/util/error.h"
#include "core/util/resources.h"

#include <ATen/CPUGeneratorImpl.h>
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <chrono>
#include <cmath>
#include <deque>
#include <dlfcn.h>
#include <filesystem>
#include <fstream>
#include <numeric>

namespace fs = std::filesystem;

namespace sdl {
namespace {

using Clock = std::chrono::steady_clock;

nlohmann::json read_preset() {
    const fs::path p = resource_path("presets/demo.json");
    std::ifstream in(p);
    try {
        return nlohmann::json::parse(in);
    } catch (const nlohmann::json::parse_error& e) {
        throw Error(p.string() + ": not valid JSON (" + e.what() + ")");
    }
}

// PyTorch's own defaults, which these layers were designed to train from: U(+-1/sqrt(fan_in)) weights,
// zero biases, unit norm scales, N(0, 0.02) embeddings as CLIP starts them.
void init_for_training(torch::nn::Module& module, at::Generator& gen) {
    torch::NoGradGuard no_grad;
    for (auto& p : module.named_parameters()) {
        auto& t = p.value();
        const std::string& name = p.key();
        const bool bias = name.size() >= 5 && name.compare(name.size() - 5, 5, ".bias") == 0;
        if (bias)
            t.zero_();
        else if (t.dim() == 1)
            t.fill_(1);
        else if (name.find("embedding") != std::string::npos)
            t.normal_(0, 0.02, gen);
        else
            t.uniform_(-1 / std::sqrt(double(t[0].numel())), 1 / std::sqrt(double(t[0].numel())), gen);
    }
}

// Cosine decay after a linear warm-up.
double learning_rate(double base, int step, int steps) {
    const int warmup = std::min(200, steps / 10 + 1);
    const double w = std::min(1.0, double(step + 1) / warmup);
    return base * w * 0.5 * (1 + std::cos(M_PI * step / std::max(1, steps)));
}

void set_lr(torch::optim::Adam& opt, double lr) {
    for (auto& g : opt.param_groups())
        static_cast<torch::optim::AdamOptions&>(g.options()).lr(lr);
}

// Toy-world images in [-1, 1] and their caption indices.
struct Batch {
    torch::Tensor images;  // [B, 3, 128, 128]
    torch::Tensor captions;  // [B] int64
};

Batch toy_batch(std::mt19937_64& rng, int n) {
    std::vector<torch::Tensor> images;
    std::vector<int64_t> captions;
    for (int i = 0; i < n; ++i) {
        const toy::Scene s = toy::random_scene(rng);
        images.push_back(toy::render(s) * 2 - 1);
        captions.push_back(toy::caption_index(s.colour, s.shape));
    }
    return {torch::stack(images), torch::tensor(captions)};
}

// Averages the last 100 values of a phase's loss.
class RunningLoss {
public:
    void add(double v) {
        values_.push_back(v);
        if (values_.size() > 100)
            values_.pop_front();
    }
    double mean() const {
        return values_.empty() ? 0 : std::accumulate(values_.begin(), values_.end(), 0.0) / double(values_.size());
    }

private:
    std::deque<double> values_;
};

// Exponential moving average of parameters: diffusion samples from the averaged weights are cleaner
// than from the last step's.
class Ema {
public:
    Ema(std::vector<torch::Tensor> params, double decay) : params_(std::move(params)), decay_(decay) {
        for (const auto& p : params_)
            shadow_.push_back(p.detach().clone());
    }
    void update(int step) {
        torch::NoGradGuard no_grad;
        const double d = std::min(decay_, (1.0 + step) / (10.0 + step));
        for (size_t i = 0; i < params_.size(); ++i)
            shadow_[i].mul_(d).add_(params_[i].detach(), 1 - d);
    }
    void copy_to_params() {
        torch::NoGradGuard no_grad;
        for (size_t i = 0; i < params_.size(); ++i)
            params_[i].copy_(shadow_[i]);
    }

private:
    std::vector<torch::Tensor> params_, shadow_;
    double decay_;
};

// Debian's LibTorch calls OpenBLAS from its own threads; OpenBLAS' pool on top of them only spins
// (measured on 2 cores: a U-Net training step 1.7x slower, and a short test run several times slower while
// another process kept the cores busy). One OpenBLAS thread while training, whatever the caller (CLI, GUI,
// tests).
class SingleBlasThread {
public:
    SingleBlasThread()
        : get_(reinterpret_cast<int (*)()>(dlsym(RTLD_DEFAULT, "openblas_get_num_threads"))),
          set_(reinterpret_cast<void (*)(int)>(dlsym(RTLD_DEFAULT, "openblas_set_num_threads"))) {
        if (get_ && set_) {
            before_ = get_();
            set_(1);
        }
    }
    ~SingleBlasThread() {
        if (get_ && set_)
            set_(before_);
    }
    SingleBlasThread(const SingleBlasThread&) = delete;
    SingleBlasThread& operator=(const SingleBlasThread&) = delete;

private:
    int (*get_)();
    void (*set_)(int);
    int before_ = 1;
};

void save_fp16(torch::nn::Module& module, const fs::path& file) {
    std::vector<torch::Tensor> keep;
    std::vector<TensorBlob> blobs;
    const auto add = [&](const std::string& name, const torch::Tensor& t) {
        keep.push_back(t.detach().to(torch::kHalf).contiguous());
        const auto& h = keep.back();
        blobs.push_back({name, DType::F16, h.sizes().vec(), h.data_ptr(), size_t(h.numel()) * 2});
    };
    for (const auto& p : module.named_parameters())
        add(p.key(), p.value());
    for (const auto& b : module.named_buffers())
        add(b.key(), b.value());
    write_safetensors(file.string(), blobs, {{"format", "pt"}});
}

} // namespace

DemoTrainResult train_demo(const DemoTrainOptions& o, const std::function<void(const DemoTrainProgress&)>& progress) {
    if (o.vae_steps < 1 || o.unet_steps < 1 || o.vae_batch < 1 || o.unet_batch < 1 || o.latent_pool < 1)
        throw Error("train-demo: steps, batch sizes and the latent pool must be positive");
    const fs::path out = o.out;
    std::error_code ec;
    fs::create_directories(out, ec);
    if (ec)
        throw Error(out.string() + ": cannot create folder: " + ec.message());
    std::ofstream log(out / "train_log.jsonl");
    if (!log)
        throw Error((out / "train_log.jsonl").string() + ": cannot write");

    // Autograd needs the differentiable attention path; the flash kernel is forward-only.
    const CpuAttention attention = cpu_attention();
    set_cpu_attention(CpuAttention::plain);
    struct Restore {
        CpuAttention a;
        ~Restore() { set_cpu_attention(a); }
    } restore{attention};
    const SingleBlasThread single_blas_thread;

    const auto start = Clock::now();
    const auto seconds = [&] { return std::chrono::duration<double>(Clock::now() - start).count(); };
    const auto report = [&](const std::string& phase, int step, int steps, double loss) {
        DemoTrainProgress p{phase, step, steps, loss, seconds()};
        if (phase != "encode")
            log << nlohmann::json{{"phase", phase}, {"step", step}, {"loss", loss}, {"seconds", p.seconds}}.dump()
                << std::endl;  // flushed, so the log can be followed while training runs
        if (progress)
            progress(p);
    };

    nlohmann::json preset = read_preset();
    const auto te_config = ClipTextConfig::from_json(preset.at("text_encoder_config"));
    const auto unet_config = UNet2DConditionConfig::from_json(preset.at("unet_config"));
    auto vae_config = AutoencoderKLConfig::from_json(preset.at("vae_config"));

    std::mt19937_64 rng(o.seed);
    auto gen = at::make_generator<at::CPUGeneratorImpl>(o.seed);
    torch::manual_seed(o.seed);
    DemoTrainResult result;

    // Phase 1: the VAE.
    AutoencoderKL vae(vae_config);
    init_for_training(*vae, gen);
    {
        torch::optim::Adam opt(vae->parameters(), torch::optim::AdamOptions(o.vae_lr));
        RunningLoss running;
        for (int step = 0; step < o.vae_steps; ++step) {
            set_lr(opt, learning_rate(o.vae_lr, step, o.vae_steps));
            const auto images = toy_batch(rng, o.vae_batch).images;
            const auto dist = vae->encode(images);
            const auto recon = vae->decode(dist.sample(gen));
            const auto diff = recon - images;
            // L1 keeps the shapes' edges sharp, L2 their flat colours exact; the KL term (per latent value)
            // only keeps the latents near N(0, 1)'s scale for the diffusion model.
            const auto kl = 0.5 * (dist.mean.pow(2) + dist.logvar.exp() - 1 - dist.logvar).mean();
            const auto loss = diff.abs().mean() + diff.pow(2).mean() + 1e-4 * kl;
            opt.zero_grad();
            loss.backward();
            opt.step();
            running.add(loss.item<double>());
            report("vae", step + 1, o.vae_steps, loss.item<double>());
        }
        result.vae_loss = running.mean();
    }

    // Phase 2: a pool of latents from the frozen VAE. The U-Net trains on samples of each image's
    // latent distribution, as SD's did.
    torch::Tensor pool_mean, pool_std, pool_captions;
    {
        torch::NoGradGuard no_grad;
        std::vector<torch::Tensor> means, stds, captions;
        for (int done = 0; done < o.latent_pool;) {
            const int n = std::min(64, o.latent_pool - done);
            const auto b = toy_batch(rng, n);
            const auto dist = vae->encode(b.images);
            means.push_back(dist.mean);
            stds.push_back((dist.logvar * 0.5).exp());
            captions.push_back(b.captions);
            done += n;
            report("encode", done, o.latent_pool, 0);
        }
        pool_mean = torch::cat(means);
        pool_std = torch::cat(stds);
        pool_captions = torch::cat(captions);
        const auto sampled = pool_mean + pool_std * torch::randn(pool_mean.sizes(), gen);
        result.scaling_factor = 1.0 / sampled.std().item<double>();
    }

    // The 12 captions and the empty one (index 12) that guidance contrasts them with.
    std::vector<int64_t> ids;
    const auto tokenizer = ClipTokenizer::bundled();
    for (int c = 0; c <= toy::kCaptionCount; ++c) {
        const std::string text = c < toy::kCaptionCount
                                     ? toy::caption(c / int(toy::kShapes.size()), toy::kShapes[size_t(c) % toy::kShapes.size()])
                                     : "";
        const auto t = tokenizer.encode(text).input_ids;
        ids.insert(ids.end(), t.begin(), t.end());
    }
    const auto caption_ids = torch::tensor(ids).view({toy::kCaptionCount + 1, -1});  // [13, 77]

    // Phase 3: the U-Net and the text encoder, epsilon prediction at uniform training timesteps.
    ClipTextModel text_encoder(te_config);
    UNet2DConditionModel unet(unet_config);
    init_for_training(*text_encoder, gen);
    init_for_training(*unet, gen);
    {
        const auto acp = make_scheduler("ddim", default_scheduler_config("ddim"))->alphas_cumprod();  // [1000], SD 1.x's scaled_linear
        std::vector<torch::Tensor> params = unet->parameters();
        for (const auto& p : text_encoder->parameters())
            params.push_back(p);
        torch::optim::Adam opt(params, torch::optim::AdamOptions(o.unet_lr));
        Ema ema(params, 0.999);
        RunningLoss running;
        const int64_t pool = pool_mean.size(0);
        for (int step = 0; step < o.unet_steps; ++step) {
            set_lr(opt, learning_rate(o.unet_lr, step, o.unet_steps));
            const auto pick = torch::randint(pool, {o.unet_batch}, gen, torch::kLong);
            const auto mean = pool_mean.index_select(0, pick), std = pool_std.index_select(0, pick);
            const auto latents = (mean + std * torch::randn(mean.sizes(), gen)) * result.scaling_factor;
            auto captions = pool_captions.index_select(0, pick);
            const auto drop = torch::rand({o.unet_batch}, gen) < o.caption_drop;
            captions = torch::where(drop, torch::full_like(captions, toy::kCaptionCount), captions);
            const auto t = torch::randint(acp.size(0), {o.unet_batch}, gen, torch::kLong);
            const auto a = acp.index_select(0, t).view({-1, 1, 1, 1});
            const auto noise = torch::randn(latents.sizes(), gen);
            const auto noisy = a.sqrt() * latents + (1 - a).sqrt() * noise;
            const auto context = text_encoder->encode(caption_ids).index_select(0, captions);  // [B, 77, 32]
            const auto loss = torch::mse_loss(unet->forward(noisy, t, context), noise);
            opt.zero_grad();
            loss.backward();
            opt.step();
            ema.update(step);
            running.add(loss.item<double>());
            report("unet", step + 1, o.unet_steps, loss.item<double>());
        }
        result.unet_loss = running.mean();
        ema.copy_to_params();
    }

    save_fp16(*text_encoder, out / "text_encoder.safetensors");
    save_fp16(*unet, out / "unet.safetensors");
    save_fp16(*vae, out / "vae.safetensors");
    result.seconds = seconds();

    preset.erase("_comment");
    preset["vae_config"]["scaling_factor"] = result.scaling_factor;
    preset["vocabulary"] = toy::vocabulary();
    preset["training"] = {{"vae_steps", o.vae_steps},     {"unet_steps", o.unet_steps},
                          {"seed", o.seed},               {"vae_batch", o.vae_batch},
                          {"unet_batch", o.unet_batch},   {"latent_pool", o.latent_pool},
                          {"vae_lr", o.vae_lr},           {"unet_lr", o.unet_lr},
                          {"caption_drop", o.caption_drop}, {"threads", at::get_num_threads()},
                          {"vae_loss", result.vae_loss},  {"unet_loss", result.unet_loss},
                          {"seconds", std::round(result.seconds)}};
    std::ofstream(out / "demo.json") << preset.dump(1) << '\n';
    return result;
}

} // namespace sdl
