// sdlens-cli tokenize [--model PATH] [--embedding FILE]... PROMPT...
// One JSON object per prompt and line: what the text encoder will be fed, token by token.
#include "app/cli/command.h"
#include "app/cli/runtime_flags.h"
#include "core/io/embedding_files.h"
#include "core/io/hf_cache.h"
#include "core/pipeline/textual_inversion.h"
#include "core/tokenizer/clip_tokenizer.h"
#include "core/util/error.h"

#include <nlohmann/json.hpp>

#include <filesystem>
#include <iostream>

namespace fs = std::filesystem;

namespace {

// A diffusers folder carries its own tokenizer; a single-file checkpoint (or a folder without
// tokenizer files) has none, and SD 1.x always used OpenAI's vocabulary, so the bundled copy is
// the right one there. Looked up directly rather than through the model loader: tokenizing must
// not need the weights to be readable.
sdl::ClipTokenizer tokenizer_for(const std::optional<std::string>& model) {
    if (!model)
        return sdl::ClipTokenizer::bundled();
    std::error_code ec;
    const std::string root = sdl::local_model_path(*model);
    const fs::path dir = fs::path(root) / "tokenizer";
    const fs::path vocab = dir / "vocab.json", merges = dir / "merges.txt", json = dir / "tokenizer.json";
    if (fs::is_regular_file(vocab, ec) && fs::is_regular_file(merges, ec))
        return sdl::ClipTokenizer::from_vocab_merges(vocab.string(), merges.string());
    if (fs::is_regular_file(json, ec))
        return sdl::ClipTokenizer::from_tokenizer_json(json.string());
    return sdl::ClipTokenizer::bundled();
}

int run_tokenize(sdl::cli::Args& args) {
    const auto model = args.get("--model");
    const auto embedding_paths = sdl::cli::embedding_flags(args);
    const std::vector<std::string> prompts = args.positionals();
    args.finish();
    if (prompts.empty())
        throw sdl::UsageError(
            "expected at least one PROMPT (sdlens-cli tokenize [--model PATH] [--embedding FILE]... PROMPT...)");
    // No text encoder here, so no width to check the vectors against: their count is what tokenizing needs.
    const sdl::ClipTokenizer tokenizer =
        sdl::tokenizer_with_embeddings(tokenizer_for(model), sdl::read_embedding_files(embedding_paths, 0));
    for (const auto& prompt : prompts) {
        const sdl::TokenizedPrompt t = tokenizer.encode(prompt);
        // Ordered so that a reader sees the prompt first and the long id lists after it.
        nlohmann::ordered_json line = {
            {"prompt", t.prompt},
            {"input_ids", t.input_ids},
            {"attention_mask", t.attention_mask},
            {"tokens", t.tokens},
            {"untruncated_ids", t.untruncated_ids},
            {"truncated", t.truncated},
        };
        if (!embedding_paths.empty())
            line["embedding"] = t.embedding;
        // A prompt is whatever bytes the shell passed; invalid UTF-8 is shown as U+FFFD rather
        // than aborting the whole run.
        std::cout << line.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace) << '\n';
    }
    return 0;
}

sdl::cli::Register reg{"tokenize", "Tokenize prompts with CLIP's tokenizer (one JSON line each)", {},
                       run_tokenize};

} // namespace
