#pragma once
// --device, --dtype and --threads, shared by every command that runs a network; --vae for those that
// decode images; --embedding for those that read prompts.
#include "app/cli/args.h"
#include "core/pipeline/pipeline.h"

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

// --embedding FILE, repeatable: textual-inversion files whose triggers stand for their vectors in prompts.
inline std::vector<std::string> embedding_flags(Args& args) { return args.all("--embedding"); }

inline RuntimeOptions runtime_options_with_vae(Args& args) {
    RuntimeOptions o = runtime_options(args);
    o.vae = args.get_or("--vae", "");
    o.embeddings = embedding_flags(args);
    return o;
}

} // namespace sdl::cli
