#include "core/models/transformer_2d.h"

#include "core/models/fused_ops.h"

namespace sdl {

BasicTransformerBlockImpl::BasicTransformerBlockImpl(const TransformerOptions& o) {
    const int64_t dim = o.channels;
    AttentionOptions self;
    self.query_dim = dim;
    self.heads = o.heads;
    self.head_dim = o.head_dim;
    self.upcast = o.upcast_attention;
    AttentionOptions cross = self;
    cross.context_dim = o.context_dim;

    norm1 = register_module("norm1", LayerNorm(dim, 1e-5));
    attn1 = register_module("attn1", Attention(self));
    norm2 = register_module("norm2", LayerNorm(dim, 1e-5));
    attn2 = register_module("attn2", Attention(cross));
    norm3 = register_module("norm3", LayerNorm(dim, 1e-5));
    // diffusers' FeedForward is net = [GEGLU, Dropout, Linear]: the keys skip index 1.
    auto ff = register_module("ff", std::make_shared<torch::nn::Module>());
    auto net = ff->register_module("net", std::make_shared<torch::nn::Module>());
    const int64_t inner = dim * 4;
    auto geglu = net->register_module("0", std::make_shared<torch::nn::Module>());
    ff_proj = geglu->register_module("proj", Linear(dim, inner * 2));
    ff_out = net->register_module("2", Linear(inner, dim));
}

torch::Tensor BasicTransformerBlockImpl::forward(const torch::Tensor& x, const torch::Tensor& context,
                                                 const ModelHooks* hooks, int64_t height, int64_t width) {
    // Residuals added in place into each sublayer's fresh output; x and h are only read.
    auto h = attn1(norm1(x)).add_(x);
    if (hooks && hooks->attention) {
        AttentionProbs rec{attn2->hook_name(), height, width, {}};
        h = attn2(norm2(h), context, &rec.probs).add_(h);
        hooks->attention->push_back(std::move(rec));
    } else {
        h = attn2(norm2(h), context).add_(h);
    }
    // GEGLU: the projection's first half is the value, the second half its exact-GELU gate.
    const auto proj = ff_proj(norm3(h));  // [B, HW, 2 * inner]: value, gate
    if (row_kernels_apply(proj)) {
        h = ff_out(geglu(proj)).add_(h);
    } else {
        const auto parts = proj.chunk(2, -1);
        h = ff_out(torch::gelu(parts[1]).mul_(parts[0])).add_(h);
    }
    if (hooks)
        hooks->tap(hook_name(), h);
    return h;
}

Transformer2DModelImpl::Transformer2DModelImpl(const TransformerOptions& o) : linear_(o.linear_projection) {
    const int64_t inner = o.heads * o.head_dim;
    // eps 1e-6 here (not the U-Net's norm_eps): diffusers hard-codes it for this norm.
    norm = register_module("norm", GroupNorm(o.groups, o.channels, 1e-6));
    if (linear_)
        proj_in_linear = register_module("proj_in", Linear(o.channels, inner));
    else
        proj_in_conv = register_module("proj_in", Conv2d(o.channels, inner, 1));
    auto blocks = register_module("transformer_blocks", torch::nn::ModuleList());
    for (int64_t i = 0; i < o.layers; ++i) {
        blocks_.emplace_back(o);
        blocks->push_back(blocks_.back());
    }
    if (linear_)
        proj_out_linear = register_module("proj_out", Linear(inner, o.channels));
    else
        proj_out_conv = register_module("proj_out", Conv2d(inner, o.channels, 1));
}

torch::Tensor Transformer2DModelImpl::forward(const torch::Tensor& x, const torch::Tensor& context,
                                              const ModelHooks* hooks) {
    const int64_t b = x.size(0), hh = x.size(2), ww = x.size(3);
    auto h = norm(x);
    // [B, C, H, W] <-> [B, H*W, C]: the tokens of the transformer are the latent pixels.
    const auto to_tokens = [&](const torch::Tensor& t) { return t.permute({0, 2, 3, 1}).reshape({b, hh * ww, -1}); };
    const auto to_map = [&](const torch::Tensor& t) { return t.reshape({b, hh, ww, -1}).permute({0, 3, 1, 2}); };
    h = linear_ ? proj_in_linear(to_tokens(h)) : to_tokens(proj_in_conv(h));
    for (auto& block : blocks_)
        h = block->forward(h, context, hooks, hh, ww);
    h = linear_ ? to_map(proj_out_linear(h)) : proj_out_conv(to_map(h).contiguous(x.suggest_memory_format()));
    auto out = h.add_(x);
    if (hooks)
        hooks->tap(hook_name(), out);
    return out;
}

} // namespace sdl
