#include "core/pipeline/textual_inversion.h"

namespace sdl {

ClipTokenizer tokenizer_with_embeddings(const ClipTokenizer& base, const std::vector<EmbeddingFile>& files) {
    std::vector<EmbeddingTrigger> triggers;
    for (const auto& f : files)
        triggers.push_back({f.trigger, static_cast<int>(f.vectors.size(0))});
    return base.with_embeddings(triggers);
}

ClipTokenizer apply_embeddings(const ClipTokenizer& base, ClipTextModel& encoder, const std::vector<EmbeddingFile>& files) {
    ClipTokenizer tokenizer = tokenizer_with_embeddings(base, files);
    std::vector<torch::Tensor> vectors;
    for (const auto& f : files)
        vectors.push_back(f.vectors);
    encoder->set_extra_tokens(tokenizer.first_embedding_id(), vectors.empty() ? torch::Tensor() : torch::cat(vectors));
    return tokenizer;
}

} // namespace sdl
