// Reading a textual-inversion file: the three layouts, and the refusal of other families, LoRAs and
// malformed tensors. The input is a tensor list (fuzz/tensor_list.h). An accepted file's trigger must
// then tokenize as exactly its vectors.
#include "core/io/embedding_files.h"
#include "core/tokenizer/clip_tokenizer.h"
#include "fuzz/harness.h"
#include "fuzz/tensor_list.h"

using namespace sdl;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    static const ClipTokenizer tok = ClipTokenizer::bundled();
    const auto made = fuzz::tensor_list_file(data, size);
    if (!made)
        return 0;
    EmbeddingFile e;
    if (!fuzz::accepts([&] { e = read_embedding_file(made->path()); }))
        return 0;
    fuzz::check(e.vectors.dim() == 2 && e.vectors.scalar_type() == torch::kFloat32, "vectors are not [n, D] float32");
    const int64_t n = e.vectors.size(0), width = e.vectors.size(1);
    fuzz::check(n >= 1 && n <= ClipTokenizer::kMaxLength - 2, "vector count outside 1..75");
    fuzz::check(width > 0 && width != 1024 && width != 1280, "an empty or other family's width was accepted");
    fuzz::check(!e.trigger.empty(), "empty trigger");
    ClipTokenizer with;
    if (!fuzz::accepts([&] { with = tok.with_embeddings({{e.trigger, static_cast<int>(n)}}); }))
        return 0;
    const auto ids = with.encode_ids(e.trigger);
    fuzz::check(static_cast<int64_t>(ids.size()) == n, "the trigger does not tokenize as its vector count");
    for (int64_t k = 0; k < n; ++k)
        fuzz::check(ids[k] == with.first_embedding_id() + k, "the trigger's ids are not its vectors'");
    return 0;
}
