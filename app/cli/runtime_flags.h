#pragma once
// --device, --dtype and --threads, shared by every command that runs a network.
#include "app/cli/args.h"
#include "core/pipeline/pipeline.h"

namespace sdl::cli {

inline RuntimeOptions runtime_options(Args& args) {
    RuntimeOptions o;
    o.device = args.get_or("--device", "cpu");
    o.dtype = args.get_or("--dtype", "");
    o.threads = args.get_int("--threads", 0);
    return o;
}

} // namespace sdl::cli
