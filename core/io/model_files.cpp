#include "core/io/model_files.h"

#include "core/io/hf_cache.h"
#include "core/io/single_file.h"
#include "core/io/vae_files.h"
#include "core/util/error.h"

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <fstream>
#include <set>

namespace sdl {

namespace fs = std::filesystem;

const char* layout_name(ModelLayout l) {
    switch (l) {
    case ModelLayout::DiffusersFolder: return "diffusers";
    case ModelLayout::SingleFile: return "single-file";
    }
    return "?";
}

namespace {

bool starts_with(const std::string& s, const std::string& prefix) { return s.compare(0, prefix.size(), prefix) == 0; }

std::string lower(std::string s) {
    std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    return s;
}

nlohmann::json read_json(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    if (!in)
        throw Error(p.string() + ": cannot read");
    nlohmann::json j;
    try {
        j = nlohmann::json::parse(in);
    } catch (const nlohmann::json::parse_error& e) {
        throw Error(p.string() + ": not valid JSON (" + e.what() + ")");
    }
    if (!j.is_object())
        throw Error(p.string() + ": expected a JSON object, found " + j.type_name());
    return j;
}

// Pickles can execute arbitrary code when loaded, so SD Lens never opens them; converting once
// with the user's own Python is safe (weights_only=True) and quick.
[[noreturn]] void refuse_pickle(const std::string& path) {
    throw Error(path +
                ": is a PyTorch pickle checkpoint, which SD Lens does not open because loading a pickle can run "
                "arbitrary code. Convert it to safetensors once, in Python: import torch, safetensors.torch as st; "
                "sd = torch.load('IN.ckpt', map_location='cpu', weights_only=True); sd = sd.get('state_dict', sd); "
                "st.save_file({k: v.contiguous() for k, v in sd.items() if torch.is_tensor(v)}, 'OUT.safetensors') "
                "-- then open OUT.safetensors");
}

[[noreturn]] void refuse_folder_pickle(const fs::path& file) {
    throw Error(file.string() +
                ": this diffusers folder stores weights as PyTorch pickles (.bin), which SD Lens does not open "
                "because loading a pickle can run arbitrary code. Re-save it with safetensors, in Python: "
                "from diffusers import StableDiffusionPipeline; "
                "StableDiffusionPipeline.from_pretrained('DIR').save_pretrained('NEW_DIR', safe_serialization=True)");
}

bool is_pickle_extension(const std::string& ext) {
    static const std::set<std::string> exts{".ckpt", ".bin", ".pt", ".pth", ".pkl", ".pickle"};
    return exts.count(lower(ext)) != 0;
}

// torch.save writes a zip archive ("PK\3\4") or, before 1.6, a bare pickle (protocol byte 0x80).
// A zip (torch.save's format) or a raw pickle (protocol >= 2 opens with 0x80). A safetensors file
// can open with 0x80 too (the low byte of its header length), so one whose header length fits the
// file and whose JSON header starts right after it is not taken for a pickle.
bool looks_like_pickle(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    unsigned char b[9] = {};
    in.read(reinterpret_cast<char*>(b), 9);
    if (b[0] == 'P' && b[1] == 'K' && b[2] == 3 && b[3] == 4)
        return true;
    if (b[0] != 0x80)
        return false;
    uint64_t header = 0;
    for (int i = 7; i >= 0; --i)
        header = (header << 8) | b[i];
    std::error_code ec;
    const auto size = fs::file_size(p, ec);
    const bool safetensors = !ec && size >= 9 && header <= size - 8 && b[8] == '{';
    return !safetensors;
}

void add_tensors(ComponentFiles& c, const std::shared_ptr<SafetensorsFile>& f) {
    for (const auto& [name, view] : f->tensors())
        if (!c.tensors.emplace(name, view).second)
            throw Error(f->path() + ": tensor '" + name + "' also appears in another shard of " + c.name);
    c.files.push_back(f);
}

void load_sharded(ComponentFiles& c, const fs::path& index_path) {
    const auto index = read_json(index_path);
    const auto wm = index.find("weight_map");
    if (wm == index.end() || !wm->is_object())
        throw Error(index_path.string() + ": expected a \"weight_map\" object mapping tensor names to shard files");
    std::map<std::string, std::vector<std::string>> by_shard;
    for (auto it = wm->begin(); it != wm->end(); ++it) {
        if (!it->is_string())
            throw Error(index_path.string() + ": weight_map['" + it.key() + "'] should name a shard file");
        by_shard[it->get<std::string>()].push_back(it.key());
    }
    for (const auto& [shard, names] : by_shard) {
        const auto f = SafetensorsFile::open((index_path.parent_path() / shard).string());
        for (const auto& n : names)
            if (!f->contains(n))
                throw Error(index_path.string() + ": lists '" + n + "' in " + shard + ", but that shard has no such tensor");
        add_tensors(c, f);
    }
}

// Weights of one component folder. diffusers names them diffusion_pytorch_model.*, transformers
// model.*; a full-precision file is preferred over an fp16 variant, one file over shards.
void load_weights(ComponentFiles& c, const fs::path& dir) {
    const char* stems[] = {"diffusion_pytorch_model", "model"};
    for (const std::string variant : {"", ".fp16"}) {
        for (const std::string stem : stems) {
            const fs::path single = dir / (stem + variant + ".safetensors");
            if (fs::is_regular_file(single)) {
                add_tensors(c, SafetensorsFile::open(single.string()));
                return;
            }
        }
        for (const std::string stem : stems) {
            // diffusers spells the sharded fp16 index "X.safetensors.index.fp16.json"; some
            // uploads use "X.fp16.safetensors.index.json".
            for (const fs::path& index : {dir / (stem + ".safetensors.index" + variant + ".json"),
                                          dir / (stem + variant + ".safetensors.index.json")}) {
                if (fs::is_regular_file(index)) {
                    load_sharded(c, index);
                    return;
                }
            }
        }
    }
    for (const std::string stem : stems)
        for (const std::string variant : {"", ".fp16"})
            if (fs::is_regular_file(dir / (stem + variant + ".bin")))
                refuse_folder_pickle(dir / (stem + variant + ".bin"));
    throw Error(dir.string() + ": no weights found; expected diffusion_pytorch_model.safetensors or model.safetensors "
                               "(or a .fp16.safetensors variant, or a sharded .safetensors.index.json)");
}

// transformers saved CLIPTextModel with or without the "text_model." level; the pipeline uses one
// spelling. position_ids is a constant buffer (0..76) that older versions saved with the weights.
void normalise_text_encoder(ComponentFiles& c) {
    std::map<std::string, TensorView> out;
    for (auto& [name, view] : c.tensors) {
        const bool bare = starts_with(name, "embeddings.") || starts_with(name, "encoder.") ||
                          starts_with(name, "final_layer_norm.");
        const std::string n = bare ? "text_model." + name : name;
        if (n == "text_model.embeddings.position_ids") {
            c.ignored.push_back(name);
            continue;
        }
        TensorView v = view;
        v.name = n;
        if (!out.emplace(n, v).second)
            throw Error(c.files.front()->path() + ": the text encoder holds '" + n + "' both with and without the "
                        "text_model. prefix");
    }
    c.tensors = std::move(out);
}

ComponentFiles open_component(const fs::path& root, const std::string& name) {
    const fs::path dir = root / name;
    if (!fs::is_directory(dir))
        throw Error(root.string() + ": the diffusers folder has no " + name + "/ (expected " + name +
                    "/config.json and its weights)");
    return open_component_folder(dir.string(), name);
}

TokenizerFiles find_tokenizer(const fs::path& root) {
    TokenizerFiles t;
    const fs::path dir = root / "tokenizer";
    const bool vocab = fs::is_regular_file(dir / "vocab.json");
    const bool merges = fs::is_regular_file(dir / "merges.txt");
    if (vocab && merges) {
        t.vocab_json = (dir / "vocab.json").string();
        t.merges_txt = (dir / "merges.txt").string();
    }
    if (fs::is_regular_file(dir / "tokenizer.json"))
        t.tokenizer_json = (dir / "tokenizer.json").string();
    if (vocab != merges && t.tokenizer_json.empty())
        throw Error(dir.string() + ": has " + (vocab ? "vocab.json but no merges.txt" : "merges.txt but no vocab.json") +
                    "; a CLIP tokenizer needs both (or a tokenizer.json)");
    return t;
}

ModelFiles open_folder(const fs::path& root) {
    const fs::path index_path = root / "model_index.json";
    if (!fs::is_regular_file(index_path)) {
        std::string hint;
        for (const auto& e : fs::directory_iterator(root))
            if (e.is_regular_file() && (lower(e.path().extension().string()) == ".safetensors" ||
                                        is_pickle_extension(e.path().extension().string()))) {
                hint = "; it holds " + e.path().filename().string() + ": open that file instead";
                break;
            }
        throw Error(root.string() +
                    ": not a diffusers model folder: no model_index.json (expected model_index.json, text_encoder/, "
                    "tokenizer/, unet/, vae/, scheduler/)" + hint);
    }
    const auto index = read_json(index_path);
    const std::string cls = index.value("_class_name", "");
    if (cls.find("XL") != std::string::npos)
        throw Error(index_path.string() + ": this is an SDXL pipeline (" + cls +
                    "); SD Lens opens Stable Diffusion 1.x models only");

    ModelFiles m;
    m.path = root.string();
    m.layout = ModelLayout::DiffusersFolder;
    m.text_encoder = open_component(root, "text_encoder");
    normalise_text_encoder(m.text_encoder);
    m.unet = open_component(root, "unet");
    m.vae = open_component(root, "vae");
    const fs::path sched = root / "scheduler" / "scheduler_config.json";
    m.scheduler_config = fs::is_regular_file(sched) ? read_json(sched) : nlohmann::json::object();
    m.tokenizer = find_tokenizer(root);
    return m;
}

// Reads an integer config field, or fallback when absent; a value of the wrong type is an error
// naming the field, since later stages would misread it.
int64_t int_field(const ComponentFiles& c, const std::string& where, const std::string& key, int64_t fallback) {
    const auto it = c.config.find(key);
    if (it == c.config.end() || it->is_null())
        return fallback;
    if (!it->is_number_integer())
        throw Error(where + ": " + c.name + " config field '" + key + "' should be an integer, found " + it->dump());
    return it->get<int64_t>();
}

// The SD 1.x family check shared by both layouts (single-file configs are inferred from shapes).
void check_supported(const ModelFiles& m) {
    auto where = [&](const ComponentFiles& c) {
        return m.layout == ModelLayout::SingleFile ? m.path : (fs::path(m.path) / c.name / "config.json").string();
    };
    const int64_t in_ch = int_field(m.unet, where(m.unet), "in_channels", 4);
    if (in_ch == 9)
        throw Error(where(m.unet) + ": this is an inpainting U-Net (9 input channels: latents, mask, masked image); "
                                    "SD Lens supports text-to-image SD 1.x U-Nets with 4 input channels");
    if (in_ch != 4)
        throw Error(where(m.unet) + ": U-Net in_channels is " + std::to_string(in_ch) +
                    ", expected 4 (an SD 1.x text-to-image U-Net)");
    const int64_t ctx = int_field(m.unet, where(m.unet), "cross_attention_dim", 768);
    const int64_t hidden = int_field(m.text_encoder, where(m.text_encoder), "hidden_size", 768);
    if (ctx == 1024 || hidden == 1024)
        throw Error(where(ctx == 1024 ? m.unet : m.text_encoder) +
                    ": this is a Stable Diffusion 2.x model (1024-wide OpenCLIP text context); SD Lens opens "
                    "Stable Diffusion 1.x models (768-wide CLIP context)");
    if (m.unet.config.value("addition_embed_type", nlohmann::json()).is_string())
        throw Error(where(m.unet) + ": this U-Net has extra conditioning (addition_embed_type), as SDXL does; "
                                    "SD Lens opens Stable Diffusion 1.x models only");
    if (ctx != hidden)
        throw Error(where(m.unet) + ": U-Net cross_attention_dim is " + std::to_string(ctx) +
                    " but the text encoder's hidden_size is " + std::to_string(hidden) + "; they must match");
    const int64_t latent = int_field(m.vae, where(m.vae), "latent_channels", 4);
    if (latent != 4)
        throw Error(where(m.vae) + ": VAE latent_channels is " + std::to_string(latent) + ", expected 4 (SD 1.x)");
}

} // namespace

ComponentFiles open_component_folder(const std::string& dir, const std::string& name) {
    const fs::path config = fs::path(dir) / "config.json";
    if (!fs::is_regular_file(config))
        throw Error(dir + ": no config.json");
    ComponentFiles c;
    c.name = name;
    c.config = read_json(config);
    load_weights(c, dir);
    if (name == "vae")
        c.spelling = vae_spelling_name(normalise_vae_names(c));
    return c;
}

void refuse_if_pickle(const std::string& path) {
    const fs::path p(path);
    if (is_pickle_extension(p.extension().string()) || looks_like_pickle(p))
        refuse_pickle(path);
}

ModelFiles open_model_files(const std::string& path) {
    const fs::path p(path);
    std::error_code ec;
    const auto st = fs::status(p, ec);
    if (!fs::exists(st)) {
        // Only a name that is not on disk is looked up in the hub cache, so a local folder that
        // happens to be called like a repo ("models/sd15") still opens as itself.
        ModelFiles m = open_model_files(local_model_path(path));
        m.repo_id = parse_repo_id(path)->text();
        return m;
    }
    ModelFiles m;
    if (fs::is_directory(st)) {
        m = open_folder(p);
    } else if (p.filename() == "model_index.json") {
        m = open_folder(p.parent_path().empty() ? fs::path(".") : p.parent_path());
    } else {
        refuse_if_pickle(path);
        m = open_single_file(path);
    }
    check_supported(m);
    return m;
}

} // namespace sdl
