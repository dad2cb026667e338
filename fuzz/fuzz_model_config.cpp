// config.json of the text encoder, U-Net and VAE as downloaded with a model. Byte 0 picks the
// component; the rest is the JSON. from_json promises to validate everything a module needs, so an
// accepted config must satisfy what the model code assumes without checking again.
#include "core/models/configs.h"
#include "fuzz/harness.h"

using namespace sdl;

namespace {

void check_unet(const UNet2DConditionConfig& c) {
    const size_t n = c.down_block_types.size();
    fuzz::check(n >= 1 && c.up_block_types.size() == n && c.block_out_channels.size() == n,
                "U-Net block lists differ in length");
    fuzz::check(c.layers_per_block.size() == n && c.cross_attention_dim.size() == n &&
                    c.transformer_layers_per_block.size() == n && c.num_attention_heads.size() == n,
                "U-Net per-block lists are not one per block");
    for (size_t i = 0; i < n; ++i) {
        fuzz::check(c.block_out_channels[i] > 0 && c.num_attention_heads[i] > 0, "non-positive channels/heads");
        fuzz::check(c.block_out_channels[i] % c.norm_num_groups == 0, "channels not divisible by norm groups");
    }
    fuzz::check(c.time_embed_dim() > 0, "time embedding width overflows");
}

void check_vae(const AutoencoderKLConfig& c) {
    fuzz::check(!c.block_out_channels.empty() && c.block_out_channels.size() < 63, "VAE block count");
    fuzz::check(c.down_block_types.size() == c.block_out_channels.size() &&
                    c.up_block_types.size() == c.block_out_channels.size(),
                "VAE block lists differ in length");
    fuzz::check(c.downscale() >= 1, "VAE downscale");
}

void check_clip(const ClipTextConfig& c) {
    fuzz::check(c.hidden_size > 0 && c.num_attention_heads > 0 && c.hidden_size % c.num_attention_heads == 0,
                "hidden size not divisible by heads");
    fuzz::check(c.vocab_size > 0 && c.max_position_embeddings > 0 && c.num_hidden_layers > 0, "sizes");
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size < 1)
        return 0;
    const auto j = nlohmann::json::parse(data + 1, data + size, nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded())
        return 0;
    switch (data[0] % 3) {
    case 0: {
        ClipTextConfig c;
        if (fuzz::accepts([&] { c = ClipTextConfig::from_json(j); }))
            check_clip(c);
        break;
    }
    case 1: {
        UNet2DConditionConfig c;
        if (fuzz::accepts([&] { c = UNet2DConditionConfig::from_json(j); }))
            check_unet(c);
        break;
    }
    default: {
        AutoencoderKLConfig c;
        if (fuzz::accepts([&] { c = AutoencoderKLConfig::from_json(j); }))
            check_vae(c);
        break;
    }
    }
    return 0;
}
