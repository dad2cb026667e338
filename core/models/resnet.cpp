#include "core/models/resnet.h"

namespace sdl {

ResnetBlock2DImpl::ResnetBlock2DImpl(const ResnetOptions& o) : output_scale_factor_(o.output_scale_factor) {
    norm1 = register_module("norm1", GroupNorm(o.groups, o.in_channels, o.eps));
    conv1 = register_module("conv1", Conv2d(o.in_channels, o.out_channels, 3, 1, 1));
    if (o.temb_channels > 0)
        time_emb_proj = register_module("time_emb_proj", Linear(o.temb_channels, o.out_channels));
    norm2 = register_module("norm2", GroupNorm(o.groups, o.out_channels, o.eps));
    conv2 = register_module("conv2", Conv2d(o.out_channels, o.out_channels, 3, 1, 1));
    if (o.in_channels != o.out_channels)
        conv_shortcut = register_module("conv_shortcut", Conv2d(o.in_channels, o.out_channels, 1));
}

torch::Tensor ResnetBlock2DImpl::forward(const torch::Tensor& x, const torch::Tensor& temb, const ModelHooks* hooks) {
    // In place on the block's own intermediates: no new buffer per elementwise step. x is the
    // caller's (a skip the up path still needs), so it is only read.
    auto h = conv1(norm1->forward_silu(x));
    if (time_emb_proj && temb.defined())
        h.add_(time_emb_proj(torch::silu(temb)).unsqueeze(-1).unsqueeze(-1));  // [B, out, 1, 1]
    h = conv2(norm2->forward_silu_(h));  // h is this block's own, tapped nowhere
    auto out = conv_shortcut ? conv_shortcut(x).add_(h) : h.add_(x);
    if (output_scale_factor_ != 1.0)
        out.div_(output_scale_factor_);
    if (hooks)
        hooks->tap(hook_name(), out);
    return out;
}

Downsample2DImpl::Downsample2DImpl(int64_t channels, int64_t padding) : padding_(padding) {
    conv = register_module("conv", Conv2d(channels, channels, 3, 2, padding));
}

torch::Tensor Downsample2DImpl::forward(const torch::Tensor& x) {
    return conv(padding_ == 0 ? torch::constant_pad_nd(x, {0, 1, 0, 1}, 0) : x);
}

Upsample2DImpl::Upsample2DImpl(int64_t channels) {
    conv = register_module("conv", Conv2d(channels, channels, 3, 1, 1));
}

torch::Tensor Upsample2DImpl::forward(const torch::Tensor& x, c10::IntArrayRef size) {
    const std::vector<int64_t> out_size =
        size.empty() ? std::vector<int64_t>{x.size(2) * 2, x.size(3) * 2} : size.vec();
    return conv(torch::upsample_nearest2d(x, out_size));
}

} // namespace sdl
