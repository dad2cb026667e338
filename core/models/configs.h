#pragma once
// Network configurations as diffusers/transformers write them in config.json, with SD 1.x defaults
// for absent keys. from_json validates everything before a module is built, so a bad file fails
// with the field and the value at fault rather than with a shape error deep inside torch.
#include <nlohmann/json.hpp>

#include <cstdint>
#include <string>
#include <vector>

namespace sdl {

struct ClipTextConfig {
    int64_t vocab_size = 49408;
    int64_t hidden_size = 768;
    int64_t intermediate_size = 3072;
    int64_t num_hidden_layers = 12;
    int64_t num_attention_heads = 12;
    int64_t max_position_embeddings = 77;
    std::string hidden_act = "quick_gelu";  // or "gelu"
    double layer_norm_eps = 1e-5;

    static ClipTextConfig from_json(const nlohmann::json& j);  // throws sdl::Error
};

struct UNet2DConditionConfig {
    int64_t in_channels = 4;
    int64_t out_channels = 4;
    int64_t sample_size = 64;
    bool center_input_sample = false;
    bool flip_sin_to_cos = true;
    double freq_shift = 0;
    std::vector<std::string> down_block_types{"CrossAttnDownBlock2D", "CrossAttnDownBlock2D",
                                              "CrossAttnDownBlock2D", "DownBlock2D"};
    std::string mid_block_type = "UNetMidBlock2DCrossAttn";
    std::vector<std::string> up_block_types{"UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D",
                                            "CrossAttnUpBlock2D"};
    std::vector<int64_t> block_out_channels{320, 640, 1280, 1280};
    // The per-block lists below always hold one entry per down block (an int in the file is
    // repeated); up blocks use them reversed, as diffusers does.
    std::vector<int64_t> layers_per_block{2, 2, 2, 2};
    std::vector<int64_t> cross_attention_dim{768, 768, 768, 768};
    std::vector<int64_t> transformer_layers_per_block{1, 1, 1, 1};
    // Heads per block. diffusers' SD 1.x/2.x configs name this "attention_head_dim" and leave
    // "num_attention_heads" null (a historical misnomer that diffusers keeps for compatibility);
    // the head size is then channels / heads.
    std::vector<int64_t> num_attention_heads{8, 8, 8, 8};
    int64_t downsample_padding = 1;
    double mid_block_scale_factor = 1.0;
    int64_t norm_num_groups = 32;
    double norm_eps = 1e-5;
    bool use_linear_projection = false;  // SD 2.x: proj_in/proj_out are Linear, not 1x1 Conv2d
    bool upcast_attention = false;       // SD 2.1: attention scores in float32
    int64_t conv_in_kernel = 3;
    int64_t conv_out_kernel = 3;
    // LCM-distilled U-Nets (LCM_Dreamshaper_v7: 256): width of the guidance-scale embedding added to
    // the timestep's through time_embedding.cond_proj; 0 for every other U-Net.
    int64_t time_cond_proj_dim = 0;

    int64_t time_embed_dim() const { return block_out_channels.front() * 4; }
    static UNet2DConditionConfig from_json(const nlohmann::json& j);
};

struct AutoencoderKLConfig {
    int64_t in_channels = 3;
    int64_t out_channels = 3;
    std::vector<std::string> down_block_types{"DownEncoderBlock2D", "DownEncoderBlock2D",
                                              "DownEncoderBlock2D", "DownEncoderBlock2D"};
    std::vector<std::string> up_block_types{"UpDecoderBlock2D", "UpDecoderBlock2D", "UpDecoderBlock2D",
                                            "UpDecoderBlock2D"};
    std::vector<int64_t> block_out_channels{128, 256, 512, 512};
    int64_t layers_per_block = 2;
    int64_t latent_channels = 4;
    int64_t norm_num_groups = 32;
    int64_t sample_size = 512;
    double scaling_factor = 0.18215;
    bool use_quant_conv = true;
    bool use_post_quant_conv = true;
    bool mid_block_add_attention = true;

    // Pixels per latent pixel (8 for SD): one downsampler per block but the last.
    int64_t downscale() const { return int64_t{1} << (block_out_channels.size() - 1); }
    static AutoencoderKLConfig from_json(const nlohmann::json& j);
};

} // namespace sdl
