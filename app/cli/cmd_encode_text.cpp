// sdlens-cli encode-text --model PATH [--clip-skip N] [--device D] [--dtype T] [--lora FILE[:STRENGTH]]...
//                         [--embedding FILE]... --out FILE PROMPT...
// The text encoder's output for each prompt, as the pipeline conditions on it.
#include "app/cli/command.h"
#include "app/cli/runtime_flags.h"
#include "core/io/model_files.h"
#include "core/io/tensor_io.h"
#include "core/models/load.h"
#include "core/models/runtime.h"
#include "core/pipeline/textual_inversion.h"
#include "core/tokenizer/clip_tokenizer.h"
#include "core/util/error.h"

namespace {

// The model's own tokenizer files when it has them; SD 1.x always used OpenAI's vocabulary, so
// single files (which carry none) get the bundled copy.
sdl::ClipTokenizer tokenizer_for(const sdl::TokenizerFiles& t) {
    if (!t.vocab_json.empty() && !t.merges_txt.empty())
        return sdl::ClipTokenizer::from_vocab_merges(t.vocab_json, t.merges_txt);
    if (!t.tokenizer_json.empty())
        return sdl::ClipTokenizer::from_tokenizer_json(t.tokenizer_json);
    return sdl::ClipTokenizer::bundled();
}

int run_encode_text(sdl::cli::Args& args) {
    const std::string model = args.required("--model");
    const std::string out = args.required("--out");
    const int clip_skip = args.get_int("--clip-skip", 1);
    auto rt = sdl::cli::runtime_options(args);
    rt.loras = sdl::cli::lora_flags(args);
    rt.embeddings = sdl::cli::embedding_flags(args);
    const std::vector<std::string> prompts = args.positionals();
    args.finish();
    if (prompts.empty())
        throw sdl::UsageError("usage: sdlens-cli encode-text --model PATH [--clip-skip N] --out FILE PROMPT...");
    if (clip_skip < 1)
        throw sdl::UsageError("--clip-skip must be 1 or more, got " + std::to_string(clip_skip));
    const auto device = sdl::parse_device(rt.device);
    const auto dtype = sdl::parse_dtype(rt.dtype, device);
    if (rt.threads > 0)
        at::set_num_threads(rt.threads);

    const auto files = sdl::open_model_files(model);
    torch::NoGradGuard no_grad;
    auto encoder = sdl::load_text_encoder(files.text_encoder, dtype, device);
    sdl::cli::apply_loras_alone(rt.loras, encoder.get(), nullptr);
    const auto embedding_files = sdl::read_embedding_files(rt.embeddings, encoder->config().hidden_size);
    const auto tokenizer = sdl::apply_embeddings(tokenizer_for(files.tokenizer), encoder, embedding_files);
    std::vector<int64_t> ids;
    for (const auto& p : prompts) {
        const auto t = tokenizer.encode(p);
        ids.insert(ids.end(), t.input_ids.begin(), t.input_ids.end());
    }
    const auto input_ids = torch::tensor(ids, torch::kLong).view({static_cast<int64_t>(prompts.size()), -1});

    const auto embeddings = encoder->encode(input_ids.to(device), clip_skip);  // [N, 77, D]
    std::map<std::string, std::string> metadata{
        {"model", model}, {"clip_skip", std::to_string(clip_skip)}, {"dtype", sdl::dtype_label(dtype)}};
    if (!rt.loras.empty())
        metadata["loras"] = sdl::cli::loras_json(rt.loras);
    if (!embedding_files.empty())
        metadata["embeddings"] =
            nlohmann::json(rt.embeddings).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    sdl::save_tensors(out, {{"embeddings", embeddings.to(torch::kCPU, torch::kFloat)}, {"input_ids", input_ids}},
                      metadata);
    return 0;
}

sdl::cli::Register reg{"encode-text", "Text embeddings [N,77,D] of prompts (safetensors: embeddings, input_ids)", {},
                       run_encode_text};

} // namespace
