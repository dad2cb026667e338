#include "core/models/configs.h"

#include "core/util/error.h"

#include <set>

namespace sdl {
namespace {

using nlohmann::json;

// Reads one config.json; every message names the component, the field and the offending value.
class Reader {
public:
    Reader(const json& j, std::string component) : j_(j), component_(std::move(component)) {
        if (!j_.is_object())
            throw Error(component_ + " config: expected a JSON object, found " + j_.dump());
    }

    // Absent and null keys keep the default, as they do in diffusers.
    const json* find(const std::string& key) const {
        const auto it = j_.find(key);
        return it == j_.end() || it->is_null() ? nullptr : &*it;
    }

    [[noreturn]] void fail(const std::string& key, const std::string& expected, const json& found) const {
        throw Error(component_ + " config: '" + key + "' must be " + expected + ", found " + found.dump());
    }

    int64_t positive(const std::string& key, int64_t fallback) const {
        const json* v = find(key);
        if (!v)
            return fallback;
        if (!v->is_number_integer() || v->get<int64_t>() <= 0)
            fail(key, "a positive integer", *v);
        return v->get<int64_t>();
    }

    int64_t non_negative(const std::string& key, int64_t fallback) const {
        const json* v = find(key);
        if (!v)
            return fallback;
        if (!v->is_number_integer() || v->get<int64_t>() < 0)
            fail(key, "a non-negative integer", *v);
        return v->get<int64_t>();
    }

    double number(const std::string& key, double fallback) const {
        const json* v = find(key);
        if (!v)
            return fallback;
        if (!v->is_number())
            fail(key, "a number", *v);
        return v->get<double>();
    }

    double positive_number(const std::string& key, double fallback) const {
        const double d = number(key, fallback);
        if (!(d > 0))
            fail(key, "a positive number", *find(key));
        return d;
    }

    bool boolean(const std::string& key, bool fallback) const {
        const json* v = find(key);
        if (!v)
            return fallback;
        if (!v->is_boolean())
            fail(key, "true or false", *v);
        return v->get<bool>();
    }

    std::string one_of(const std::string& key, const std::string& fallback, const std::set<std::string>& allowed) const {
        const json* v = find(key);
        if (!v)
            return fallback;
        if (!v->is_string() || !allowed.count(v->get<std::string>()))
            fail(key, expected_names(allowed), *v);
        return v->get<std::string>();
    }

    std::vector<std::string> strings(const std::string& key, const std::vector<std::string>& fallback) const {
        const json* v = find(key);
        if (!v)
            return fallback;
        if (!v->is_array() || v->empty())
            fail(key, "a non-empty list of block type names", *v);
        std::vector<std::string> out;
        for (const auto& e : *v) {
            if (!e.is_string())
                fail(key, "a non-empty list of block type names", *v);
            out.push_back(e.get<std::string>());
        }
        return out;
    }

    std::vector<int64_t> positive_list(const std::string& key, const std::vector<int64_t>& fallback) const {
        const json* v = find(key);
        if (!v)
            return fallback;
        if (!v->is_array() || v->empty())
            fail(key, "a non-empty list of positive integers", *v);
        std::vector<int64_t> out;
        for (const auto& e : *v) {
            if (!e.is_number_integer() || e.get<int64_t>() <= 0)
                fail(key, "a non-empty list of positive integers", *v);
            out.push_back(e.get<int64_t>());
        }
        return out;
    }

    // diffusers accepts an int (same for every block) or one value per down block.
    std::vector<int64_t> per_block(const std::string& key, size_t blocks, const std::vector<int64_t>& fallback) const {
        const json* v = find(key);
        if (!v)
            return fallback;
        if (v->is_number_integer() && v->get<int64_t>() > 0)
            return std::vector<int64_t>(blocks, v->get<int64_t>());
        const std::string expected = "a positive integer or a list of " + std::to_string(blocks) + " of them";
        if (!v->is_array() || v->size() != blocks)
            fail(key, expected, *v);
        std::vector<int64_t> out;
        for (const auto& e : *v) {
            if (!e.is_number_integer() || e.get<int64_t>() <= 0)
                fail(key, expected, *v);
            out.push_back(e.get<int64_t>());
        }
        return out;
    }

    // Features of other diffusion models that these networks do not implement: refuse them by name
    // rather than silently computing something else.
    void require_unset(const std::string& key) const {
        if (const json* v = find(key); v && !(v->is_boolean() && !v->get<bool>()))
            fail(key, "null (not supported by SD Lens)", *v);
    }

    void require(const std::string& key, const json& only) const {
        if (const json* v = find(key); v && *v != only)
            fail(key, only.dump() + " (the only value SD Lens supports)", *v);
    }

    const std::string& component() const { return component_; }

private:
    static std::string expected_names(const std::set<std::string>& allowed) {
        std::string s = "one of";
        for (const auto& a : allowed)
            s += " \"" + a + "\"";
        return s;
    }

    const json& j_;
    std::string component_;
};

void require_divisible(const Reader& r, const std::vector<int64_t>& channels, int64_t groups) {
    for (const int64_t c : channels)
        if (c % groups != 0)
            throw Error(r.component() + " config: block_out_channels " + std::to_string(c) +
                        " is not divisible by norm_num_groups " + std::to_string(groups));
}

void require_length(const Reader& r, const std::string& key, size_t found, size_t expected) {
    if (found != expected)
        throw Error(r.component() + " config: '" + key + "' has " + std::to_string(found) +
                    " entries, expected " + std::to_string(expected) + " (one per block_out_channels entry)");
}

} // namespace

ClipTextConfig ClipTextConfig::from_json(const json& j) {
    const Reader r(j, "text_encoder");
    ClipTextConfig c;
    c.vocab_size = r.positive("vocab_size", c.vocab_size);
    c.hidden_size = r.positive("hidden_size", c.hidden_size);
    c.intermediate_size = r.positive("intermediate_size", c.intermediate_size);
    c.num_hidden_layers = r.positive("num_hidden_layers", c.num_hidden_layers);
    c.num_attention_heads = r.positive("num_attention_heads", c.num_attention_heads);
    c.max_position_embeddings = r.positive("max_position_embeddings", c.max_position_embeddings);
    c.hidden_act = r.one_of("hidden_act", c.hidden_act, {"quick_gelu", "gelu"});
    c.layer_norm_eps = r.positive_number("layer_norm_eps", c.layer_norm_eps);
    if (c.hidden_size % c.num_attention_heads != 0)
        throw Error("text_encoder config: hidden_size " + std::to_string(c.hidden_size) +
                    " is not divisible by num_attention_heads " + std::to_string(c.num_attention_heads));
    return c;
}

UNet2DConditionConfig UNet2DConditionConfig::from_json(const json& j) {
    const Reader r(j, "unet");
    UNet2DConditionConfig c;
    for (const char* key : {"class_embed_type", "addition_embed_type", "encoder_hid_dim",
                            "encoder_hid_dim_type", "num_class_embeds", "time_embedding_dim",
                            "time_embedding_act_fn", "timestep_post_act", "cross_attention_norm",
                            "only_cross_attention", "dual_cross_attention", "class_embeddings_concat",
                            "mid_block_only_cross_attention", "reverse_transformer_layers_per_block"})
        r.require_unset(key);
    r.require("act_fn", "silu");
    r.require("resnet_time_scale_shift", "default");
    r.require("resnet_skip_time_act", false);
    r.require("time_embedding_type", "positional");
    r.require("attention_type", "default");

    c.in_channels = r.positive("in_channels", c.in_channels);
    c.out_channels = r.positive("out_channels", c.out_channels);
    c.sample_size = r.positive("sample_size", c.sample_size);
    c.center_input_sample = r.boolean("center_input_sample", c.center_input_sample);
    c.flip_sin_to_cos = r.boolean("flip_sin_to_cos", c.flip_sin_to_cos);
    c.freq_shift = r.number("freq_shift", c.freq_shift);
    c.block_out_channels = r.positive_list("block_out_channels", c.block_out_channels);
    const size_t n = c.block_out_channels.size();
    c.down_block_types = r.strings("down_block_types", c.down_block_types);
    c.up_block_types = r.strings("up_block_types", c.up_block_types);
    require_length(r, "down_block_types", c.down_block_types.size(), n);
    require_length(r, "up_block_types", c.up_block_types.size(), n);
    c.mid_block_type = r.one_of("mid_block_type", c.mid_block_type, {"UNetMidBlock2DCrossAttn"});

    c.layers_per_block = r.per_block("layers_per_block", n, std::vector<int64_t>(n, 2));
    c.cross_attention_dim = r.per_block("cross_attention_dim", n, std::vector<int64_t>(n, 768));
    c.transformer_layers_per_block = r.per_block("transformer_layers_per_block", n, std::vector<int64_t>(n, 1));
    const auto head_dim_key = r.find("num_attention_heads") ? "num_attention_heads" : "attention_head_dim";
    c.num_attention_heads = r.per_block(head_dim_key, n, std::vector<int64_t>(n, 8));

    c.downsample_padding = r.non_negative("downsample_padding", c.downsample_padding);
    c.mid_block_scale_factor = r.positive_number("mid_block_scale_factor", c.mid_block_scale_factor);
    c.norm_num_groups = r.positive("norm_num_groups", c.norm_num_groups);
    c.norm_eps = r.positive_number("norm_eps", c.norm_eps);
    c.use_linear_projection = r.boolean("use_linear_projection", c.use_linear_projection);
    c.upcast_attention = r.boolean("upcast_attention", c.upcast_attention);
    c.conv_in_kernel = r.positive("conv_in_kernel", c.conv_in_kernel);
    c.conv_out_kernel = r.positive("conv_out_kernel", c.conv_out_kernel);
    c.time_cond_proj_dim = r.positive("time_cond_proj_dim", c.time_cond_proj_dim);
    // Fewer than two sine frequencies would divide by zero in the guidance-scale embedding.
    if (c.time_cond_proj_dim > 0 && c.time_cond_proj_dim < 4)
        r.fail("time_cond_proj_dim", "at least 4", *r.find("time_cond_proj_dim"));
    for (const int64_t k : {c.conv_in_kernel, c.conv_out_kernel})
        if (k % 2 == 0)
            throw Error("unet config: conv_in_kernel/conv_out_kernel must be odd, found " + std::to_string(k));

    require_divisible(r, c.block_out_channels, c.norm_num_groups);
    for (size_t i = 0; i < n; ++i)
        if (c.block_out_channels[i] % c.num_attention_heads[i] != 0)
            throw Error("unet config: block_out_channels[" + std::to_string(i) + "] = " +
                        std::to_string(c.block_out_channels[i]) + " is not divisible by " + head_dim_key + " " +
                        std::to_string(c.num_attention_heads[i]));
    return c;
}

AutoencoderKLConfig AutoencoderKLConfig::from_json(const json& j) {
    const Reader r(j, "vae");
    AutoencoderKLConfig c;
    r.require("act_fn", "silu");
    for (const char* key : {"shift_factor", "latents_mean", "latents_std"})
        r.require_unset(key);
    c.in_channels = r.positive("in_channels", c.in_channels);
    c.out_channels = r.positive("out_channels", c.out_channels);
    c.block_out_channels = r.positive_list("block_out_channels", c.block_out_channels);
    const size_t n = c.block_out_channels.size();
    c.down_block_types = r.strings("down_block_types", c.down_block_types);
    c.up_block_types = r.strings("up_block_types", c.up_block_types);
    require_length(r, "down_block_types", c.down_block_types.size(), n);
    require_length(r, "up_block_types", c.up_block_types.size(), n);
    c.layers_per_block = r.positive("layers_per_block", c.layers_per_block);
    c.latent_channels = r.positive("latent_channels", c.latent_channels);
    c.norm_num_groups = r.positive("norm_num_groups", c.norm_num_groups);
    c.sample_size = r.positive("sample_size", c.sample_size);
    c.scaling_factor = r.positive_number("scaling_factor", c.scaling_factor);
    c.use_quant_conv = r.boolean("use_quant_conv", c.use_quant_conv);
    c.use_post_quant_conv = r.boolean("use_post_quant_conv", c.use_post_quant_conv);
    c.mid_block_add_attention = r.boolean("mid_block_add_attention", c.mid_block_add_attention);
    require_divisible(r, c.block_out_channels, c.norm_num_groups);
    return c;
}

} // namespace sdl
