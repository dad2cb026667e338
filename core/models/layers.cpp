#include "core/models/layers.h"

#include "core/models/fused_ops.h"

namespace sdl {

LinearImpl::LinearImpl(int64_t in_features, int64_t out_features, bool with_bias) {
    weight = register_parameter("weight", torch::empty({out_features, in_features}));
    if (with_bias)
        bias = register_parameter("bias", torch::empty({out_features}));
}

torch::Tensor LinearImpl::forward(const torch::Tensor& x) {
    return torch::linear(x, weight, bias);
}

Conv2dImpl::Conv2dImpl(int64_t in_channels, int64_t out_channels, int64_t kernel, int64_t stride_,
                       int64_t padding_)
    : stride(stride_), padding(padding_) {
    weight = register_parameter("weight", torch::empty({out_channels, in_channels, kernel, kernel}));
    bias = register_parameter("bias", torch::empty({out_channels}));
}

torch::Tensor Conv2dImpl::forward(const torch::Tensor& x) {
    if (onednn_conv_applies(x, weight)) {
        auto y = onednn_conv2d(x, weight, bias, stride, padding, packed_);
        if (packed_only_)
            release_plain_weight(packed_.get(), weight);
        return y;
    }
    restore_plain();
    return torch::conv2d(x, weight, bias, stride, padding);
}

void Conv2dImpl::set_packed_only(bool on) {
    packed_only_ = on;
    if (onednn_cache_stale(packed_.get(), weight))
        packed_.reset();
    if (!on)
        restore_plain();
}

void Conv2dImpl::restore_plain() { restore_plain_weight(packed_.get(), weight); }

GroupNormImpl::GroupNormImpl(int64_t groups_, int64_t channels, double eps_) : groups(groups_), eps(eps_) {
    weight = register_parameter("weight", torch::empty({channels}));
    bias = register_parameter("bias", torch::empty({channels}));
}

torch::Tensor GroupNormImpl::forward(const torch::Tensor& x) {
    if (group_norm_nhwc_applies(x))
        return group_norm_nhwc(x, groups, weight, bias, eps, false);
    return torch::group_norm(x, groups, weight, bias, eps);
}

torch::Tensor GroupNormImpl::forward_silu_(const torch::Tensor& x) {
    if (group_norm_nhwc_applies(x))
        return group_norm_nhwc(x, groups, weight, bias, eps, true, {}, true);
    return forward_silu(x);
}

torch::Tensor GroupNormImpl::forward_silu(const torch::Tensor& x) {
    if (group_norm_nhwc_applies(x))
        return group_norm_nhwc(x, groups, weight, bias, eps, true);
    auto y = torch::group_norm(x, groups, weight, bias, eps);
    return torch::silu_(y);
}

LayerNormImpl::LayerNormImpl(int64_t dim, double eps_) : eps(eps_) {
    weight = register_parameter("weight", torch::empty({dim}));
    bias = register_parameter("bias", torch::empty({dim}));
}

torch::Tensor LayerNormImpl::forward(const torch::Tensor& x) {
    if (row_kernels_apply(x))
        return layer_norm_rows(x, weight, bias, eps);
    return torch::layer_norm(x, {x.size(-1)}, weight, bias, eps);
}

EmbeddingImpl::EmbeddingImpl(int64_t count, int64_t dim) {
    weight = register_parameter("weight", torch::empty({count, dim}));
}

torch::Tensor EmbeddingImpl::forward(const torch::Tensor& ids) {
    return torch::embedding(weight, ids);
}

void set_packed_only(torch::nn::Module& m, bool on) {
    for (const auto& sub : m.modules())
        if (auto* conv = dynamic_cast<Conv2dImpl*>(sub.get()))
            conv->set_packed_only(on);
}

void restore_plain_weights(torch::nn::Module& m) {
    for (const auto& sub : m.modules())
        if (auto* conv = dynamic_cast<Conv2dImpl*>(sub.get()))
            conv->restore_plain();
}

void use_channels_last(torch::nn::Module& m) {
    torch::NoGradGuard no_grad;
    restore_plain_weights(m);
    for (auto& p : m.parameters())
        if (p.dim() == 4)
            p.set_data(p.contiguous(torch::MemoryFormat::ChannelsLast));
}

} // namespace sdl
