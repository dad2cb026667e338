#include "core/models/unet_2d_condition.h"

#include "core/util/error.h"

#include <algorithm>

namespace sdl {

UNet2DConditionModelImpl::UNet2DConditionModelImpl(const UNet2DConditionConfig& c) : config_(c) {
    const auto& ch = c.block_out_channels;
    const int64_t n = static_cast<int64_t>(ch.size());
    // Block types first, so a bad type fails before anything is allocated.
    std::vector<bool> down_cross, up_cross;
    for (int64_t i = 0; i < n; ++i) {
        down_cross.push_back(down_block_has_cross_attention(c.down_block_types[i]));
        up_cross.push_back(up_block_has_cross_attention(c.up_block_types[i]));
    }

    conv_in = register_module("conv_in", Conv2d(c.in_channels, ch[0], c.conv_in_kernel, 1, c.conv_in_kernel / 2));
    time_embedding =
        register_module("time_embedding", TimestepEmbedding(ch[0], c.time_embed_dim(), c.time_cond_proj_dim));

    UNetBlockOptions base;
    base.temb_channels = c.time_embed_dim();
    base.groups = c.norm_num_groups;
    base.eps = c.norm_eps;
    base.downsample_padding = c.downsample_padding;
    base.transformer.linear_projection = c.use_linear_projection;
    base.transformer.upcast_attention = c.upcast_attention;
    const auto per_block = [&](int64_t i) {
        UNetBlockOptions o = base;
        o.transformer.heads = c.num_attention_heads[i];
        o.transformer.layers = c.transformer_layers_per_block[i];
        o.transformer.context_dim = c.cross_attention_dim[i];
        return o;
    };

    auto down_blocks = register_module("down_blocks", torch::nn::ModuleList());
    for (int64_t i = 0; i < n; ++i) {
        UNetBlockOptions o = per_block(i);
        o.in_channels = ch[std::max<int64_t>(i - 1, 0)];
        o.out_channels = ch[i];
        o.layers = c.layers_per_block[i];
        o.resample = i < n - 1;
        o.cross_attention = down_cross[i];
        down_.emplace_back(o);
        down_blocks->push_back(down_.back());
    }

    UNetBlockOptions mid = per_block(n - 1);
    mid.in_channels = mid.out_channels = ch.back();
    mid.layers = 1;
    mid.resnet_out_scale = c.mid_block_scale_factor;
    mid_block = register_module("mid_block", UNetMidBlock(mid));

    // Up block i mirrors down block n-1-i and takes its per-block settings.
    auto up_blocks = register_module("up_blocks", torch::nn::ModuleList());
    for (int64_t i = 0; i < n; ++i) {
        const int64_t mirror = n - 1 - i;
        UNetBlockOptions o = per_block(mirror);
        o.prev_out_channels = ch[std::min(mirror + 1, n - 1)];
        o.out_channels = ch[mirror];
        o.in_channels = ch[std::max<int64_t>(mirror - 1, 0)];
        o.layers = c.layers_per_block[mirror] + 1;
        o.resample = i < n - 1;
        o.cross_attention = up_cross[i];
        up_.emplace_back(o);
        up_blocks->push_back(up_.back());
    }

    conv_norm_out = register_module("conv_norm_out", GroupNorm(c.norm_num_groups, ch[0], c.norm_eps));
    conv_out = register_module("conv_out", Conv2d(ch[0], c.out_channels, c.conv_out_kernel, 1, c.conv_out_kernel / 2));
    name_hook_points(*this);
}

torch::Tensor UNet2DConditionModelImpl::forward(const torch::Tensor& sample, double timestep,
                                                const torch::Tensor& context, const torch::Tensor& timestep_cond) {
    return forward(sample, torch::tensor(timestep, torch::kDouble), context, timestep_cond);
}

torch::Tensor UNet2DConditionModelImpl::forward(const torch::Tensor& sample, const torch::Tensor& timestep,
                                                const torch::Tensor& context, const torch::Tensor& timestep_cond) {
    const auto& c = config_;
    if (sample.dim() != 4 || sample.size(1) != c.in_channels)
        throw Error("unet: sample must be [B, " + std::to_string(c.in_channels) + ", h, w], found " +
                    c10::str(sample.sizes()));
    const int64_t b = sample.size(0);
    if (context.dim() != 3 || context.size(0) != b || context.size(2) != c.cross_attention_dim[0])
        throw Error("unet: context must be [" + std::to_string(b) + ", tokens, " +
                    std::to_string(c.cross_attention_dim[0]) + "], found " + c10::str(context.sizes()));
    auto t = timestep.reshape({-1});
    if (t.numel() == 1)
        t = t.expand({b});
    else if (t.numel() != b)
        throw Error("unet: expected one timestep or " + std::to_string(b) + " (one per sample), found " +
                    std::to_string(t.numel()));
    if (timestep_cond.defined() && (c.time_cond_proj_dim == 0 || timestep_cond.dim() != 2 ||
                                    timestep_cond.size(0) != b || timestep_cond.size(1) != c.time_cond_proj_dim))
        throw Error(c.time_cond_proj_dim == 0
                        ? std::string("unet: a timestep condition was given to a U-Net without time_cond_proj_dim")
                        : "unet: the timestep condition must be [" + std::to_string(b) + ", " +
                              std::to_string(c.time_cond_proj_dim) + "], found " + c10::str(timestep_cond.sizes()));

    const ModelHooks* hooks = hooks_;
    const auto tap = [&](const char* name, const torch::Tensor& x) {
        if (hooks)
            hooks->tap(name, x);
    };
    // The sinusoids are computed in float32 whatever the model dtype, then cast, as diffusers does.
    const auto t_emb = timestep_embedding(t.to(sample.device()), c.block_out_channels[0], c.flip_sin_to_cos,
                                          c.freq_shift);
    const auto temb = time_embedding(t_emb.to(sample.scalar_type()),
                                     timestep_cond.defined() ? timestep_cond.to(sample.scalar_type()) : timestep_cond);
    tap("time_embedding", temb);

    auto h = conv_in(c.center_input_sample ? 2 * sample - 1.0 : sample);  // [B, C0, h, w]
    tap("conv_in", h);
    std::vector<torch::Tensor> skips{h};
    for (auto& block : down_)
        h = block->forward(h, temb, context, skips, hooks);
    h = mid_block->forward(h, temb, context, hooks);
    for (auto& block : up_) {
        const int64_t consumed = block->layers();
        // After this block's skips are popped, the next one on the stack has the size this block
        // must upsample to (not always 2x: odd sizes were rounded up on the way down).
        const auto next = skips.size() > static_cast<size_t>(consumed) ? skips[skips.size() - consumed - 1].sizes().slice(2)
                                                                        : c10::IntArrayRef{};
        const std::vector<int64_t> upsample_size(next.begin(), next.end());
        h = block->forward(h, temb, context, skips, upsample_size, hooks);
    }
    auto out = conv_out(conv_norm_out->forward_silu(h));  // [B, out_channels, h, w]
    tap("conv_out", out);
    return out;
}

} // namespace sdl
