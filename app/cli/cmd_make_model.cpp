// sdlens-cli make-model --preset tiny|sd15 --out DIR [--dtype fp16|fp32] [--seed N]
// Writes a random-weight SD 1.x model in the diffusers folder layout with the bundled tokenizer:
// `tiny` (tiny-sd's architecture) is the demo model, `sd15` (SD 1.5's names and shapes) the
// benchmark model. Values are drawn so activations stay finite and of sane size.
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
#include <iostream>

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

int run_make_model(sdl::cli::Args& args) {
    const std::string preset = args.required("--preset");
    const fs::path out = args.required("--out");
    const std::string dtype_name = args.get_or("--dtype", "fp16");
    const int seed = args.get_int("--seed", 0);
    args.finish();
    const std::map<std::string, std::string> presets{{"tiny", "presets/tiny.json"}, {"sd15", "sd15-shapes.json"}};
    if (!presets.count(preset))
        throw sdl::UsageError("--preset must be tiny or sd15, got '" + preset + "'");
    if (dtype_name != "fp16" && dtype_name != "fp32")
        throw sdl::UsageError("--dtype must be fp16 or fp32, got '" + dtype_name + "'");
    const sdl::DType dtype = dtype_name == "fp16" ? sdl::DType::F16 : sdl::DType::F32;

    const auto start = std::chrono::steady_clock::now();
    const nlohmann::json p = read_json(sdl::resource_path(presets.at(preset)));
    for (const char* key : {"text_encoder", "unet", "vae", "text_encoder_config", "unet_config", "vae_config"})
        if (!p.contains(key) || !p[key].is_object())
            throw sdl::Error(sdl::resource_path(presets.at(preset)).string() + ": preset lacks the '" + key + "' object");

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
               with_class(p["text_encoder_config"], "architectures", {"CLIPTextModel"}));
    write_json(out / "unet" / "config.json", with_class(p["unet_config"], "_class_name", "UNet2DConditionModel"));
    write_json(out / "vae" / "config.json", with_class(p["vae_config"], "_class_name", "AutoencoderKL"));
    for (const char* f : {"tokenizer_config.json", "special_tokens_map.json"})
        write_json(out / "tokenizer" / f, read_json(sdl::resource_path(std::string("presets/") + f)));
    sdl::ClipTokenizer::bundled().save_vocab_merges((out / "tokenizer" / "vocab.json").string(),
                                                    (out / "tokenizer" / "merges.txt").string());

    const auto s = static_cast<uint64_t>(seed);
    write_weights(out / "text_encoder" / "model.safetensors", "text_encoder", p["text_encoder"], dtype, s);
    write_weights(out / "unet" / "diffusion_pytorch_model.safetensors", "unet", p["unet"], dtype, s);
    write_weights(out / "vae" / "diffusion_pytorch_model.safetensors", "vae", p["vae"], dtype, s);

    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    uintmax_t bytes = 0;
    for (const auto& e : fs::recursive_directory_iterator(out))
        if (e.is_regular_file())
            bytes += e.file_size();
    std::cout << nlohmann::json{{"out", out.string()}, {"preset", preset}, {"dtype", dtype_name}, {"seed", seed},
                                {"bytes", bytes}, {"seconds", std::round(seconds * 100) / 100}}
                     .dump()
              << '\n';
    return 0;
}

sdl::cli::Register reg{"make-model",
                       "Write a random-weight SD 1.x model (--preset tiny|sd15 --out DIR [--dtype fp16|fp32] [--seed N])",
                       {},
                       run_make_model};

} // namespace
