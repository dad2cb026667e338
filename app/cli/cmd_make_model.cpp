// sdlens-cli make-model --preset tiny|sd15|demo --out DIR [--dtype fp16|fp32] [--seed N] [--weights SRC]
// Writes an SD 1.x model in the diffusers folder layout with the bundled tokenizer. `tiny` (tiny-sd's
// architecture) and `sd15` (SD 1.5's names and shapes, the benchmark model) get random weights, drawn
// so activations stay finite and of sane size. `demo` is the trained demo model: the configs and fp16
// weights that `train-demo` wrote into SRC (default: the bundled resources/demo), plus
// sdlens_demo.json (its vocabulary and training) for the GUI.
#include "app/cli/command.h"
#include "core/io/safetensors.h"
#include "core/tokenizer/clip_tokenizer.h"
#include "core/util/error.h"
#include "core/util/resources.h"

#include <ATen/CPUGeneratorImpl.h>
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <iostream>
#include <utility>

namespace fs = std::filesystem;

namespace {

nlohmann::json read_json(const fs::path& p) {
    std::ifstream in(p);
    if (!in)
        throw sdl::Error(p.string() + ": cannot read");
    try {
        return nlohmann::json::parse(in);
    } catch (const nlohmann::json::parse_error& e) {
        throw sdl::Error(p.string() + ": not valid JSON (" + e.what() + ")");
    }
}

void write_json(const fs::path& p, const nlohmann::json& j) {
    const fs::path tmp = p.string() + ".tmp";
    {
        std::ofstream out(tmp);
        out << j.dump(2) << '\n';
        if (!out)
            throw sdl::Error(p.string() + ": cannot write");
    }
    fs::rename(tmp, p);
}

// A name's own stream: the same seed gives the same tensor whatever else the preset holds.
uint64_t stream_seed(uint64_t seed, const std::string& component, const std::string& name) {
    uint64_t h = 1469598103934665603ull;  // FNV-1a
    for (const char c : component + "/" + name) {
        h ^= static_cast<unsigned char>(c);
        h *= 1099511628211ull;
    }
    return h ^ (seed * 0x9E3779B97F4A7C15ull);
}

// Biases 0 and norm scales 1 (every 1-D weight in SD 1.x is a norm's); embeddings N(0, 0.02) as
// CLIP initializes them; other weights N(0, 1/sqrt(fan_in)) so each layer roughly keeps its
// input's scale.
torch::Tensor random_values(const std::string& name, const std::vector<int64_t>& shape, uint64_t seed) {
    const auto f32 = torch::TensorOptions().dtype(torch::kFloat32);
    const auto ends_with = [&](const std::string& s) {
        return name.size() >= s.size() && name.compare(name.size() - s.size(), s.size(), s) == 0;
    };
    if (ends_with(".bias"))
        return torch::zeros(shape, f32);
    if (shape.size() == 1)
        return torch::ones(shape, f32);
    auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
    double std = 0.02;
    if (!ends_with("embedding.weight")) {
        double fan_in = 1;
        for (size_t i = 1; i < shape.size(); ++i)
            fan_in *= static_cast<double>(shape[i]);
        std = 1.0 / std::sqrt(fan_in);
    }
    return at::normal(0.0, std, shape, gen, f32);
}

// One component's weights, generated tensor by tensor straight into the file.
void write_weights(const fs::path& file, const std::string& component, const nlohmann::json& shapes,
                   sdl::DType dtype, uint64_t seed) {
    std::vector<sdl::TensorSpec> specs;
    for (auto it = shapes.begin(); it != shapes.end(); ++it)
        specs.push_back({it.key(), dtype, it.value().get<std::vector<int64_t>>()});
    const auto target = dtype == sdl::DType::F16 ? torch::kFloat16 : torch::kFloat32;
    sdl::write_safetensors_streamed(
        file.string(), specs,
        [&](size_t i, uint8_t* out) {
            const auto& s = specs[i];
            torch::from_blob(out, s.shape, torch::TensorOptions().dtype(target))
                .copy_(random_values(s.name, s.shape, stream_seed(seed, component, s.name)));
        },
        {{"format", "pt"}});
}

// diffusers needs _class_name to pick the model class; transformers needs architectures.
nlohmann::json with_class(nlohmann::json config, const char* key, const nlohmann::json& value) {
    if (!config.contains(key) || config[key].is_null())
        config[key] = value;
    return config;
}

void require_objects(const nlohmann::json& j, const fs::path& file, std::initializer_list<const char*> keys) {
    for (const char* key : keys)
        if (!j.contains(key) || !j[key].is_object())
            throw sdl::Error(file.string() + ": lacks the '" + key + "' object");
}

// What every preset shares: the folders, model_index.json, the scheduler, the bundled tokenizer and
// the three configs (`configs` holds text_encoder_config, unet_config, vae_config). Only the weights
// differ from preset to preset.
void write_skeleton(const fs::path& out, const nlohmann::json& configs) {
    std::error_code ec;
    if (fs::exists(out, ec) && !fs::is_directory(out, ec))
        throw sdl::Error(out.string() + ": exists and is not a folder");
    for (const char* sub : {"scheduler", "text_encoder", "tokenizer", "unet", "vae"}) {
        fs::create_directories(out / sub, ec);
        if (ec)
            throw sdl::Error((out / sub).string() + ": cannot create folder: " + ec.message());
    }

    write_json(out / "model_index.json",
               {{"_class_name", "StableDiffusionPipeline"},
                {"feature_extractor", {nullptr, nullptr}},
                {"requires_safety_checker", false},
                {"safety_checker", {nullptr, nullptr}},
                {"scheduler", {"diffusers", "PNDMScheduler"}},
                {"text_encoder", {"transformers", "CLIPTextModel"}},
                {"tokenizer", {"transformers", "CLIPTokenizer"}},
                {"unet", {"diffusers", "UNet2DConditionModel"}},
                {"vae", {"diffusers", "AutoencoderKL"}}});
    write_json(out / "scheduler" / "scheduler_config.json", read_json(sdl::resource_path("presets/scheduler_config.json")));
    write_json(out / "text_encoder" / "config.json",
               with_class(configs["text_encoder_config"], "architectures", {"CLIPTextModel"}));
    write_json(out / "unet" / "config.json", with_class(configs["unet_config"], "_class_name", "UNet2DConditionModel"));
    write_json(out / "vae" / "config.json", with_class(configs["vae_config"], "_class_name", "AutoencoderKL"));
    for (const char* f : {"tokenizer_config.json", "special_tokens_map.json"})
        write_json(out / "tokenizer" / f, read_json(sdl::resource_path(std::string("presets/") + f)));
    sdl::ClipTokenizer::bundled().save_vocab_merges((out / "tokenizer" / "vocab.json").string(),
                                                    (out / "tokenizer" / "merges.txt").string());
}

void write_random_model(const fs::path& out, const std::string& preset_file, sdl::DType dtype, uint64_t seed) {
    const fs::path preset_path = sdl::resource_path(preset_file);
    const nlohmann::json p = read_json(preset_path);
    require_objects(p, preset_path, {"text_encoder", "unet", "vae", "text_encoder_config", "unet_config", "vae_config"});
    write_skeleton(out, p);
    write_weights(out / "text_encoder" / "model.safetensors", "text_encoder", p["text_encoder"], dtype, seed);
    write_weights(out / "unet" / "diffusion_pytorch_model.safetensors", "unet", p["unet"], dtype, seed);
    write_weights(out / "vae" / "diffusion_pytorch_model.safetensors", "vae", p["vae"], dtype, seed);
}

// train-demo's file names, and where diffusers and transformers look for each.
constexpr std::pair<const char*, const char*> kDemoWeights[] = {
    {"text_encoder.safetensors", "text_encoder/model.safetensors"},
    {"unet.safetensors", "unet/diffusion_pytorch_model.safetensors"},
    {"vae.safetensors", "vae/diffusion_pytorch_model.safetensors"}};

void write_demo_model(const fs::path& out, const fs::path& src) {
    std::error_code ec;
    for (const char* f : {"demo.json", kDemoWeights[0].first, kDemoWeights[1].first, kDemoWeights[2].first})
        if (!fs::is_regular_file(src / f, ec))
            throw sdl::Error((src / f).string() +
                             ": not found; the demo's weights are the folder sdlens-cli train-demo --out wrote "
                             "(demo.json, text_encoder.safetensors, unet.safetensors, vae.safetensors)");
    const fs::path demo_path = src / "demo.json";
    const nlohmann::json demo = read_json(demo_path);
    require_objects(demo, demo_path, {"text_encoder_config", "unet_config", "vae_config", "training"});
    if (!demo.contains("vocabulary") || !demo["vocabulary"].is_string())
        throw sdl::Error(demo_path.string() + ": lacks the 'vocabulary' string");

    // sdlens_demo.json is removed first and written last: a folder whose copy was cut short has none,
    // and the GUI makes it again.
    fs::remove(out / "sdlens_demo.json", ec);
    write_skeleton(out, demo);
    // Copied beside and renamed, as the random weights are written: a process that has the old file
    // mapped keeps reading it rather than a truncated one.
    for (const auto& [from, to] : kDemoWeights) {
        const fs::path tmp = (out / to).string() + ".tmp";
        fs::copy_file(src / from, tmp, fs::copy_options::overwrite_existing, ec);
        if (!ec)
            fs::rename(tmp, out / to, ec);
        if (ec)
            throw sdl::Error((out / to).string() + ": cannot copy " + (src / from).string() + " there: " + ec.message());
    }
    write_json(out / "sdlens_demo.json", {{"vocabulary", demo["vocabulary"]}, {"training", demo["training"]}});
}

int run_make_model(sdl::cli::Args& args) {
    const std::string preset = args.required("--preset");
    const fs::path out = args.required("--out");
    const std::string dtype_name = args.get_or("--dtype", "fp16");
    const bool seed_given = args.get("--seed").has_value();
    const int seed = args.get_int("--seed", 0);
    const auto weights = args.get("--weights");
    args.finish();
    const std::map<std::string, std::string> presets{{"tiny", "presets/tiny.json"}, {"sd15", "sd15-shapes.json"}};
    const bool demo = preset == "demo";
    if (!demo && !presets.count(preset))
        throw sdl::UsageError("--preset must be tiny, sd15 or demo, got '" + preset + "'");
    if (dtype_name != "fp16" && dtype_name != "fp32")
        throw sdl::UsageError("--dtype must be fp16 or fp32, got '" + dtype_name + "'");
    if (demo && dtype_name != "fp16")
        throw sdl::UsageError("--dtype " + dtype_name + ": the demo model ships its trained weights in fp16 only "
                              "(leave out --dtype; sdlens-cli loads them in any precision with its own --dtype)");
    if (demo && seed_given)
        throw sdl::UsageError("--seed draws random weights; the demo model's are trained (leave out --seed)");
    if (!demo && weights)
        throw sdl::UsageError("--weights is for --preset demo: the folder sdlens-cli train-demo wrote");

    const auto start = std::chrono::steady_clock::now();
    nlohmann::json report{{"out", out.string()}, {"preset", preset}, {"dtype", dtype_name}};
    if (demo) {
        const fs::path src = weights ? fs::path(*weights) : sdl::resource_path("demo");
        write_demo_model(out, src);
        report["weights"] = src.string();
    } else {
        write_random_model(out, presets.at(preset), dtype_name == "fp16" ? sdl::DType::F16 : sdl::DType::F32,
                           static_cast<uint64_t>(seed));
        report["seed"] = seed;
    }

    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    uintmax_t bytes = 0;
    for (const auto& e : fs::recursive_directory_iterator(out))
        if (e.is_regular_file())
            bytes += e.file_size();
    report["bytes"] = bytes;
    report["seconds"] = std::round(seconds * 100) / 100;
    std::cout << report.dump() << '\n';
    return 0;
}

sdl::cli::Register reg{"make-model",
                       "Write an SD 1.x model: random weights (--preset tiny|sd15 --out DIR [--dtype fp16|fp32] "
                       "[--seed N]) or the trained demo (--preset demo --out DIR [--weights DIR])",
                       {},
                       run_make_model};

} // namespace
