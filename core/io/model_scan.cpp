#include "core/io/model_scan.h"

#include "core/io/hf_cache.h"
#include "core/io/safetensors.h"
#include "core/util/error.h"

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <optional>
#include <set>

namespace sdl {

namespace fs = std::filesystem;

namespace {

bool starts_with(const std::string& s, const std::string& prefix) { return s.compare(0, prefix.size(), prefix) == 0; }

bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

std::string lower(std::string s) {
    std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    return s;
}

bool is_file(const fs::path& p) {
    std::error_code ec;
    return fs::is_regular_file(p, ec);
}

bool is_dir(const fs::path& p) {
    std::error_code ec;
    return fs::is_directory(p, ec);
}

std::vector<fs::path> entries(const fs::path& dir) {
    std::vector<fs::path> out;
    std::error_code ec;
    for (auto it = fs::directory_iterator(dir, ec); !ec && it != fs::directory_iterator(); it.increment(ec))
        out.push_back(it->path());
    std::sort(out.begin(), out.end());
    return out;
}

// A config that is absent or unreadable decides nothing; the caller lists it as missing.
std::optional<nlohmann::json> read_json(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    if (!in)
        return std::nullopt;
    const auto j = nlohmann::json::parse(in, nullptr, false);
    if (j.is_discarded() || !j.is_object())
        return std::nullopt;
    return j;
}

std::optional<int64_t> int_field(const std::optional<nlohmann::json>& config, const char* key) {
    if (!config)
        return std::nullopt;
    const auto it = config->find(key);
    if (it == config->end() || !it->is_number_integer())
        return std::nullopt;
    return it->get<int64_t>();
}

// Each file once: a hub snapshot's links resolve to blobs that several names may share.
uint64_t disk_size(const fs::path& root) {
    std::set<fs::path> seen;
    uint64_t total = 0;
    std::error_code ec;
    for (auto it = fs::recursive_directory_iterator(root, ec); !ec && it != fs::recursive_directory_iterator();
         it.increment(ec)) {
        std::error_code file_ec;
        if (!fs::is_regular_file(it->path(), file_ec))
            continue;
        const fs::path real = fs::canonical(it->path(), file_ec);
        const auto size = fs::file_size(it->path(), file_ec);
        if (!file_ec && seen.insert(real).second)
            total += size;
    }
    return total;
}

// The precision of the weights, not of what travels with them: a checkpoint converted to fp16
// often keeps its schedule (betas, alphas_cumprod) and EMA counters in fp32, a LoRA its alpha
// scalars.
void add_dtypes(const SafetensorsFile& f, std::set<DType>& floats) {
    static const char* const networks[] = {"model.diffusion_model.", "cond_stage_model.", "first_stage_model.",
                                           "conditioner."};
    auto in_network = [](const std::string& key) {
        return std::any_of(std::begin(networks), std::end(networks), [&](const char* p) { return starts_with(key, p); });
    };
    const bool checkpoint = std::any_of(f.tensors().begin(), f.tensors().end(),
                                        [&](const auto& kv) { return in_network(kv.first); });
    for (const auto& [name, v] : f.tensors())
        if ((v.dtype == DType::F32 || v.dtype == DType::F16 || v.dtype == DType::BF16) && !v.shape.empty() &&
            (!checkpoint || in_network(name)))
            floats.insert(v.dtype);
}

std::string precision_of(const std::set<DType>& floats) {
    if (floats.size() > 1)
        return "mixed";
    if (floats.empty())
        return "";
    switch (*floats.begin()) {
    case DType::F16: return "fp16";
    case DType::BF16: return "bf16";
    default: return "fp32";
    }
}

// The family of a diffusers pipeline, decided as model_files.cpp's check_supported would refuse it.
std::string pipeline_family(const std::string& cls, const std::optional<nlohmann::json>& unet,
                            const std::optional<nlohmann::json>& text_encoder) {
    const auto ctx = int_field(unet, "cross_attention_dim");
    const auto in = int_field(unet, "in_channels");
    const bool extra_conditioning = unet && unet->value("addition_embed_type", nlohmann::json()).is_string();
    if (contains(cls, "XL") || ctx == 2048 || extra_conditioning)
        return "sdxl";
    if (!unet || !starts_with(cls, "StableDiffusion"))
        return "unknown";
    if (ctx == 1024 || int_field(text_encoder, "hidden_size") == 1024)
        return "sd2";
    if (in == 9)
        return "sd1-inpainting";
    return in.value_or(4) == 4 ? "sd1" : "unknown";
}

// Component weights in the order the loader prefers them (core/io/model_files.cpp load_weights):
// one file, then shards, full precision before the fp16 variant.
std::vector<fs::path> weight_files(const fs::path& dir, bool& pickle_only) {
    pickle_only = false;
    for (const std::string variant : {"", ".fp16"}) {
        for (const std::string stem : {"diffusion_pytorch_model", "model"})
            if (is_file(dir / (stem + variant + ".safetensors")))
                return {dir / (stem + variant + ".safetensors")};
        for (const std::string stem : {"diffusion_pytorch_model", "model"})
            for (const fs::path& index : {dir / (stem + ".safetensors.index" + variant + ".json"),
                                          dir / (stem + variant + ".safetensors.index.json")}) {
                const auto j = read_json(index);
                if (!j)
                    continue;
                std::set<std::string> shards;
                for (const auto& [key, shard] : j->value("weight_map", nlohmann::json::object()).items())
                    if (shard.is_string())
                        shards.insert(shard.get<std::string>());
                std::vector<fs::path> out;
                for (const auto& s : shards)
                    out.push_back(dir / s);
                return out;
            }
    }
    for (const std::string name : {"diffusion_pytorch_model.bin", "model.bin", "diffusion_pytorch_model.fp16.bin",
                                   "model.fp16.bin"})
        pickle_only = pickle_only || is_file(dir / name);
    return {};
}

void read_headers(const std::vector<fs::path>& files, const std::string& what, std::set<DType>& floats,
                  std::vector<std::string>& missing) {
    for (const auto& f : files) {
        if (!is_file(f)) {
            missing.push_back(what + " shard " + f.filename().string());
            continue;
        }
        try {
            add_dtypes(*SafetensorsFile::open(f.string()), floats);
        } catch (const Error& e) {
            missing.push_back(what + " readable (" + e.what() + ")");
        }
    }
}

std::string broken_link_text(const BrokenLink& b) {
    return b.file + " (broken link to " + b.target + ": interrupted download)";
}

FoundModel examine_diffusers(const fs::path& root, const std::string& layout) {
    FoundModel m;
    m.path = root.string();
    m.layout = layout;
    m.size_bytes = disk_size(root);
    for (const auto& b : broken_model_links(root.string()))
        m.missing.push_back(broken_link_text(b));
    const auto index = read_json(root / "model_index.json");
    if (!index)
        m.missing.push_back("model_index.json (unreadable)");
    const auto unet = read_json(root / "unet" / "config.json");
    const auto text_encoder = read_json(root / "text_encoder" / "config.json");
    m.family = pipeline_family(index ? index->value("_class_name", "") : "", unet, text_encoder);

    // The components model_index.json names; every Stable Diffusion pipeline needs the three
    // networks whatever its index says.
    const bool sd = m.family != "unknown";
    auto listed = [&](const char* component) {
        if (!index)
            return true;
        const auto it = index->find(component);
        return it != index->end() && it->is_array() && !it->empty() && !it->front().is_null();
    };
    std::set<DType> floats;
    for (const char* component : {"text_encoder", "unet", "vae"}) {
        if (!sd && !listed(component))
            continue;
        const fs::path dir = root / component;
        if (!read_json(dir / "config.json"))
            m.missing.push_back(std::string(component) + "/config.json");
        bool pickle_only = false;
        const auto files = weight_files(dir, pickle_only);
        const std::string what = std::string(component) + " weights";
        if (files.empty())
            m.missing.push_back(pickle_only ? what + " as safetensors (only a .bin pickle)" : what);
        read_headers(files, what, floats, m.missing);
    }
    if (listed("tokenizer")) {
        const fs::path dir = root / "tokenizer";
        if (!(is_file(dir / "vocab.json") && is_file(dir / "merges.txt")) && !is_file(dir / "tokenizer.json"))
            m.missing.push_back("tokenizer/vocab.json and merges.txt");
    }
    if (listed("scheduler") && !read_json(root / "scheduler" / "scheduler_config.json"))
        m.missing.push_back("scheduler/scheduler_config.json");
    m.precision = precision_of(floats);
    m.complete = m.family != "unknown" && m.missing.empty();
    return m;
}

// A single file's family from its key names alone (shapes only to tell SD 1.x from 2.x where the
// text encoder is absent, and the inpainting U-Net's 9 input channels).
std::string file_family(const SafetensorsFile& f, std::vector<std::string>& missing) {
    bool unet = false, clip = false, open_clip = false, sdxl = false, vae = false, lora = false;
    bool only_vae = true, only_text = true, any_decoder = false;
    for (const auto& [key, v] : f.tensors()) {
        unet = unet || starts_with(key, "model.diffusion_model.");
        clip = clip || starts_with(key, "cond_stage_model.transformer.");
        open_clip = open_clip || starts_with(key, "cond_stage_model.model.");
        sdxl = sdxl || starts_with(key, "conditioner.embedders.");
        vae = vae || starts_with(key, "first_stage_model.");
        lora = lora || starts_with(key, "lora_") || contains(key, ".lora_down.") || contains(key, ".lora_up.") ||
               contains(key, ".lora_A.") || contains(key, ".lora_B.");
        const std::string k = starts_with(key, "first_stage_model.") ? key.substr(18) : key;
        any_decoder = any_decoder || starts_with(k, "decoder.");
        only_vae = only_vae && (starts_with(k, "encoder.") || starts_with(k, "decoder.") ||
                                starts_with(k, "quant_conv.") || starts_with(k, "post_quant_conv."));
        only_text = only_text && (starts_with(key, "text_model.") || starts_with(key, "cond_stage_model.transformer.") ||
                                  starts_with(key, "embeddings.") || starts_with(key, "encoder.layers.") ||
                                  starts_with(key, "final_layer_norm."));
    }
    if (f.tensors().empty())
        return "unknown";
    if (lora)
        return "lora";
    if (sdxl)
        return "sdxl";
    if (unet) {
        auto dim = [&](const std::string& key, size_t i) -> int64_t {
            const auto it = f.tensors().find("model.diffusion_model." + key);
            return it != f.tensors().end() && it->second.shape.size() > i ? it->second.shape[i] : 0;
        };
        const int64_t ctx = dim("input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight", 1);
        if (ctx == 2048)
            return "sdxl";
        const bool sd2 = open_clip || ctx == 1024;
        if (!clip && !open_clip)
            missing.push_back("text encoder weights (cond_stage_model.*)");
        if (!vae)
            missing.push_back("vae weights (first_stage_model.*)");
        if (sd2)
            return "sd2";
        return dim("input_blocks.0.0.weight", 1) == 9 ? "sd1-inpainting" : "sd1";
    }
    if (open_clip)
        return "sd2";
    if (only_vae && any_decoder)
        return "vae";
    if (only_text)
        return "text-encoder";
    return "unknown";
}

FoundModel examine_file(const fs::path& path, const std::string& layout) {
    FoundModel m;
    m.path = path.string();
    m.layout = layout;
    std::error_code ec;
    m.size_bytes = fs::file_size(path, ec);
    if (lower(path.extension().string()) == ".ckpt") {
        m.family = "pickle";
        return m;
    }
    try {
        const auto f = SafetensorsFile::open(path.string());
        m.family = file_family(*f, m.missing);
        std::set<DType> floats;
        add_dtypes(*f, floats);
        m.precision = precision_of(floats);
    } catch (const Error& e) {
        m.family = "unknown";
        m.missing.push_back(std::string("a readable safetensors header (") + e.what() + ")");
    }
    m.complete = m.family != "unknown" && m.missing.empty();
    return m;
}

bool is_model_file(const fs::path& p) {
    const std::string ext = lower(p.extension().string());
    return (ext == ".safetensors" || ext == ".ckpt") && is_file(p);
}

void scan_dir(const fs::path& dir, bool descend, std::vector<FoundModel>& out) {
    for (const auto& p : entries(dir)) {
        if (is_dir(p)) {
            if (is_file(p / "model_index.json"))
                out.push_back(examine_diffusers(p, "diffusers"));
            else if (descend)
                scan_dir(p, false, out);
        } else if (is_model_file(p)) {
            out.push_back(examine_file(p, "single-file"));
        }
    }
}

// The commit refs/main names, or else the newest snapshot: an entry --model can open either way.
std::optional<HubSnapshot> hub_snapshot(const RepoId& repo, const HubCacheDir& cache) {
    try {
        return find_hub_snapshot(repo, cache);
    } catch (const Error&) {
    }
    const fs::path repo_dir = fs::path(cache.path) / repo.folder_name();
    std::optional<HubSnapshot> newest;
    fs::file_time_type newest_time;
    for (const auto& p : entries(repo_dir / "snapshots")) {
        std::error_code ec;
        const auto t = fs::last_write_time(p, ec);
        if (ec || !is_dir(p) || (newest && t <= newest_time))
            continue;
        RepoId at = repo;
        at.revision = p.filename().string();
        newest = HubSnapshot{at, repo_dir.string(), at.revision, p.string()};
        newest_time = t;
    }
    return newest;
}

// A cached repo that is not a whole diffusers pipeline: a lone VAE or text encoder, or checkpoint
// files. Its largest safetensors file speaks for it and is the path to open.
FoundModel examine_hub_files(const HubSnapshot& s) {
    FoundModel m;
    m.path = s.path;
    m.layout = "hub-cache files";
    m.family = "unknown";
    const fs::path root(s.path);
    const auto config = read_json(root / "config.json");
    const std::string cls = config ? config->value("_class_name", "") : "";
    const auto arch = config ? config->value("architectures", nlohmann::json::array()) : nlohmann::json::array();
    fs::path largest;
    uint64_t largest_size = 0;
    for (const auto& p : entries(root)) {
        std::error_code ec;
        if (fs::is_symlink(fs::symlink_status(p, ec)) && !fs::exists(fs::status(p, ec)))
            m.missing.push_back(broken_link_text({p.filename().string(), fs::read_symlink(p, ec).string()}));
        const auto size = fs::file_size(p, ec);
        if (!ec && lower(p.extension().string()) == ".safetensors" && size > largest_size) {
            largest = p;
            largest_size = size;
        }
    }
    if (!largest.empty()) {
        FoundModel f = examine_file(largest, m.layout);
        m.path = f.path;
        m.family = f.family;
        m.precision = f.precision;
        m.missing.insert(m.missing.end(), f.missing.begin(), f.missing.end());
    }
    if (cls == "AutoencoderKL")
        m.family = "vae";
    else if (arch.is_array() && !arch.empty() && arch.front().is_string() &&
             starts_with(arch.front().get<std::string>(), "CLIPTextModel"))
        m.family = "text-encoder";
    m.complete = m.family != "unknown" && m.missing.empty() && !largest.empty();
    return m;
}

void scan_hub(std::vector<FoundModel>& out) {
    HubCacheDir cache;
    try {
        cache = hub_cache_dir();
    } catch (const Error&) {
        return;  // no home and no cache variable: there is no cache to list
    }
    for (const auto& p : entries(cache.path)) {
        const std::string folder = p.filename().string();
        const size_t sep = folder.find("--", 8);
        if (!starts_with(folder, "models--") || sep == std::string::npos || !is_dir(p))
            continue;
        const auto repo = parse_repo_id(folder.substr(8, sep - 8) + "/" + folder.substr(sep + 2));
        if (!repo)
            continue;
        const auto snapshot = hub_snapshot(*repo, cache);
        FoundModel m;
        if (!snapshot) {
            m.path = p.string();
            m.layout = "hub-cache files";
            m.family = "unknown";
            m.missing.push_back("a snapshot (refs/main names none that is cached)");
        } else {
            std::error_code ec;
            const fs::path index = fs::path(snapshot->path) / "model_index.json";
            const bool pipeline = fs::is_symlink(fs::symlink_status(index, ec)) || is_file(index);
            m = pipeline ? examine_diffusers(snapshot->path, "hub-cache diffusers") : examine_hub_files(*snapshot);
            m.size_bytes = disk_size(snapshot->path);
        }
        m.id = snapshot ? snapshot->repo.text() : repo->text();
        out.push_back(std::move(m));
    }
}

} // namespace

std::vector<FoundModel> find_models(const std::vector<std::string>& dirs, bool hub_cache) {
    std::vector<FoundModel> out;
    if (hub_cache)
        scan_hub(out);
    for (const auto& d : dirs) {
        if (is_model_file(d)) {
            out.push_back(examine_file(d, "single-file"));
            continue;
        }
        if (!is_dir(d))
            throw Error(d + ": no such folder to look for models in");
        if (is_file(fs::path(d) / "model_index.json"))
            out.push_back(examine_diffusers(d, "diffusers"));
        else
            scan_dir(d, true, out);
    }
    return out;
}

nlohmann::json to_json(const FoundModel& m) {
    nlohmann::json j = {{"path", m.path},           {"layout", m.layout},       {"family", m.family},
                        {"size_bytes", m.size_bytes}, {"precision", m.precision}, {"complete", m.complete},
                        {"missing", m.missing}};
    if (!m.id.empty())
        j["id"] = m.id;
    return j;
}

} // namespace sdl
