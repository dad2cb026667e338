#include "core/models/clip_text_model.h"

#include "core/models/attention.h"
#include "core/util/error.h"

namespace sdl {

ClipAttentionImpl::ClipAttentionImpl(const ClipTextConfig& c) : heads_(c.num_attention_heads) {
    const int64_t d = c.hidden_size;
    k_proj = register_module("k_proj", Linear(d, d));
    v_proj = register_module("v_proj", Linear(d, d));
    q_proj = register_module("q_proj", Linear(d, d));
    out_proj = register_module("out_proj", Linear(d, d));
}

torch::Tensor ClipAttentionImpl::forward(const torch::Tensor& x) {
    const int64_t b = x.size(0), l = x.size(1), d = x.size(2);
    const auto split = [&](const torch::Tensor& t) { return t.view({b, l, heads_, d / heads_}).transpose(1, 2); };
    const auto h = scaled_attention(split(q_proj(x)), split(k_proj(x)), split(v_proj(x)), /*causal=*/true);
    return out_proj(h.transpose(1, 2).reshape({b, l, d}));
}

ClipEncoderLayerImpl::ClipEncoderLayerImpl(const ClipTextConfig& c) : quick_gelu_(c.hidden_act == "quick_gelu") {
    self_attn = register_module("self_attn", ClipAttention(c));
    layer_norm1 = register_module("layer_norm1", LayerNorm(c.hidden_size, c.layer_norm_eps));
    auto mlp = register_module("mlp", std::make_shared<torch::nn::Module>());
    fc1 = mlp->register_module("fc1", Linear(c.hidden_size, c.intermediate_size));
    fc2 = mlp->register_module("fc2", Linear(c.intermediate_size, c.hidden_size));
    layer_norm2 = register_module("layer_norm2", LayerNorm(c.hidden_size, c.layer_norm_eps));
}

torch::Tensor ClipEncoderLayerImpl::forward(const torch::Tensor& x) {
    // Pre-LN: each sub-block normalises its input and adds to the residual stream.
    auto h = x + self_attn(layer_norm1(x));
    auto m = fc1(layer_norm2(h));
    // quick_gelu is OpenAI CLIP's sigmoid approximation, which SD 1.x's encoder was trained with.
    m = quick_gelu_ ? m * torch::sigmoid(1.702 * m) : torch::gelu(m);
    return h + fc2(m);
}

ClipTextModelImpl::ClipTextModelImpl(const ClipTextConfig& c) : config_(c) {
    auto text_model = register_module("text_model", std::make_shared<torch::nn::Module>());
    auto embeddings = text_model->register_module("embeddings", std::make_shared<torch::nn::Module>());
    token_embedding = embeddings->register_module("token_embedding", Embedding(c.vocab_size, c.hidden_size));
    position_embedding =
        embeddings->register_module("position_embedding", Embedding(c.max_position_embeddings, c.hidden_size));
    auto encoder = text_model->register_module("encoder", std::make_shared<torch::nn::Module>());
    auto layers = encoder->register_module("layers", torch::nn::ModuleList());
    for (int64_t i = 0; i < c.num_hidden_layers; ++i) {
        layers_.emplace_back(c);
        layers->push_back(layers_.back());
    }
    final_layer_norm = text_model->register_module("final_layer_norm", LayerNorm(c.hidden_size, c.layer_norm_eps));
}

ClipTextOutput ClipTextModelImpl::forward(const torch::Tensor& input_ids) {
    if (input_ids.dim() != 2 || input_ids.size(1) > config_.max_position_embeddings)
        throw Error("text encoder: input_ids must be [batch, <= " + std::to_string(config_.max_position_embeddings) +
                    "], found " + c10::str(input_ids.sizes()));
    const auto ids = input_ids.to(position_embedding->weight.device(), torch::kLong);
    // Positions are 0..L-1 for every prompt, so the table's first L rows broadcast over the batch.
    ClipTextOutput out;
    auto h = embed_tokens(ids) + position_embedding->weight.slice(0, 0, ids.size(1));  // [B, L, D]
    out.hidden_states.push_back(h);
    for (auto& layer : layers_) {
        h = layer(h);
        out.hidden_states.push_back(h);
    }
    out.last_hidden_state = final_layer_norm(h);
    return out;
}

void ClipTextModelImpl::set_extra_tokens(int64_t first_id, const torch::Tensor& vectors) {
    if (!vectors.defined()) {
        extra_tokens_ = torch::Tensor();
        return;
    }
    if (vectors.dim() != 2 || vectors.size(1) != config_.hidden_size)
        throw Error("text encoder: embedding vectors must be [n, " + std::to_string(config_.hidden_size) +
                    "] (its hidden size), found " + c10::str(vectors.sizes()));
    extra_first_id_ = first_id;
    extra_tokens_ = vectors.to(token_embedding->weight.device(), token_embedding->weight.scalar_type());
}

torch::Tensor ClipTextModelImpl::embed_tokens(const torch::Tensor& ids) {
    if (!extra_tokens_.defined())
        return token_embedding(ids);
    const int64_t extra_count = extra_tokens_.size(0);
    if (ids.max().item<int64_t>() >= extra_first_id_ + extra_count)
        throw Error("text encoder: a token id is past the " + std::to_string(extra_count) +
                    " embedding vectors loaded (the prompt was tokenized with other embeddings)");
    // A selection, not arithmetic: each position takes its row unchanged, so a vector equal to a
    // vocabulary row encodes exactly like that token.
    const auto extra = ids >= extra_first_id_;                                   // [B, L]
    const auto base = token_embedding(ids.masked_fill(extra, 0));               // [B, L, D]
    const auto picked = torch::embedding(extra_tokens_, (ids - extra_first_id_).clamp_min(0));  // [B, L, D]
    return torch::where(extra.unsqueeze(-1), picked, base);
}

torch::Tensor ClipTextModelImpl::encode(const torch::Tensor& input_ids, int clip_skip) {
    const int64_t available = static_cast<int64_t>(layers_.size());
    if (clip_skip < 1 || clip_skip > available)
        throw Error("clip skip must be between 1 and " + std::to_string(available) + " (the encoder's layers), found " +
                    std::to_string(clip_skip));
    auto out = forward(input_ids);
    return clip_skip == 1 ? out.last_hidden_state : out.hidden_states[out.hidden_states.size() - clip_skip];
}

} // namespace sdl
