#pragma once
// --device, --dtype and --threads, shared by every command that runs a network; --vae for those that
// decode images; --lora for those that run the text encoder or the U-Net; --embedding for those that
// read prompts; --memory-format, --cuda-graph and --deferred-nan-check (boolean: list them in the
// command's Register) for those that run the whole pipeline.
#include "app/cli/args.h"
#include "core/io/lora_files.h"
#include "core/models/lora.h"
#include "core/pipeline/pipeline.h"
#include "core/util/error.h"

#include <nlohmann/json.hpp>

#include <charconv>
#include <cmath>
#include <cstdio>

namespace sdl::cli {

inline RuntimeOptions runtime_options(Args& args) {
    RuntimeOptions o;
    o.device = args.get_or("--device", "cpu");
    o.dtype = args.get_or("--dtype", "");
    o.threads = args.get_int("--threads", 0);
    return o;
}

// What loading found worth saying (a VAE trained for another family, ...), on stderr.
inline void print_load_warnings(const StableDiffusion& sd) {
    for (const auto& w : sd.info().warnings)
        std::fprintf(stderr, "warning: %s\n", w.c_str());
}

// --lora FILE[:STRENGTH], repeatable, strength 1 by default. A path may hold ':' itself, so the text
// after the last one is a strength only when it is a number.
inline std::vector<LoraSpec> lora_flags(Args& args) {
    std::vector<LoraSpec> loras;
    for (const std::string& text : args.all("--lora")) {
        LoraSpec spec{text, 1.0};
        const size_t colon = text.rfind(':');
        if (colon != std::string::npos) {
            const char* first = text.data() + colon + 1;
            const char* last = text.data() + text.size();
            double v = 0;
            const auto [end, ec] = std::from_chars(first, last, v);
            if (first != last && ec == std::errc() && end == last) {
                if (!std::isfinite(v))
                    throw UsageError("--lora " + text + ": the strength must be a finite number");
                spec = {text.substr(0, colon), v};
            }
        }
        if (spec.path.empty())
            throw UsageError("--lora expects FILE[:STRENGTH], got '" + text + "'");
        loras.push_back(std::move(spec));
    }
    return loras;
}

// --embedding FILE, repeatable: textual-inversion files whose triggers stand for their vectors in prompts.
inline std::vector<std::string> embedding_flags(Args& args) { return args.all("--embedding"); }

inline RuntimeOptions runtime_options_with_vae(Args& args) {
    RuntimeOptions o = runtime_options(args);
    o.vae = args.get_or("--vae", "");
    o.loras = lora_flags(args);
    o.embeddings = embedding_flags(args);
    const std::string format = args.get_or("--memory-format", "contiguous");
    if (format != "contiguous" && format != "channels-last")
        throw UsageError("--memory-format is contiguous or channels-last, not '" + format + "'");
    o.channels_last = format == "channels-last";
    o.cuda_graph = args.has("--cuda-graph");
    o.deferred_nan_check = args.has("--deferred-nan-check");
    return o;
}

// The LoRAs for file metadata (traces, tensor files): [{"path": ..., "strength": ...}, ...] as JSON text.
inline std::string loras_json(const std::vector<LoraSpec>& loras) {
    nlohmann::json j = nlohmann::json::array();
    for (const LoraSpec& l : loras)
        j.push_back({{"path", l.path}, {"strength", l.strength}});
    return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

// For the commands that run one network alone (a null one is not run): merges the LoRAs into it for
// good, and says on stderr which of their layers act on the network that does not run.
inline void apply_loras_alone(const std::vector<LoraSpec>& loras, torch::nn::Module* text_encoder,
                              torch::nn::Module* unet) {
    std::vector<PreparedLora> prepared;
    for (const LoraSpec& spec : loras) {
        prepared.push_back(prepare_lora(read_lora_file(spec.path), text_encoder, unet));
        if (!prepared.back().left_out.empty())
            std::fprintf(stderr, "note: %s: its %zu %s layers do not act here (this command runs the %s alone)\n",
                         spec.path.c_str(), prepared.back().left_out.size(), unet ? "text-encoder" : "U-Net",
                         unet ? "U-Net" : "text encoder");
    }
    std::vector<LoraMerger::Applied> applied;
    for (size_t i = 0; i < loras.size(); ++i)
        applied.push_back({&prepared[i], loras[i].strength});
    LoraMerger().merge(text_encoder, unet, applied);
}

} // namespace sdl::cli
