#pragma once
// sdlens-cli subcommands register themselves here, one file each (cmd_<name>.cpp):
//   static sdl::cli::Register reg{"tokenize", "Tokenize prompts", {"--json"}, run_tokenize};
// The set lists the command's boolean flags (all others take a value).
#include "app/cli/args.h"

#include <functional>
#include <map>
#include <set>
#include <string>

namespace sdl::cli {

using CommandFn = std::function<int(Args&)>;

struct Command {
    std::string summary;
    std::set<std::string> boolean_flags;
    CommandFn run;
};

std::map<std::string, Command>& commands();

struct Register {
    Register(const std::string& name, const std::string& summary, std::set<std::string> boolean_flags,
             CommandFn fn) {
        commands()[name] = Command{summary, std::move(boolean_flags), std::move(fn)};
    }
};

} // namespace sdl::cli
