#include "core/models/attention.h"

#include "core/models/flash_attention.h"

#include <torch/version.h>

#include <cmath>
#include <limits>

namespace sdl {
namespace {

// Largest score matrix materialised at once by the explicit path; queries are processed in
// chunks below it (SD 1.5 at 512x512, batch 2 with guidance: 4096 queries x 4096 keys x 8 heads
// x 4 bytes x 2 = 1 GiB unchunked).
constexpr int64_t kScoreBudgetBytes = int64_t{256} << 20;

// [B, heads, L, d] -> [B*heads, L, d]: bmm takes one batch dimension. Copies once when the heads
// are a transposed view of a [B, L, heads*d] projection, which bmm would otherwise copy per call.
torch::Tensor fold_heads(const torch::Tensor& t) {
    return t.reshape({-1, t.size(-2), t.size(-1)});
}

// q [N, Lq, d], k [N, Lk, d] -> [N, Lq, Lk].
torch::Tensor probabilities(const torch::Tensor& q, const torch::Tensor& k, bool causal, int64_t q_offset,
                            bool upcast) {
    // The 1/sqrt(d) scale goes on q (Lq x d values) rather than on the scores (Lq x Lk): one pass
    // over a tensor d/Lk the size.
    const double scale = 1.0 / std::sqrt(static_cast<double>(q.size(-1)));
    const auto qs = (upcast ? q.to(torch::kFloat) : q) * scale;
    const auto ks = upcast ? k.to(torch::kFloat) : k;
    auto scores = torch::bmm(qs, ks.transpose(1, 2));
    if (causal) {
        const auto opts = torch::TensorOptions().dtype(torch::kLong).device(q.device());
        const auto qi = torch::arange(q_offset, q_offset + q.size(-2), opts).unsqueeze(1);
        const auto kj = torch::arange(k.size(-2), opts).unsqueeze(0);
        scores.masked_fill_(kj > qi, -std::numeric_limits<double>::infinity());
    }
    // Softmax in float32 as diffusers' upcast_softmax does; cast back for the value product.
    return torch::softmax(scores, -1, torch::kFloat).to(q.scalar_type());
}

} // namespace

torch::Tensor scaled_attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v, bool causal,
                               bool upcast, torch::Tensor* probs) {
    const bool half = q.scalar_type() == torch::kHalf || q.scalar_type() == torch::kBFloat16;
    upcast = upcast && half;
    const int64_t b = q.size(0), heads = q.size(1), lq = q.size(-2);
    const auto unfold = [&](const torch::Tensor& t) { return t.view({b, heads, t.size(-2), t.size(-1)}); };
    if (probs) {
        const auto p = probabilities(fold_heads(q), fold_heads(k), causal, 0, upcast);
        *probs = unfold(p);
        return unfold(torch::bmm(p, fold_heads(v)));
    }
    const CpuAttention cpu = cpu_attention();
    if (q.device().is_cpu() && cpu == CpuAttention::flash &&
        (q.scalar_type() == torch::kFloat || q.scalar_type() == torch::kBFloat16))
        return flash_attention(q, k, v, causal);
#if TORCH_VERSION_MAJOR >= 2
    // On CUDA always (its flash and memory-efficient kernels accumulate in float32 whatever the input
    // type); on the CPU when chosen. An upcast network keeps the explicit float32 softmax below.
    if (!upcast && (q.device().is_cuda() || cpu == CpuAttention::sdpa))
        return at::scaled_dot_product_attention(q, k, v, {}, 0.0, causal);
#endif
    const auto q3 = fold_heads(q), k3 = fold_heads(k), v3 = fold_heads(v);
    // The softmax output is float32 whatever the input dtype, so count 4 bytes per score.
    const int64_t row_bytes = q3.size(0) * k3.size(1) * 4;
    const int64_t chunk = std::max<int64_t>(1, kScoreBudgetBytes / row_bytes);
    if (chunk >= lq)
        return unfold(torch::bmm(probabilities(q3, k3, causal, 0, upcast), v3));
    auto out = q3.new_empty({q3.size(0), lq, v3.size(-1)});
    for (int64_t s = 0; s < lq; s += chunk) {
        const int64_t e = std::min(lq, s + chunk);
        out.slice(1, s, e).copy_(torch::bmm(probabilities(q3.slice(1, s, e), k3, causal, s, upcast), v3));
    }
    return unfold(out);
}

AttentionImpl::AttentionImpl(const AttentionOptions& o) : o_(o) {
    const int64_t inner = o.heads * o.head_dim;
    const int64_t kv_dim = o.context_dim > 0 ? o.context_dim : o.query_dim;
    if (o.spatial_groups > 0)
        group_norm_ = register_module("group_norm", GroupNorm(o.spatial_groups, o.query_dim, o.spatial_eps));
    to_q_ = register_module("to_q", Linear(o.query_dim, inner, o.qkv_bias));
    to_k_ = register_module("to_k", Linear(kv_dim, inner, o.qkv_bias));
    to_v_ = register_module("to_v", Linear(kv_dim, inner, o.qkv_bias));
    // diffusers' to_out is [Linear, Dropout]; dropout has no parameters and is off at inference.
    auto to_out = register_module("to_out", torch::nn::ModuleList());
    to_out_ = Linear(inner, o.query_dim, true);
    to_out->push_back(to_out_);
}

torch::Tensor AttentionImpl::forward(const torch::Tensor& x, const torch::Tensor& context, torch::Tensor* record) {
    const auto& kv_in = context.defined() ? context : x;
    const int64_t b = x.size(0);
    // [B, L, heads*d] -> [B, heads, L, d]
    const auto split = [&](const torch::Tensor& t) { return t.view({b, -1, o_.heads, o_.head_dim}).transpose(1, 2); };
    const auto q = split(to_q_(x));
    const auto k = split(to_k_(kv_in));
    const auto v = split(to_v_(kv_in));
    if (record) {
        // The maps come from the explicit path; the output stays the kernel's, so that recording them
        // leaves the image exactly as it is without (the extra product is [L, 77] by [77, d]: small).
        torch::Tensor probs;
        scaled_attention(q, k, v, false, o_.upcast, &probs);
        *record = probs.to(torch::kFloat).mean(1);  // [B, L, Lk]
    }
    auto h = scaled_attention(q, k, v, false, o_.upcast);  // [B, heads, L, d]
    h = h.transpose(1, 2).reshape({b, -1, o_.heads * o_.head_dim});
    return to_out_(h);
}

torch::Tensor AttentionImpl::forward_spatial(const torch::Tensor& x) {
    const int64_t b = x.size(0), c = x.size(1), hh = x.size(2), ww = x.size(3);
    // reshape, not view: a channels-last x (use_channels_last) is not viewable as [B, C, HW].
    auto h = (*group_norm_)(x).reshape({b, c, hh * ww}).transpose(1, 2);  // [B, HW, C]
    h = forward(h);
    return h.transpose(1, 2).reshape({b, c, hh, ww}) + x;
}

} // namespace sdl
