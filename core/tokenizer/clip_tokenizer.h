#pragma once
// CLIP's byte-level BPE tokenizer, exactly as transformers' CLIPTokenizer: text clean-up and
// whitespace collapse, lower-casing, CLIP's pre-tokenization pattern, byte-to-unicode table, merges
// by rank, "</w>" word ends. Torch-free and Qt-free: the GUI re-tokenizes on every key press.
#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

namespace sdl {

struct TokenizedPrompt {
    std::string prompt;
    std::vector<int64_t> input_ids;        // always max_length (77): BOS ... EOS, padded with EOS
    std::vector<int64_t> attention_mask;   // 1 for BOS..EOS of the (possibly truncated) ids, 0 for pad
    std::vector<int64_t> untruncated_ids;  // BOS ... EOS, any length
    std::vector<std::string> tokens;       // token strings of untruncated_ids ("dog</w>")
    bool truncated = false;
    // Per position of input_ids: the trigger of the textual-inversion embedding whose vector stands
    // there, "" elsewhere (all "" without embeddings).
    std::vector<std::string> embedding;
};

// A textual-inversion embedding as the tokenizer sees it: the word that stands for it and how many
// token positions its vectors take.
struct EmbeddingTrigger {
    std::string trigger;
    int vectors = 0;
};

class ClipTokenizer {
public:
    static constexpr int64_t kBos = 49406;
    static constexpr int64_t kEos = 49407;
    static constexpr int kMaxLength = 77;

    // A model's tokenizer/vocab.json + merges.txt.
    static ClipTokenizer from_vocab_merges(const std::string& vocab_json, const std::string& merges_txt);
    // A model's tokenizer/tokenizer.json (Hugging Face tokenizers format).
    static ClipTokenizer from_tokenizer_json(const std::string& tokenizer_json);
    // OpenAI's bpe_simple_vocab_16e6.txt.gz (the bundled resources/clip copy).
    static ClipTokenizer from_bpe_gz(const std::string& path);
    static ClipTokenizer bundled();

    // Text is normalized as transformers 5 does (NFC, lower-case). Invalid UTF-8 never throws:
    // each maximal invalid byte sequence reads as U+FFFD, as Python's errors="replace". Special
    // tokens typed in the prompt ("<|endoftext|>", exactly so) become their ids. Thread-safe.
    TokenizedPrompt encode(const std::string& prompt) const;
    std::vector<int64_t> encode_ids(const std::string& text) const;  // no BOS/EOS, no truncation
    const std::string& token_string(int64_t id) const;                // throws on unknown id
    size_t vocab_size() const;

    // A copy that reads these triggers instead of whatever embeddings this one read: a trigger, as a
    // whole word and in any case (matched in the lower-cased text, before pre-tokenization, so
    // "<cat-toy>" stays whole), becomes its vectors' ids, which follow the vocabulary in the order
    // given: first_embedding_id(), first_embedding_id() + 1, ... A trigger that is also a word of the
    // vocabulary reads as the embedding. Throws sdl::Error for an empty trigger, one with whitespace,
    // no vectors, or two triggers that are equal once lower-cased.
    ClipTokenizer with_embeddings(const std::vector<EmbeddingTrigger>& embeddings) const;
    int64_t first_embedding_id() const;
    // Writes the vocabulary as a model folder's tokenizer/vocab.json + merges.txt (make-model).
    void save_vocab_merges(const std::string& vocab_json, const std::string& merges_txt) const;

private:
    struct Impl;
    struct Embeddings;
    std::shared_ptr<const Impl> impl_;
    std::shared_ptr<const Embeddings> embeddings_;  // null without embeddings
};

} // namespace sdl
