// The CLIP tokenizer on arbitrary bytes (invalid UTF-8, control characters, huge words): the GUI
// re-tokenizes on every key press, so it must never throw or crash, and its output must keep the
// shape the text encoder relies on.
#include "core/tokenizer/clip_tokenizer.h"
#include "fuzz/harness.h"

#include <string>

using namespace sdl;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    static const ClipTokenizer tok = ClipTokenizer::bundled();
    const std::string prompt(reinterpret_cast<const char*>(data), size);
    // A prompt is text the user typed: even invalid bytes must tokenize, not raise an error.
    TokenizedPrompt t;
    try {
        t = tok.encode(prompt);
    } catch (const std::exception& e) {
        fuzz::fail("encode() threw:", e.what());
    }
    const auto n = static_cast<size_t>(ClipTokenizer::kMaxLength);
    fuzz::check(t.input_ids.size() == n && t.attention_mask.size() == n, "ids/mask are not 77 long");
    fuzz::check(t.input_ids.front() == ClipTokenizer::kBos, "ids do not start with BOS");
    fuzz::check(t.untruncated_ids.size() >= 2 && t.untruncated_ids.front() == ClipTokenizer::kBos &&
                    t.untruncated_ids.back() == ClipTokenizer::kEos,
                "untruncated ids are not BOS ... EOS");
    fuzz::check(t.truncated == (t.untruncated_ids.size() > n), "truncated flag disagrees with the length");
    fuzz::check(t.tokens.size() == t.untruncated_ids.size(), "one token string per id");
    for (size_t i = 0; i < t.untruncated_ids.size(); ++i) {
        const int64_t id = t.untruncated_ids[i];
        fuzz::check(id >= 0 && static_cast<size_t>(id) < tok.vocab_size(), "id outside the vocabulary");
        fuzz::check(tok.token_string(id) == t.tokens[i], "token string differs from the vocabulary's");
    }
    size_t kept = 0;
    for (size_t i = 0; i < n; ++i) {
        kept += t.attention_mask[i] == 1;
        fuzz::check(t.attention_mask[i] == (i < kept ? 1 : 0), "mask is not ones then zeros");
    }
    fuzz::check(kept == std::min(n, t.untruncated_ids.size()), "mask length differs from the kept ids");
    fuzz::check(t.input_ids[kept - 1] == ClipTokenizer::kEos, "kept ids do not end with EOS");
    for (size_t i = kept; i < n; ++i)
        fuzz::check(t.input_ids[i] == ClipTokenizer::kEos, "padding is not EOS");
    const auto ids = tok.encode_ids(prompt);
    fuzz::check(ids.size() + 2 == t.untruncated_ids.size(), "encode_ids() differs from encode()");
    return 0;
}
