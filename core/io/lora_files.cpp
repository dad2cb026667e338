#include "core/io/lora_files.h"

#include "core/io/model_files.h"
#include "core/io/single_file.h"
#include "core/util/error.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <map>
#include <set>

namespace sdl {

namespace {

bool starts_with(const std::string& s, const std::string& prefix) { return s.compare(0, prefix.size(), prefix) == 0; }

bool ends_with(const std::string& s, const std::string& suffix) {
    return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

bool contains(const std::string& s, const char* part) { return s.find(part) != std::string::npos; }

// ---- the name table ---------------------------------------------------------------------------

enum class Role { Down, Up, Alpha };
enum class Style { Kohya, Peft, Processor };

// How a key ends says which spelling it is and which tensor of the pair it holds. The processor
// spellings keep the projection in the suffix ("to_q_lora"), so their module is rebuilt below.
struct Suffix {
    const char* text;
    Style style;
    Role role;
};
constexpr Suffix kSuffixes[] = {
    {".lora_down.weight", Style::Kohya, Role::Down},
    {".lora_up.weight", Style::Kohya, Role::Up},
    {".alpha", Style::Kohya, Role::Alpha},
    {".lora_A.weight", Style::Peft, Role::Down},
    {".lora_B.weight", Style::Peft, Role::Up},
    {".lora_linear_layer.down.weight", Style::Processor, Role::Down},
    {".lora_linear_layer.up.weight", Style::Processor, Role::Up},
    {"_lora.down.weight", Style::Processor, Role::Down},
    {"_lora.up.weight", Style::Processor, Role::Up},
    {".lora.down.weight", Style::Processor, Role::Down},
    {".lora.up.weight", Style::Processor, Role::Up},
};

// diffusers' attention processors named each projection's LoRA after it.
constexpr std::pair<const char*, const char*> kProcessorProjections[] = {
    {".processor.to_q", ".to_q"}, {".processor.to_k", ".to_k"}, {".processor.to_v", ".to_v"},
    {".processor.to_out", ".to_out.0"}};

// kohya joins the module path with '_', which module names also contain; these are the parts that
// can occur in SD 1.x's paths, longest first wins ("conv_shortcut" over "conv").
const std::vector<std::string> kUnetParts = {
    "down_blocks", "up_blocks", "mid_block", "attentions", "resnets", "transformer_blocks", "attn1", "attn2",
    "to_q", "to_k", "to_v", "to_out", "ff", "net", "proj", "proj_in", "proj_out", "norm", "norm1", "norm2",
    "norm3", "conv1", "conv2", "conv_shortcut", "time_emb_proj", "downsamplers", "upsamplers", "conv", "conv_in",
    "conv_out", "conv_norm_out", "time_embedding", "linear_1", "linear_2"};
const std::vector<std::string> kOriginalUnetParts = {
    "input_blocks", "middle_block", "output_blocks", "time_embed", "out", "transformer_blocks", "attn1", "attn2",
    "to_q", "to_k", "to_v", "to_out", "ff", "net", "proj", "proj_in", "proj_out", "norm", "norm1", "norm2", "norm3",
    "in_layers", "out_layers", "emb_layers", "skip_connection", "op", "conv"};
const std::vector<std::string> kTextParts = {"text_model", "encoder", "layers", "self_attn", "q_proj", "k_proj",
                                             "v_proj", "out_proj", "mlp", "fc1", "fc2"};

// "down_blocks_0_attentions_0_proj_in" -> "down_blocks.0.attentions.0.proj_in"; "" when some part is
// neither a number nor one of parts.
std::string dotted(const std::string& s, const std::vector<std::string>& parts) {
    std::string out;
    size_t i = 0;
    while (i < s.size()) {
        const auto ends_part = [&](size_t n) { return i + n == s.size() || s[i + n] == '_'; };
        size_t best = 0;
        size_t digits = 0;
        while (i + digits < s.size() && std::isdigit(static_cast<unsigned char>(s[i + digits])))
            ++digits;
        if (digits > 0 && ends_part(digits))
            best = digits;
        for (const auto& p : parts)
            if (p.size() > best && s.compare(i, p.size(), p) == 0 && ends_part(p.size()))
                best = p.size();
        if (best == 0)
            return {};
        out += (out.empty() ? "" : ".") + s.substr(i, best);
        i += best;
        if (i < s.size() && ++i == s.size())
            return {};  // a trailing '_'
    }
    return out;
}

struct Place {
    LoraNetwork network;
    std::string module;
    bool original = false;  // kohya in the original (CompVis) U-Net names
};

// kohya: "lora_unet_..." / "lora_te_..." without the suffix. False when the table cannot place it.
bool place_kohya(const std::string& name, Place& out) {
    static const std::string unet = "lora_unet_", te = "lora_te_";
    if (starts_with(name, te)) {
        std::string path = dotted(name.substr(te.size()), kTextParts);
        if (path.empty())
            return false;
        out = {LoraNetwork::TextEncoder, starts_with(path, "text_model.") ? path : "text_model." + path};
        return true;
    }
    if (!starts_with(name, unet))
        return false;
    const std::string rest = name.substr(unet.size());
    for (const char* head : {"input_blocks_", "middle_block_", "output_blocks_", "time_embed_", "out_"}) {
        if (!starts_with(rest, head))
            continue;
        const std::string path = dotted(rest, kOriginalUnetParts);
        if (path.empty())
            return false;
        // The single-file table knows how CompVis' flat block numbers nest; SD 1.x has two layers per block.
        try {
            const SingleFileName n =
                translate_single_file_key("model.diffusion_model." + path + ".weight", SingleFileGeometry{});
            if (n.part != SingleFilePart::Unet || !ends_with(n.name, ".weight"))
                return false;
            out = {LoraNetwork::Unet, n.name.substr(0, n.name.size() - 7), true};
            return true;
        } catch (const Error&) {
            return false;
        }
    }
    const std::string path = dotted(rest, kUnetParts);
    if (path.empty())
        return false;
    out = {LoraNetwork::Unet, path};
    return true;
}

// peft and the processor spellings: a dotted path with the network as its first part ("unet.",
// "text_encoder."; none in the first processor files, which were U-Net only; "base_model.model." in
// files peft wrote itself).
bool place_dotted(std::string path, Style style, Place& out) {
    if (style == Style::Processor)
        for (const auto& [from, to] : kProcessorProjections)
            if (ends_with(path, from)) {
                path = path.substr(0, path.size() - std::strlen(from)) + to;
                break;
            }
    if (contains(path, ".processor."))
        return false;
    for (const char* prefix : {"unet.", "text_encoder.", "base_model.model."})
        if (starts_with(path, prefix)) {
            path = path.substr(std::strlen(prefix));
            break;
        }
    if (starts_with(path, "text_model.") || starts_with(path, "encoder.layers.")) {
        out = {LoraNetwork::TextEncoder, starts_with(path, "text_model.") ? path : "text_model." + path};
        return true;
    }
    static const char* kUnetHeads[] = {"down_blocks.", "mid_block.", "up_blocks.", "conv_in", "conv_out",
                                       "time_embedding."};
    for (const char* head : kUnetHeads)
        if (starts_with(path, head)) {
            out = {LoraNetwork::Unet, path};
            return true;
        }
    return false;
}

// ---- what is refused, by name -----------------------------------------------------------------

// A key that shows the file is a network SD Lens does not apply, or a LoRA for another family.
void refuse_foreign(const std::string& path, const std::string& key) {
    const auto refuse = [&](const std::string& what) {
        throw Error(path + ": " + what + " (key '" + key + "'); SD Lens applies plain LoRAs for SD 1.x " +
                    "(lora_down/lora_up or lora_A/lora_B pairs)");
    };
    if (contains(key, "hada_w") || contains(key, "hada_t"))
        refuse("this is a LyCORIS LoHa network, which SD Lens does not apply");
    if (contains(key, "lokr_w") || contains(key, "lokr_t"))
        refuse("this is a LyCORIS LoKr network, which SD Lens does not apply");
    if (ends_with(key, ".lora_mid.weight"))
        refuse("this is a LyCORIS LoCon with a Tucker decomposition (lora_mid), which SD Lens does not apply");
    if (contains(key, "dora_scale") || contains(key, "lora_magnitude_vector"))
        refuse("this is a DoRA (weight-decomposed LoRA), which SD Lens does not apply");
    if (ends_with(key, ".on_input"))
        refuse("this is an (IA)^3 network, which SD Lens does not apply");
    if (starts_with(key, "lora_te1_") || starts_with(key, "lora_te2_") || starts_with(key, "text_encoder_2."))
        refuse("this is an SDXL LoRA (it has keys for SDXL's second text encoder)");
}

// ---- tensors ----------------------------------------------------------------------------------

std::string shape_text(const std::vector<int64_t>& shape) {
    std::string s = "[";
    for (size_t i = 0; i < shape.size(); ++i)
        s += (i ? ", " : "") + std::to_string(shape[i]);
    return s + "]";
}

float half_to_float(uint16_t h) {
    const int exponent = (h >> 10) & 0x1f;
    const int mantissa = h & 0x3ff;
    const float sign = (h & 0x8000) ? -1.0f : 1.0f;
    if (exponent == 0)
        return sign * std::ldexp(static_cast<float>(mantissa), -24);
    if (exponent == 31)
        return mantissa ? NAN : sign * INFINITY;
    return sign * std::ldexp(static_cast<float>(mantissa | 0x400), exponent - 25);
}

double scalar_value(const TensorView& v) {
    switch (v.dtype) {
    case DType::F32: {
        float f;
        std::memcpy(&f, v.data, 4);
        return f;
    }
    case DType::F16: {
        uint16_t h;
        std::memcpy(&h, v.data, 2);
        return half_to_float(h);
    }
    case DType::BF16: {
        uint16_t b;
        std::memcpy(&b, v.data, 2);
        const uint32_t bits = static_cast<uint32_t>(b) << 16;
        float f;
        std::memcpy(&f, &bits, 4);
        return f;
    }
    case DType::I64: {
        int64_t i;
        std::memcpy(&i, v.data, 8);
        return static_cast<double>(i);
    }
    case DType::I32: {
        int32_t i;
        std::memcpy(&i, v.data, 4);
        return i;
    }
    }
    return NAN;
}

// On the stored bits: an all-ones exponent is NaN or Inf in every float format. Index of the first, or -1.
int64_t first_non_finite(const TensorView& v) {
    const int64_t n = v.numel();
    if (v.dtype == DType::F32) {
        for (int64_t i = 0; i < n; ++i) {
            uint32_t x;
            std::memcpy(&x, v.data + 4 * i, 4);
            if ((x & 0x7f800000u) == 0x7f800000u)
                return i;
        }
    } else {
        const uint16_t mask = v.dtype == DType::F16 ? 0x7c00 : 0x7f80;
        for (int64_t i = 0; i < n; ++i) {
            uint16_t x;
            std::memcpy(&x, v.data + 2 * i, 2);
            if ((x & mask) == mask)
                return i;
        }
    }
    return -1;
}

void check_weight(const std::string& path, const TensorView& v) {
    if (v.dtype != DType::F32 && v.dtype != DType::F16 && v.dtype != DType::BF16)
        throw Error(path + ": '" + v.name + "' is " + dtype_name(v.dtype) + "; a LoRA weight is F32, F16 or BF16");
    if (v.shape.size() != 2 && v.shape.size() != 4)
        throw Error(path + ": '" + v.name + "' has shape " + shape_text(v.shape) +
                    "; a LoRA weight is [rows, columns] or a convolution's [out, in, kh, kw]");
    if (v.numel() == 0)
        throw Error(path + ": '" + v.name + "' is empty (shape " + shape_text(v.shape) + ")");
    const int64_t bad = first_non_finite(v);
    if (bad >= 0)
        throw Error(path + ": '" + v.name + "' holds NaN or Inf (element " + std::to_string(bad) +
                    "); the LoRA is damaged");
}

// ---- alpha from metadata ----------------------------------------------------------------------

// peft's LoraConfig as diffusers stores it in "lora_adapter_metadata": one config, or one per network,
// nested ({"unet": {...}}) or flattened ({"unet.lora_alpha": 8, ...}).
class AdapterMetadata {
public:
    AdapterMetadata(const std::string& path, const std::map<std::string, std::string>& metadata) {
        const auto it = metadata.find("lora_adapter_metadata");
        if (it == metadata.end())
            return;
        json_ = nlohmann::json::parse(it->second, nullptr, false);
        if (!json_.is_object())
            throw Error(path + ": the metadata 'lora_adapter_metadata' is not a JSON object; expected peft's "
                               "LoraConfig ({\"r\": ..., \"lora_alpha\": ...})");
        for (const char* network : {"unet", "text_encoder"})
            if (truthy(path, network, "use_dora"))
                throw Error(path + ": this is a DoRA (lora_adapter_metadata has use_dora for the " +
                            std::string(network) + "), which SD Lens does not apply");
    }

    // The alpha of one layer (alpha_pattern first), or negative when the metadata gives none.
    double alpha(const std::string& path, LoraNetwork n, const std::string& module) const {
        const char* network = lora_network_name(n);
        const nlohmann::json* pattern = field(network, "alpha_pattern");
        if (pattern && pattern->is_object())
            for (const auto& [name, value] : pattern->items())
                if ((module == name || ends_with(module, "." + name)) && value.is_number())
                    return value.get<double>();
        const nlohmann::json* alpha = field(network, "lora_alpha");
        if (!alpha)
            return -1;
        if (!alpha->is_number() || !std::isfinite(alpha->get<double>()))
            throw Error(path + ": lora_adapter_metadata's lora_alpha for the " + network + " is " + alpha->dump() +
                        "; expected a number");
        return alpha->get<double>();
    }

    bool rslora(const std::string& path, LoraNetwork n) const { return truthy(path, lora_network_name(n), "use_rslora"); }

private:
    const nlohmann::json* field(const std::string& network, const std::string& name) const {
        if (!json_.is_object())
            return nullptr;
        const auto nested = json_.find(network);
        if (nested != json_.end() && nested->is_object()) {
            const auto it = nested->find(name);
            return it == nested->end() ? nullptr : &*it;
        }
        for (const std::string& key : {network + "." + name, name}) {
            const auto it = json_.find(key);
            if (it != json_.end())
                return &*it;
        }
        return nullptr;
    }

    bool truthy(const std::string& path, const std::string& network, const std::string& name) const {
        const nlohmann::json* v = field(network, name);
        if (!v || v->is_null())
            return false;
        if (!v->is_boolean())
            throw Error(path + ": lora_adapter_metadata's " + name + " is " + v->dump() + "; expected true or false");
        return v->get<bool>();
    }

    nlohmann::json json_;
};

struct Pending {
    Place place;
    Style style;
    const TensorView* down = nullptr;
    const TensorView* up = nullptr;
    const TensorView* alpha = nullptr;
};

std::string listed(const std::vector<std::string>& keys) {
    constexpr size_t kShown = 3;
    std::string s;
    for (size_t i = 0; i < keys.size() && i < kShown; ++i)
        s += std::string(i ? ", " : "") + "'" + keys[i] + "'";
    if (keys.size() > kShown)
        s += " and " + std::to_string(keys.size() - kShown) + " more";
    return s;
}

} // namespace

const char* lora_network_name(LoraNetwork n) { return n == LoraNetwork::TextEncoder ? "text_encoder" : "unet"; }

bool is_lora_file(const SafetensorsFile& f) {
    static const char* kMarks[] = {"lora_down", "lora_up", "lora_A.", "lora_B.", "_lora.down", ".lora.down", "lora_linear_layer",
                                   "hada_w", "lokr_w", "dora_scale", "lora_te1_", "lora_te2_"};
    for (const auto& [key, v] : f.tensors())
        for (const char* m : kMarks)
            if (contains(key, m))
                return true;
    return false;
}

std::string unet_level(const std::string& module) {
    for (const auto& [head, label] : {std::pair<std::string, std::string>{"down_blocks.", "down "},
                                      std::pair<std::string, std::string>{"up_blocks.", "up "}})
        if (starts_with(module, head)) {
            const size_t dot = module.find('.', head.size());
            return label + module.substr(head.size(), dot == std::string::npos ? std::string::npos : dot - head.size());
        }
    return starts_with(module, "mid_block.") ? "mid" : "";
}

LoraFile read_lora_file(const std::string& path) {
    refuse_if_pickle(path);
    LoraFile out;
    out.path = path;
    out.name = std::filesystem::path(path).stem().string();
    out.file = SafetensorsFile::open(path);
    const auto& tensors = out.file->tensors();
    if (tensors.empty())
        throw Error(path + ": the file holds no tensors; a LoRA holds lora_down/lora_up (or lora_A/lora_B) pairs");
    for (const auto& [key, v] : tensors)
        refuse_foreign(path, key);
    if (!is_lora_file(*out.file)) {
        std::vector<std::string> keys;
        for (const auto& [key, v] : tensors)
            keys.push_back(key);
        const bool model = std::any_of(keys.begin(), keys.end(), [](const std::string& k) {
            return starts_with(k, "model.diffusion_model.") || starts_with(k, "down_blocks.") ||
                   starts_with(k, "first_stage_model.") || starts_with(k, "text_model.");
        });
        throw Error(path + (model ? ": this is a model's weights, not a LoRA" : ": not a LoRA") +
                    " (no key ends in .lora_down.weight, .lora_A.weight or .processor.to_q_lora.down.weight; its keys "
                    "include " + listed(keys) + ")");
    }
    const AdapterMetadata metadata(path, out.file->metadata());

    // Group the tensors by layer; a key the table cannot place is kept for the error.
    std::map<std::string, Pending> layers;  // by the file's layer name
    std::vector<std::string> unplaced;
    std::set<Style> styles;
    bool original = false;
    for (const auto& [key, view] : tensors) {
        const Suffix* suffix = nullptr;
        for (const Suffix& s : kSuffixes)
            if (ends_with(key, s.text)) {
                suffix = &s;
                break;
            }
        Place place;
        const std::string name = suffix ? key.substr(0, key.size() - std::strlen(suffix->text)) : std::string();
        const bool placed = suffix && (suffix->style == Style::Kohya ? place_kohya(name, place)
                                                                      : place_dotted(name, suffix->style, place));
        if (!placed) {
            unplaced.push_back(key);
            continue;
        }
        Pending& p = layers[name];
        p.place = place;
        p.style = suffix->style;
        const TensorView*& slot = suffix->role == Role::Down ? p.down : suffix->role == Role::Up ? p.up : p.alpha;
        slot = &view;
        styles.insert(suffix->style);
        original = original || place.original;
    }
    if (!unplaced.empty())
        throw Error(path + ": " + std::to_string(unplaced.size()) + " of its " + std::to_string(tensors.size()) +
                    " keys match no SD 1.x layer: " + listed(unplaced) +
                    " (a LoRA for another model family, such as SDXL or SD 2.x, or another network type)");
    if (styles.size() > 1)
        throw Error(path + ": the file mixes the kohya, peft and diffusers-processor spellings; expected one");

    std::map<std::pair<LoraNetwork, std::string>, std::string> seen;  // module -> the layer name that holds it
    for (const auto& [layer, p] : layers) {
        if (!p.down || !p.up) {
            const TensorView* any = p.down ? p.down : p.up ? p.up : p.alpha;
            throw Error(path + ": '" + any->name + "' has no " + (p.down ? "up" : "down") +
                        " partner; each LoRA layer needs both matrices");
        }
        check_weight(path, *p.down);
        check_weight(path, *p.up);
        const auto& d = p.down->shape;
        const auto& u = p.up->shape;
        if (d[0] != u[1])
            throw Error(path + ": rank mismatch in '" + layer + "': the down matrix " + shape_text(d) + " has rank " +
                        std::to_string(d[0]) + ", the up matrix " + shape_text(u) + " has rank " +
                        std::to_string(u[1]));
        if (u.size() == 4 && (u[2] != 1 || u[3] != 1))
            throw Error(path + ": '" + p.up->name + "' is " + shape_text(u) + "; an up matrix is [out, rank] or " +
                        "[out, rank, 1, 1]");
        if (d.size() != u.size())
            throw Error(path + ": '" + layer + "' pairs a " + std::to_string(d.size()) + "-D down matrix " +
                        shape_text(d) + " with a " + std::to_string(u.size()) + "-D up matrix " + shape_text(u));
        LoraLayerFile l;
        l.network = p.place.network;
        l.module = p.place.module;
        l.key = layer;
        l.down = *p.down;
        l.up = *p.up;
        l.rank = d[0];
        l.alpha = static_cast<double>(l.rank);
        if (p.alpha) {
            if (p.alpha->numel() != 1)
                throw Error(path + ": '" + p.alpha->name + "' has shape " + shape_text(p.alpha->shape) +
                            "; alpha is one number");
            l.alpha = scalar_value(*p.alpha);
            if (!std::isfinite(l.alpha))
                throw Error(path + ": '" + p.alpha->name + "' is not a finite number");
        } else if (p.style != Style::Kohya) {
            const double a = metadata.alpha(path, l.network, l.module);
            if (a >= 0)
                l.alpha = a;
        }
        const bool rs = p.style != Style::Kohya && metadata.rslora(path, l.network);
        l.scale = l.alpha / (rs ? std::sqrt(static_cast<double>(l.rank)) : static_cast<double>(l.rank));
        const auto [it, fresh] = seen.emplace(std::make_pair(l.network, l.module), layer);
        if (!fresh)
            throw Error(path + ": '" + layer + "' and '" + it->second + "' both change " +
                        lora_network_name(l.network) + " " + l.module);
        out.layers.push_back(std::move(l));
    }
    std::sort(out.layers.begin(), out.layers.end(), [](const LoraLayerFile& a, const LoraLayerFile& b) {
        return std::make_pair(a.network, a.module) < std::make_pair(b.network, b.module);
    });
    const Style style = *styles.begin();
    out.format = style == Style::Kohya ? (original ? "kohya (original names)" : "kohya")
                 : style == Style::Peft ? "peft"
                                        : "diffusers (attention processors)";
    return out;
}

} // namespace sdl
