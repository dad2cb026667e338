#include "core/io/single_file.h"

#include "core/util/error.h"

#include <algorithm>
#include <cctype>
#include <set>

namespace sdl {

namespace {

const std::string kUnetPrefix = "model.diffusion_model.";
const std::string kVaePrefix = "first_stage_model.";
const std::string kTextPrefix = "cond_stage_model.transformer.";

bool starts_with(const std::string& s, const std::string& prefix) { return s.compare(0, prefix.size(), prefix) == 0; }

std::vector<std::string> split(const std::string& s) {
    std::vector<std::string> parts;
    size_t start = 0;
    for (size_t dot; (dot = s.find('.', start)) != std::string::npos; start = dot + 1)
        parts.push_back(s.substr(start, dot - start));
    parts.push_back(s.substr(start));
    return parts;
}

std::string join(const std::vector<std::string>& parts, size_t from) {
    std::string s;
    for (size_t i = from; i < parts.size(); ++i)
        s += (s.empty() ? "" : ".") + parts[i];
    return s;
}

// A block index as written in a key; -1 when the part is not a plain number.
int index_of(const std::string& part) {
    if (part.empty() || part.size() > 6 ||
        !std::all_of(part.begin(), part.end(), [](unsigned char ch) { return std::isdigit(ch); }))
        return -1;
    return std::stoi(part);
}

// Thrown from inside the renaming; the caller adds the key.
struct NoMatch {};

std::string unet_resnet(const std::vector<std::string>& p, size_t from) {
    if (from + 1 >= p.size())
        throw NoMatch{};
    const std::string& a = p[from];
    const std::string& b = p[from + 1];
    std::string to;
    if (a == "in_layers" && b == "0") to = "norm1";
    else if (a == "in_layers" && b == "2") to = "conv1";
    else if (a == "emb_layers" && b == "1") to = "time_emb_proj";
    else if (a == "out_layers" && b == "0") to = "norm2";
    else if (a == "out_layers" && b == "3") to = "conv2";
    else if (a == "skip_connection") return "conv_shortcut." + join(p, from + 1);
    else throw NoMatch{};
    return to + "." + join(p, from + 2);
}

std::string unet_attention(const std::vector<std::string>& p, size_t from) {
    static const std::set<std::string> parts{"norm", "proj_in", "proj_out", "transformer_blocks"};
    if (from >= p.size() || !parts.count(p[from]))
        throw NoMatch{};
    return join(p, from);
}

// p: the key after "model.diffusion_model.". CompVis numbers blocks flat (input_blocks.0 is conv_in,
// then per level L resnet(+attention) blocks and one downsampler); diffusers nests them per level.
std::string unet_name(const std::vector<std::string>& p, int layers) {
    const int per_level = layers + 1;
    if (p.size() < 3)
        throw NoMatch{};
    if (p[0] == "time_embed" && (p[1] == "0" || p[1] == "2"))
        return std::string("time_embedding.linear_") + (p[1] == "0" ? "1" : "2") + "." + join(p, 2);
    if (p[0] == "out" && (p[1] == "0" || p[1] == "2"))
        return std::string(p[1] == "0" ? "conv_norm_out" : "conv_out") + "." + join(p, 2);
    if (p[0] == "middle_block") {
        if (p[1] == "0") return "mid_block.resnets.0." + unet_resnet(p, 2);
        if (p[1] == "1") return "mid_block.attentions.0." + unet_attention(p, 2);
        if (p[1] == "2") return "mid_block.resnets.1." + unet_resnet(p, 2);
        throw NoMatch{};
    }
    const int i = index_of(p[1]);
    if (p.size() < 4 || i < 0)
        throw NoMatch{};
    const std::string& sub = p[2];
    if (p[0] == "input_blocks") {
        if (i == 0 && sub == "0")
            return "conv_in." + join(p, 3);
        if (i == 0)
            throw NoMatch{};
        const std::string level = std::to_string((i - 1) / per_level);
        const int within = (i - 1) % per_level;
        if (within == layers) {
            if (sub == "0" && p[3] == "op")
                return "down_blocks." + level + ".downsamplers.0.conv." + join(p, 4);
            throw NoMatch{};
        }
        const std::string head = "down_blocks." + level;
        if (sub == "0") return head + ".resnets." + std::to_string(within) + "." + unet_resnet(p, 3);
        if (sub == "1") return head + ".attentions." + std::to_string(within) + "." + unet_attention(p, 3);
        throw NoMatch{};
    }
    if (p[0] == "output_blocks") {
        const std::string head = "up_blocks." + std::to_string(i / per_level);
        const std::string within = std::to_string(i % per_level);
        // An up level's last block carries the upsampler as its last part: ".1.conv" after a
        // plain resnet, ".2.conv" after resnet + attention.
        if ((sub == "1" || sub == "2") && p[3] == "conv")
            return head + ".upsamplers.0.conv." + join(p, 4);
        if (sub == "0") return head + ".resnets." + within + "." + unet_resnet(p, 3);
        if (sub == "1") return head + ".attentions." + within + "." + unet_attention(p, 3);
        throw NoMatch{};
    }
    throw NoMatch{};
}

std::string vae_resnet(const std::vector<std::string>& p, size_t from) {
    static const std::set<std::string> same{"norm1", "conv1", "norm2", "conv2"};
    if (from + 1 >= p.size())
        throw NoMatch{};
    if (same.count(p[from]))
        return join(p, from);
    if (p[from] == "nin_shortcut")
        return "conv_shortcut." + join(p, from + 1);
    throw NoMatch{};
}

// p: the key after "first_stage_model.".
SingleFileName vae_name(const std::vector<std::string>& p, int levels) {
    SingleFileName out{SingleFilePart::Vae, {}};
    if ((p[0] == "quant_conv" || p[0] == "post_quant_conv") && p.size() == 2) {
        out.name = join(p, 0);
        return out;
    }
    if ((p[0] != "encoder" && p[0] != "decoder") || p.size() < 3)
        throw NoMatch{};
    const std::string& side = p[0];
    const std::string& what = p[1];
    if (what == "conv_in" || what == "conv_out")
        out.name = join(p, 0);
    else if (what == "norm_out")
        out.name = side + ".conv_norm_out." + join(p, 2);
    else if (what == "mid" && p[2] == "block_1")
        out.name = side + ".mid_block.resnets.0." + vae_resnet(p, 3);
    else if (what == "mid" && p[2] == "block_2")
        out.name = side + ".mid_block.resnets.1." + vae_resnet(p, 3);
    else if (what == "mid" && p[2] == "attn_1" && p.size() == 5) {
        // The mid-block attention is 1x1 convolutions in CompVis and linear layers in diffusers.
        const std::string& proj = p[3];
        std::string to;
        if (proj == "norm") to = "group_norm";
        else if (proj == "q") to = "to_q";
        else if (proj == "k") to = "to_k";
        else if (proj == "v") to = "to_v";
        else if (proj == "proj_out") to = "to_out.0";
        else throw NoMatch{};
        out.name = side + ".mid_block.attentions.0." + to + "." + p[4];
        out.conv1x1_to_linear = proj != "norm" && p[4] == "weight";
    } else if ((what == "down" && side == "encoder") || (what == "up" && side == "decoder")) {
        int level = index_of(p[2]);
        if (level < 0 || p.size() < 5)
            throw NoMatch{};
        // CompVis counts decoder levels from the lowest resolution up; diffusers in execution order.
        if (what == "up") {
            if (level >= levels)
                throw NoMatch{};
            level = levels - 1 - level;
        }
        const std::string head = side + (what == "down" ? ".down_blocks." : ".up_blocks.") + std::to_string(level);
        if (p[3] == "block" && index_of(p[4]) >= 0)
            out.name = head + ".resnets." + p[4] + "." + vae_resnet(p, 5);
        else if ((p[3] == "downsample" || p[3] == "upsample") && p[4] == "conv")
            out.name = head + (what == "down" ? ".downsamplers.0.conv." : ".upsamplers.0.conv.") + join(p, 5);
        else
            throw NoMatch{};
    } else {
        throw NoMatch{};
    }
    return out;
}

std::string text_name(const std::string& rest) {
    // Older transformers saved CLIPTextModel without the "text_model." level.
    return starts_with(rest, "text_model.") ? rest : "text_model." + rest;
}

// ---- config inference -------------------------------------------------------------------------

class Shapes {
public:
    Shapes(const std::string& path, const char* component, const std::map<std::string, TensorView>& t)
        : path_(path), component_(component), t_(t) {}
    bool has(const std::string& name) const { return t_.count(name) != 0; }
    const std::vector<int64_t>& shape(const std::string& name) const {
        const auto it = t_.find(name);
        if (it == t_.end())
            throw Error(path_ + ": cannot infer the " + component_ + " config: the checkpoint has no weight for '" +
                        name + "'");
        return it->second.shape;
    }
    int64_t dim(const std::string& name, size_t i) const {
        const auto& sh = shape(name);
        if (i >= sh.size())
            throw Error(path_ + ": " + component_ + " weight '" + name + "' has " +
                        std::to_string(sh.size()) + " dimensions, expected at least " + std::to_string(i + 1));
        return sh[i];
    }
    // How many numbered children prefix0., prefix1., ... exist (blocks, layers).
    int count(const std::string& prefix) const {
        int n = 0;
        while (true) {
            const std::string p = prefix + std::to_string(n) + ".";
            const auto it = t_.lower_bound(p);
            if (it == t_.end() || !starts_with(it->first, p))
                return n;
            ++n;
        }
    }

private:
    const std::string& path_;
    const char* component_;
    const std::map<std::string, TensorView>& t_;
};

nlohmann::json infer_unet_config(const std::string& path, const ComponentFiles& c) {
    const Shapes s(path, "U-Net", c.tensors);
    const int levels = s.count("down_blocks.");
    const int layers = s.count("down_blocks.0.resnets.");
    if (levels == 0 || layers == 0)
        throw Error(path + ": cannot infer the U-Net config: no down blocks found under model.diffusion_model.");
    nlohmann::json block_out = nlohmann::json::array(), down_types = nlohmann::json::array(),
                   up_types = nlohmann::json::array();
    for (int i = 0; i < levels; ++i) {
        const std::string d = "down_blocks." + std::to_string(i);
        block_out.push_back(s.dim(d + ".resnets.0.conv1.weight", 0));
        down_types.push_back(s.has(d + ".attentions.0.norm.weight") ? "CrossAttnDownBlock2D" : "DownBlock2D");
        up_types.push_back(s.has("up_blocks." + std::to_string(i) + ".attentions.0.norm.weight") ? "CrossAttnUpBlock2D"
                                                                                                : "UpBlock2D");
    }
    const std::string attn = "mid_block.attentions.0.";
    return {
        {"_class_name", "UNet2DConditionModel"},
        {"act_fn", "silu"},
        // Not recoverable from shapes: every SD 1.x U-Net uses 8 heads.
        {"attention_head_dim", 8},
        {"block_out_channels", block_out},
        {"center_input_sample", false},
        {"conv_in_kernel", s.dim("conv_in.weight", 2)},
        {"conv_out_kernel", s.dim("conv_out.weight", 2)},
        {"cross_attention_dim", s.dim(attn + "transformer_blocks.0.attn2.to_k.weight", 1)},
        {"down_block_types", down_types},
        {"downsample_padding", 1},
        {"dual_cross_attention", false},
        {"flip_sin_to_cos", true},
        {"freq_shift", 0},
        {"in_channels", s.dim("conv_in.weight", 1)},
        {"layers_per_block", layers},
        {"mid_block_scale_factor", 1},
        {"mid_block_type", "UNetMidBlock2DCrossAttn"},
        {"norm_eps", 1e-5},
        {"norm_num_groups", 32},
        {"only_cross_attention", false},
        {"out_channels", s.dim("conv_out.weight", 0)},
        {"resnet_time_scale_shift", "default"},
        // SD 1.x works at 512x512, i.e. 64x64 latents; the file does not say.
        {"sample_size", 64},
        {"time_embedding_type", "positional"},
        {"transformer_layers_per_block", s.count(attn + "transformer_blocks.")},
        {"up_block_types", up_types},
        {"upcast_attention", false},
        // SD 2.x replaced the 1x1 conv projections with linear ones.
        {"use_linear_projection", s.shape(attn + "proj_in.weight").size() == 2},
    };
}

} // namespace

nlohmann::json infer_vae_config(const std::string& path, const ComponentFiles& c) {
    const Shapes s(path, "VAE", c.tensors);
    const int levels = s.count("encoder.down_blocks.");
    const int layers = s.count("encoder.down_blocks.0.resnets.");
    if (levels == 0 || layers == 0)
        throw Error(path + ": cannot infer the VAE config: no encoder down blocks under first_stage_model.encoder.down");
    nlohmann::json block_out = nlohmann::json::array();
    for (int i = 0; i < levels; ++i)
        block_out.push_back(s.dim("encoder.down_blocks." + std::to_string(i) + ".resnets.0.conv1.weight", 0));
    return {
        {"_class_name", "AutoencoderKL"},
        {"act_fn", "silu"},
        {"block_out_channels", block_out},
        {"down_block_types", std::vector<std::string>(levels, "DownEncoderBlock2D")},
        {"force_upcast", true},
        {"in_channels", s.dim("encoder.conv_in.weight", 1)},
        {"latent_channels", s.dim("decoder.conv_in.weight", 1)},
        {"layers_per_block", layers},
        {"mid_block_add_attention", s.has("encoder.mid_block.attentions.0.to_q.weight")},
        {"norm_num_groups", 32},
        {"out_channels", s.dim("decoder.conv_out.weight", 0)},
        {"sample_size", 512},
        // SD 1.x's latent scale; not stored in the checkpoint.
        {"scaling_factor", 0.18215},
        {"up_block_types", std::vector<std::string>(levels, "UpDecoderBlock2D")},
        {"use_post_quant_conv", s.has("post_quant_conv.weight")},
        {"use_quant_conv", s.has("quant_conv.weight")},
    };
}

namespace {

nlohmann::json infer_text_encoder_config(const std::string& path, const ComponentFiles& c) {
    const Shapes s(path, "text encoder", c.tensors);
    const std::string tok = "text_model.embeddings.token_embedding.weight";
    const int64_t hidden = s.dim(tok, 1);
    // OpenAI's CLIP uses 64-wide heads (768 -> 12); test-sized CLIPs narrower than one such head
    // (tiny-sd: hidden 32, 4 heads) use 8-wide heads, as transformers' tiny test models do.
    const int64_t heads = hidden >= 64 ? hidden / 64 : std::max<int64_t>(1, hidden / 8);
    return {
        {"architectures", {"CLIPTextModel"}},
        {"attention_dropout", 0.0},
        {"bos_token_id", 0},
        {"eos_token_id", 2},
        {"hidden_act", "quick_gelu"},
        {"hidden_size", hidden},
        {"initializer_factor", 1.0},
        {"initializer_range", 0.02},
        {"intermediate_size", s.dim("text_model.encoder.layers.0.mlp.fc1.weight", 0)},
        {"layer_norm_eps", 1e-5},
        {"max_position_embeddings", s.dim("text_model.embeddings.position_embedding.weight", 0)},
        {"model_type", "clip_text_model"},
        {"num_attention_heads", heads},
        {"num_hidden_layers", s.count("text_model.encoder.layers.")},
        {"pad_token_id", 1},
        {"projection_dim", hidden},
        {"vocab_size", s.dim(tok, 0)},
    };
}

// Names what a file that is not a CompVis SD checkpoint most likely is, from its keys.
std::string describe_foreign(const std::string& path, const SafetensorsFile& f) {
    bool diffusers_unet = false, diffusers_vae = false, clip = false, lora = false;
    for (const auto& [k, v] : f.tensors()) {
        diffusers_unet |= starts_with(k, "down_blocks.") || starts_with(k, "conv_in.");
        diffusers_vae |= starts_with(k, "encoder.down_blocks.") || starts_with(k, "decoder.up_blocks.");
        clip |= starts_with(k, "text_model.");
        lora |= k.find("lora_") != std::string::npos || k.find(".lora.") != std::string::npos;
    }
    std::string what;
    if (lora) what = "it looks like a LoRA, which is applied on top of a model, not a model itself";
    else if (diffusers_vae) what = "it looks like a lone diffusers VAE";
    else if (diffusers_unet) what = "it looks like a lone diffusers U-Net";
    else if (clip) what = "it looks like a lone CLIP text encoder";
    else {
        what = "its first keys are";
        int n = 0;
        for (auto it = f.tensors().begin(); it != f.tensors().end() && n < 3; ++it, ++n)
            what += std::string(n ? ", " : " ") + "'" + it->first + "'";
    }
    return path + ": not a Stable Diffusion 1.x single-file checkpoint (no model.diffusion_model.* keys; " + what +
           "). Open a full checkpoint (.safetensors with model.diffusion_model.*, first_stage_model.*, "
           "cond_stage_model.*) or a diffusers folder";
}

void reject_unsupported_families(const std::string& path, const SafetensorsFile& f) {
    for (const auto& [k, v] : f.tensors()) {
        if (starts_with(k, "conditioner.embedders."))
            throw Error(path + ": this is an SDXL checkpoint (it has conditioner.embedders.* keys); SD Lens opens "
                               "Stable Diffusion 1.x models only");
        if (starts_with(k, "cond_stage_model.model."))
            throw Error(path + ": this is a Stable Diffusion 2.x checkpoint (OpenCLIP text encoder under "
                               "cond_stage_model.model.*); SD Lens opens Stable Diffusion 1.x models only");
    }
}

// The highest decoder.up.N under prefix, -1 when there is none.
int max_decoder_up(const SafetensorsFile& f, const std::string& prefix) {
    int max_up = -1;
    for (const auto& [k, v] : f.tensors())
        if (starts_with(k, prefix + "decoder.up.")) {
            const auto p = split(k.substr(prefix.size()));
            max_up = std::max(max_up, index_of(p[2]));
        }
    return max_up;
}

SingleFileGeometry geometry_of(const SafetensorsFile& f) {
    SingleFileGeometry g;
    // input_blocks.(L+1).0.op is the first downsampler, after conv_in and L resnet blocks.
    int first_op = -1, max_input = 0;
    for (const auto& [k, v] : f.tensors()) {
        if (starts_with(k, kUnetPrefix + "input_blocks.")) {
            const auto p = split(k.substr(kUnetPrefix.size()));
            const int i = p.size() > 3 ? index_of(p[1]) : -1;
            max_input = std::max(max_input, i);
            if (i > 0 && p[2] == "0" && p[3] == "op" && (first_op < 0 || i < first_op))
                first_op = i;
        }
    }
    const int max_up = max_decoder_up(f, kVaePrefix);
    g.unet_layers_per_block = first_op > 0 ? first_op - 1 : std::max(1, max_input);
    if (max_up >= 0)
        g.vae_levels = max_up + 1;
    return g;
}

void add_renamed(ComponentFiles& c, const std::string& path, const std::string& key, const TensorView& view,
                 const SingleFileName& t) {
    TensorView v = view;
    v.name = t.name;
    if (t.conv1x1_to_linear) {
        if (v.shape.size() == 4 && v.shape[2] == 1 && v.shape[3] == 1)
            v.shape.resize(2);
        else if (v.shape.size() != 2)
            throw Error(path + ": '" + key + "' should be a 1x1 convolution [C, C, 1, 1] or linear [C, C], found " +
                        std::to_string(v.shape.size()) + " dimensions");
    }
    if (!c.tensors.emplace(t.name, v).second)
        throw Error(path + ": two keys map to the diffusers name '" + t.name + "' (one is '" + key +
                    "'): the file holds the same weight twice");
}

} // namespace

SingleFileName translate_single_file_key(const std::string& key, const SingleFileGeometry& g) {
    try {
        if (starts_with(key, kUnetPrefix))
            return {SingleFilePart::Unet, unet_name(split(key.substr(kUnetPrefix.size())), g.unet_layers_per_block)};
        if (starts_with(key, kVaePrefix)) {
            const auto p = split(key.substr(kVaePrefix.size()));
            // The VAE's training loss (LPIPS, discriminator) rides along in some checkpoints.
            if (p[0] == "loss")
                return {SingleFilePart::Ignored, key};
            return vae_name(p, g.vae_levels);
        }
        if (starts_with(key, kTextPrefix)) {
            const std::string name = text_name(key.substr(kTextPrefix.size()));
            // A buffer (0..76), not a weight; recent transformers no longer save it.
            if (name == "text_model.embeddings.position_ids")
                return {SingleFilePart::Ignored, key};
            return {SingleFilePart::TextEncoder, name};
        }
    } catch (const NoMatch&) {
        throw Error("single-file key '" + key + "' has no diffusers counterpart in SD Lens' SD 1.x name table");
    }
    // Schedule buffers (betas, alphas_cumprod, ...), EMA copies and other training state.
    return {SingleFilePart::Ignored, key};
}

ModelFiles open_single_file(const std::string& path) {
    const auto file = SafetensorsFile::open(path);
    reject_unsupported_families(path, *file);
    const bool has_unet = std::any_of(file->tensors().begin(), file->tensors().end(),
                                      [](const auto& kv) { return starts_with(kv.first, kUnetPrefix); });
    if (!has_unet)
        throw Error(describe_foreign(path, *file));

    ModelFiles m;
    m.path = path;
    m.layout = ModelLayout::SingleFile;
    m.text_encoder.name = "text_encoder";
    m.unet.name = "unet";
    m.vae.name = "vae";
    m.vae.spelling = "original (CompVis)";
    const SingleFileGeometry g = geometry_of(*file);
    for (const auto& [key, view] : file->tensors()) {
        SingleFileName t;
        try {
            t = translate_single_file_key(key, g);
        } catch (const Error& e) {
            throw Error(path + ": " + e.what());
        }
        if (t.part == SingleFilePart::Ignored) {
            // Keys outside the three models belong to the LatentDiffusion wrapper around the U-Net.
            ComponentFiles& owner = starts_with(key, "cond_stage_model.") ? m.text_encoder
                                    : starts_with(key, kVaePrefix)      ? m.vae
                                                                        : m.unet;
            owner.ignored.push_back(key);
            continue;
        }
        ComponentFiles& c = t.part == SingleFilePart::Unet ? m.unet : t.part == SingleFilePart::Vae ? m.vae
                                                                                                    : m.text_encoder;
        add_renamed(c, path, key, view, t);
    }
    for (ComponentFiles* c : {&m.text_encoder, &m.vae}) {
        if (c->tensors.empty())
            throw Error(path + ": the checkpoint has no " +
                        std::string(c == &m.vae ? "VAE (first_stage_model.*)" : "text encoder (cond_stage_model.transformer.*)") +
                        " weights; SD Lens needs a full SD 1.x checkpoint with U-Net, VAE and text encoder");
        c->files.push_back(file);
    }
    m.unet.files.push_back(file);
    m.unet.config = infer_unet_config(path, m.unet);
    m.vae.config = infer_vae_config(path, m.vae);
    m.text_encoder.config = infer_text_encoder_config(path, m.text_encoder);
    m.scheduler_config = nlohmann::json::object();
    return m;
}


ComponentFiles open_original_vae(const std::shared_ptr<SafetensorsFile>& file, const std::string& prefix) {
    const std::string& path = file->path();
    ComponentFiles c;
    c.name = "vae";
    c.spelling = "original (CompVis)";
    SingleFileGeometry g;
    if (const int max_up = max_decoder_up(*file, prefix); max_up >= 0)
        g.vae_levels = max_up + 1;
    for (const auto& [key, view] : file->tensors()) {
        if (!starts_with(key, prefix)) {
            c.ignored.push_back(key);
            continue;
        }
        const std::string rest = key.substr(prefix.size());
        // A standalone VAE keeps its EMA counters (the EMA weights themselves were pruned into the
        // main ones); they are not weights.
        if (rest == "model_ema.decay" || rest == "model_ema.num_updates") {
            c.ignored.push_back(key);
            continue;
        }
        SingleFileName t;
        try {
            t = translate_single_file_key(kVaePrefix + rest, g);
        } catch (const Error&) {
            throw Error(path + ": key '" + key + "' is not part of an SD 1.x VAE in the original (CompVis) names");
        }
        if (t.part == SingleFilePart::Ignored) {
            c.ignored.push_back(key);
            continue;
        }
        if (t.part != SingleFilePart::Vae)
            throw Error(path + ": key '" + key + "' is not part of a VAE");
        add_renamed(c, path, key, view, t);
    }
    if (c.tensors.empty())
        throw Error(path + ": no VAE weights under '" + prefix + "encoder.' / '" + prefix + "decoder.'");
    c.files.push_back(file);
    c.config = infer_vae_config(path, c);
    return c;
}

} // namespace sdl
