#pragma once
// CLIP's text transformer as transformers' CLIPTextModel computes it (SD 1.x's text encoder).
// Module names are the transformers state-dict keys ("text_model.encoder.layers.0.self_attn.q_proj").
#include "core/models/configs.h"
#include "core/models/layers.h"

#include <torch/torch.h>

#include <vector>

namespace sdl {

struct ClipTextOutput {
    torch::Tensor last_hidden_state;           // [B, 77, D] after final_layer_norm
    // transformers' output_hidden_states: the embeddings output, then each layer's output (no
    // final norm): num_hidden_layers + 1 tensors of [B, 77, D].
    std::vector<torch::Tensor> hidden_states;
};

class ClipAttentionImpl : public torch::nn::Module {
public:
    explicit ClipAttentionImpl(const ClipTextConfig& c);
    torch::Tensor forward(const torch::Tensor& x);  // [B, L, D], causal
private:
    int64_t heads_;
    Linear k_proj{nullptr}, v_proj{nullptr}, q_proj{nullptr}, out_proj{nullptr};
};
TORCH_MODULE(ClipAttention);

class ClipEncoderLayerImpl : public torch::nn::Module {
public:
    explicit ClipEncoderLayerImpl(const ClipTextConfig& c);
    torch::Tensor forward(const torch::Tensor& x);  // [B, L, D] -> [B, L, D]
private:
    bool quick_gelu_;
    ClipAttention self_attn{nullptr};
    LayerNorm layer_norm1{nullptr}, layer_norm2{nullptr};
    Linear fc1{nullptr}, fc2{nullptr};  // registered under "mlp"
};
TORCH_MODULE(ClipEncoderLayer);

class ClipTextModelImpl : public torch::nn::Module {
public:
    explicit ClipTextModelImpl(const ClipTextConfig& c);
    // input_ids [B, L] int64 (L <= max_position_embeddings) -> last hidden state and all hidden states.
    ClipTextOutput forward(const torch::Tensor& input_ids);
    // What the SD pipeline conditions on: clip_skip 1 = last_hidden_state (after the final norm);
    // N > 1 = hidden_states[-N], the output of the N-th layer from the end, without the final norm.
    torch::Tensor encode(const torch::Tensor& input_ids, int clip_skip = 1);
    const ClipTextConfig& config() const { return config_; }
    // Textual-inversion vectors [k, hidden_size] for the ids first_id .. first_id + k - 1 that the
    // tokenizer gives past its vocabulary (ClipTokenizer::first_embedding_id); an undefined tensor
    // removes them. Kept apart from token_embedding, whose weight stays the file's. Throws sdl::Error
    // for a width other than hidden_size.
    void set_extra_tokens(int64_t first_id, const torch::Tensor& vectors);

private:
    torch::Tensor embed_tokens(const torch::Tensor& ids);  // [B, L] -> [B, L, D]

    ClipTextConfig config_;
    Embedding token_embedding{nullptr}, position_embedding{nullptr};
    int64_t extra_first_id_ = 0;
    torch::Tensor extra_tokens_;  // [k, D] in the weights' dtype and device, or undefined
    std::vector<ClipEncoderLayer> layers_;
    LayerNorm final_layer_norm{nullptr};
};
TORCH_MODULE(ClipTextModel);

} // namespace sdl
