// sdlens-cli models [--models-dir DIR]... [--no-hub]
// The models already on this computer, one JSON line each: the Hugging Face hub cache's repos and
// the diffusers folders and checkpoint files in the given folders and in $SDLENS_MODELS
// (colon-separated, as PATH is). Reads configs and safetensors headers only; never downloads.
#include "app/cli/command.h"
#include "core/io/model_scan.h"

#include <cstdlib>
#include <iostream>

namespace {

std::vector<std::string> split_colons(const std::string& s) {
    std::vector<std::string> out;
    size_t start = 0;
    while (start <= s.size()) {
        const size_t colon = s.find(':', start);
        const std::string part = s.substr(start, colon == std::string::npos ? std::string::npos : colon - start);
        if (!part.empty())
            out.push_back(part);
        if (colon == std::string::npos)
            break;
        start = colon + 1;
    }
    return out;
}

int run_models(sdl::cli::Args& args) {
    std::vector<std::string> dirs = args.all("--models-dir");
    const bool hub = !args.has("--no-hub");
    if (const char* env = std::getenv("SDLENS_MODELS"))
        for (const auto& d : split_colons(env))
            dirs.push_back(d);
    args.finish();
    for (const auto& m : sdl::find_models(dirs, hub))
        // File names come from the disk; invalid UTF-8 in one is shown as U+FFFD, not a failure.
        std::cout << sdl::to_json(m).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << '\n';
    return 0;
}

sdl::cli::Register reg{"models",
                       "List the models on this computer (hub cache, --models-dir, $SDLENS_MODELS) as JSON lines",
                       {"--no-hub"}, run_models};

} // namespace
