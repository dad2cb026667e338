#include "core/models/unet_blocks.h"

#include "core/util/error.h"

namespace sdl {
namespace {

bool lookup(const char* key, const std::string& type, const char* with_attention, const char* without) {
    if (type == with_attention)
        return true;
    if (type == without)
        return false;
    throw Error(std::string("unet config: unknown ") + key + " '" + type + "' (expected " + with_attention + ", " +
                without + ")");
}

ResnetOptions resnet_options(const UNetBlockOptions& o, int64_t in, int64_t out) {
    ResnetOptions r;
    r.in_channels = in;
    r.out_channels = out;
    r.temb_channels = o.temb_channels;
    r.groups = o.groups;
    r.eps = o.eps;
    r.output_scale_factor = o.resnet_out_scale;
    return r;
}

Transformer2DModel transformer(const UNetBlockOptions& o, int64_t channels) {
    TransformerOptions t = o.transformer;
    t.channels = channels;
    t.head_dim = channels / t.heads;
    t.groups = o.groups;
    return Transformer2DModel(t);
}

} // namespace

bool down_block_has_cross_attention(const std::string& type) {
    return lookup("down_block_type", type, "CrossAttnDownBlock2D", "DownBlock2D");
}

bool up_block_has_cross_attention(const std::string& type) {
    return lookup("up_block_type", type, "CrossAttnUpBlock2D", "UpBlock2D");
}

UNetDownBlockImpl::UNetDownBlockImpl(const UNetBlockOptions& o) {
    auto resnets = register_module("resnets", torch::nn::ModuleList());
    torch::nn::ModuleList attentions{nullptr};
    if (o.cross_attention)
        attentions = register_module("attentions", torch::nn::ModuleList());
    for (int64_t i = 0; i < o.layers; ++i) {
        resnets_.push_back(ResnetBlock2D(resnet_options(o, i == 0 ? o.in_channels : o.out_channels, o.out_channels)));
        resnets->push_back(resnets_.back());
        if (o.cross_attention) {
            attentions_.push_back(transformer(o, o.out_channels));
            attentions->push_back(attentions_.back());
        }
    }
    if (o.resample) {
        down_ = Downsample2D(o.out_channels, o.downsample_padding);
        register_module("downsamplers", torch::nn::ModuleList())->push_back(down_);
    }
}

torch::Tensor UNetDownBlockImpl::forward(torch::Tensor x, const torch::Tensor& temb, const torch::Tensor& context,
                                         std::vector<torch::Tensor>& skips, const ModelHooks* hooks) {
    for (size_t i = 0; i < resnets_.size(); ++i) {
        x = resnets_[i]->forward(x, temb, hooks);
        if (!attentions_.empty())
            x = attentions_[i]->forward(x, context, hooks);
        skips.push_back(x);
    }
    if (down_) {
        x = down_(x);
        skips.push_back(x);
    }
    if (hooks)
        hooks->tap(hook_name(), x);
    return x;
}

UNetUpBlockImpl::UNetUpBlockImpl(const UNetBlockOptions& o) {
    auto resnets = register_module("resnets", torch::nn::ModuleList());
    torch::nn::ModuleList attentions{nullptr};
    if (o.cross_attention)
        attentions = register_module("attentions", torch::nn::ModuleList());
    for (int64_t i = 0; i < o.layers; ++i) {
        // The skips consumed here, last first: the down block's resnet outputs (out channels) and,
        // for the last resnet, the previous down block's output (in channels).
        const int64_t skip = i == o.layers - 1 ? o.in_channels : o.out_channels;
        const int64_t from_below = i == 0 ? o.prev_out_channels : o.out_channels;
        resnets_.push_back(ResnetBlock2D(resnet_options(o, from_below + skip, o.out_channels)));
        resnets->push_back(resnets_.back());
        if (o.cross_attention) {
            attentions_.push_back(transformer(o, o.out_channels));
            attentions->push_back(attentions_.back());
        }
    }
    if (o.resample) {
        up_ = Upsample2D(o.out_channels);
        register_module("upsamplers", torch::nn::ModuleList())->push_back(up_);
    }
}

torch::Tensor UNetUpBlockImpl::forward(torch::Tensor x, const torch::Tensor& temb, const torch::Tensor& context,
                                       std::vector<torch::Tensor>& skips, c10::IntArrayRef upsample_size,
                                       const ModelHooks* hooks) {
    for (size_t i = 0; i < resnets_.size(); ++i) {
        x = torch::cat({x, skips.back()}, 1);
        skips.pop_back();
        x = resnets_[i]->forward(x, temb, hooks);
        if (!attentions_.empty())
            x = attentions_[i]->forward(x, context, hooks);
    }
    if (up_)
        x = up_->forward(x, upsample_size);
    if (hooks)
        hooks->tap(hook_name(), x);
    return x;
}

UNetMidBlockImpl::UNetMidBlockImpl(const UNetBlockOptions& o) {
    auto resnets = register_module("resnets", torch::nn::ModuleList());
    auto attentions = register_module("attentions", torch::nn::ModuleList());
    const int64_t c = o.in_channels;
    for (int64_t i = 0; i <= o.layers; ++i) {
        if (i > 0) {
            attentions_.push_back(transformer(o, c));
            attentions->push_back(attentions_.back());
        }
        resnets_.push_back(ResnetBlock2D(resnet_options(o, c, c)));
        resnets->push_back(resnets_.back());
    }
}

torch::Tensor UNetMidBlockImpl::forward(torch::Tensor x, const torch::Tensor& temb, const torch::Tensor& context,
                                        const ModelHooks* hooks) {
    x = resnets_[0]->forward(x, temb, hooks);
    for (size_t i = 0; i < attentions_.size(); ++i) {
        x = attentions_[i]->forward(x, context, hooks);
        x = resnets_[i + 1]->forward(x, temb, hooks);
    }
    if (hooks)
        hooks->tap(hook_name(), x);
    return x;
}

} // namespace sdl
