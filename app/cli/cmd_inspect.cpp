// sdlens-cli inspect PATH [--load fp32|fp16|bf16]
// What a model path holds, as JSON: layout, per component its config, dtypes, tensor and
// parameter counts and the keys deliberately ignored; the tokenizer source; for a VAE, which key
// spelling it uses. A path that is no model but a VAE (file or folder) or a LoRA is described as one (a LoRA:
// its format, ranks, alphas, and how many layers it changes per network and U-Net level). --load also converts
// every tensor (keeping them all, as a pipeline would) to check the data and time the load.
#include "app/cli/command.h"
#include "core/io/lora_files.h"
#include "core/io/model_files.h"
#include "core/io/tensor_io.h"
#include "core/io/vae_files.h"
#include "core/models/autoencoder_kl.h"
#include "core/models/clip_text_model.h"
#include "core/models/unet_2d_condition.h"
#include "core/models/weights.h"
#include "core/util/error.h"

#include <nlohmann/json.hpp>

#include <chrono>
#include <cmath>
#include <iostream>
#include <map>
#include <set>

namespace {

nlohmann::json describe(const sdl::ComponentFiles& c) {
    std::map<std::string, int64_t> dtypes;
    int64_t parameters = 0;
    uint64_t bytes = 0;
    for (const auto& [name, v] : c.tensors) {
        ++dtypes[sdl::dtype_name(v.dtype)];
        parameters += v.numel();
        bytes += v.nbytes;
    }
    nlohmann::json files = nlohmann::json::array();
    for (const auto& f : c.files)
        files.push_back(f->path());
    nlohmann::json d = {{"config", c.config}, {"files", files},         {"tensors", c.tensors.size()},
                        {"parameters", parameters}, {"bytes", bytes}, {"dtypes", dtypes},
                        {"ignored", c.ignored}};
    if (!c.spelling.empty())
        d["spelling"] = c.spelling;
    return d;
}

// The names and shapes the networks built from the configs expect, against what the files hold.
// Building allocates no weights, so this costs milliseconds even for SD 1.5.
nlohmann::json key_check(const sdl::ComponentFiles& c) {
    sdl::ModelCheck check;
    if (c.name == "text_encoder")
        check = sdl::check_weights(*sdl::ClipTextModel(sdl::ClipTextConfig::from_json(c.config)), c);
    else if (c.name == "unet")
        check = sdl::check_weights(*sdl::UNet2DConditionModel(sdl::UNet2DConditionConfig::from_json(c.config)), c);
    else
        check = sdl::check_weights(*sdl::AutoencoderKL(sdl::AutoencoderKLConfig::from_json(c.config)), c);
    return {{"complete", check.ok()}, {"missing", check.missing}, {"unexpected", check.unexpected},
            {"misshapen", check.misshapen}};
}

bool looks_like_lora(const std::string& path) {
    try {
        return sdl::is_lora_file(*sdl::SafetensorsFile::open(path));
    } catch (const sdl::Error&) {
        return false;
    }
}

nlohmann::json describe_lora(const sdl::LoraFile& f) {
    std::set<int64_t> ranks;
    std::set<double> alphas;
    std::map<std::string, int64_t> dtypes;
    uint64_t bytes = 0;
    std::map<std::string, int64_t> layers, levels;
    for (const auto& l : f.layers) {
        ranks.insert(l.rank);
        alphas.insert(l.alpha);
        for (const auto* v : {&l.down, &l.up}) {
            ++dtypes[sdl::dtype_name(v->dtype)];
            bytes += v->nbytes;
        }
        ++layers[sdl::lora_network_name(l.network)];
        if (l.network == sdl::LoraNetwork::Unet) {
            const std::string level = sdl::unet_level(l.module);
            ++levels[level.empty() ? "outside the blocks" : level];
        }
    }
    nlohmann::json networks = nlohmann::json::object();
    for (const auto& [network, count] : layers)
        networks[network]["layers"] = count;
    if (!levels.empty())
        networks["unet"]["levels"] = levels;
    return {{"path", f.path},
            {"layout", "lora"},
            {"format", f.format},
            {"rank", ranks.empty() ? 0 : *ranks.rbegin()},
            {"ranks", ranks},
            {"alpha", f.layers.empty() ? 0.0 : f.layers.front().alpha},
            {"alphas", alphas},
            {"layers", f.layers.size()},
            {"networks", networks},
            {"dtypes", dtypes},
            {"bytes", bytes}};
}

std::string tokenizer_source(const sdl::TokenizerFiles& t) {
    if (!t.vocab_json.empty())
        return "vocab.json+merges.txt";
    if (!t.tokenizer_json.empty())
        return "tokenizer.json";
    return "bundled";
}

int run_inspect(sdl::cli::Args& args) {
    const auto load = args.get("--load");
    const auto& pos = args.positionals();
    args.finish();
    if (pos.size() != 1)
        throw sdl::UsageError("usage: sdlens-cli inspect PATH [--load fp32|fp16|bf16]");
    const std::map<std::string, torch::Dtype> load_dtypes{
        {"fp32", torch::kFloat32}, {"fp16", torch::kFloat16}, {"bf16", torch::kBFloat16}};
    if (load && !load_dtypes.count(*load))
        throw sdl::UsageError("--load must be fp32, fp16 or bf16, got '" + *load + "'");

    sdl::ModelFiles m;
    try {
        m = sdl::open_model_files(pos[0]);
    } catch (const sdl::Error& model_error) {
        // Not a model: perhaps a VAE or a LoRA. If it is neither, the model's error says more.
        sdl::VaeFiles v;
        try {
            v = sdl::open_vae_files(pos[0]);
        } catch (const sdl::Error&) {
            if (!looks_like_lora(pos[0]))
                throw model_error;
            const auto d = describe_lora(sdl::read_lora_file(pos[0]));
            std::cout << d.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) << '\n';
            return 0;
        }
        auto d = describe(v.files);
        d["keys"] = key_check(v.files);
        nlohmann::json out = {{"path", v.path}, {"layout", "vae"}, {"source", v.source},
                              {"spelling", sdl::vae_spelling_name(v.spelling)}, {"complete", d["keys"]["complete"]},
                              {"warnings", v.warnings}, {"components", {{"vae", d}}}};
        std::cout << out.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) << '\n';
        return 0;
    }
    nlohmann::json out = {{"path", m.path}, {"layout", sdl::layout_name(m.layout)}};
    bool complete = true;
    for (const auto* c : {&m.text_encoder, &m.unet, &m.vae}) {
        auto d = describe(*c);
        d["keys"] = key_check(*c);
        complete = complete && d["keys"]["complete"].get<bool>();
        out["components"][c->name] = d;
    }
    out["complete"] = complete;
    out["scheduler_config"] = m.scheduler_config;
    const std::string source = tokenizer_source(m.tokenizer);
    out["tokenizer"] = {{"source", source}};
    if (source == "vocab.json+merges.txt")
        out["tokenizer"]["files"] = {m.tokenizer.vocab_json, m.tokenizer.merges_txt};
    else if (source == "tokenizer.json")
        out["tokenizer"]["files"] = {m.tokenizer.tokenizer_json};

    if (load) {
        // Integer buffers keep their type; floating weights become the requested dtype.
        const auto start = std::chrono::steady_clock::now();
        std::vector<torch::Tensor> kept;
        uint64_t bytes = 0;
        for (const auto* c : {&m.text_encoder, &m.unet, &m.vae})
            for (const auto& [name, v] : c->tensors) {
                const bool floating = v.dtype == sdl::DType::F32 || v.dtype == sdl::DType::F16 ||
                                      v.dtype == sdl::DType::BF16;
                kept.push_back(floating ? sdl::to_tensor(v, load_dtypes.at(*load)) : sdl::to_tensor(v));
                bytes += kept.back().nbytes();
            }
        const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
        out["load"] = {{"dtype", *load}, {"bytes", bytes}, {"seconds", std::round(seconds * 1000) / 1000}};
    }
    // Tensor names come from the file; invalid UTF-8 in one is shown as U+FFFD, not a failure.
    std::cout << out.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) << '\n';
    return 0;
}

sdl::cli::Register reg{"inspect", "Describe a model folder or single file as JSON (layout, configs, dtypes, counts)",
                       {}, run_inspect};

} // namespace
