// sdlens-cli: every stage of the pipeline for scripts, tests and benchmarks.
// Errors become one line on stderr: exit 1 for bad data, 2 for a bad command line.
#include "app/cli/command.h"
#include "core/util/error.h"

#include <c10/util/Exception.h>

#include <cstdio>
#include <exception>
#include <iostream>

namespace sdl::cli {
std::map<std::string, Command>& commands() {
    static std::map<std::string, Command> table;
    return table;
}
} // namespace sdl::cli

namespace {
void usage(std::FILE* out) {
    std::fprintf(out, "usage: sdlens-cli COMMAND [FLAGS]\n\ncommands:\n");
    for (const auto& [name, cmd] : sdl::cli::commands())
        std::fprintf(out, "  %-12s %s\n", name.c_str(), cmd.summary.c_str());
}

std::string one_line(std::string s) {
    for (char& c : s)
        if (c == '\n' || c == '\r')
            c = ' ';
    return s;
}
} // namespace

int main(int argc, char** argv) {
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const std::string name = argv[1];
    if (name == "-h" || name == "--help" || name == "help") {
        usage(stdout);
        return 0;
    }
    auto& table = sdl::cli::commands();
    const auto it = table.find(name);
    if (it == table.end()) {
        std::fprintf(stderr, "sdlens-cli: unknown command '%s' (try --help)\n", name.c_str());
        return 2;
    }
    try {
        sdl::cli::Args args(std::vector<std::string>(argv + 2, argv + argc), it->second.boolean_flags);
        return it->second.run(args);
    } catch (const sdl::UsageError& e) {
        std::fprintf(stderr, "sdlens-cli %s: %s\n", name.c_str(), one_line(e.what()).c_str());
        return 2;
    } catch (const sdl::Cancelled&) {
        std::fprintf(stderr, "sdlens-cli %s: cancelled\n", name.c_str());
        return 130;
    } catch (const std::bad_alloc&) {
        std::fprintf(stderr, "sdlens-cli %s: out of memory\n", name.c_str());
        return 1;
    } catch (const c10::Error& e) {
        std::fprintf(stderr, "sdlens-cli %s: %s\n", name.c_str(), one_line(e.what_without_backtrace()).c_str());
        return 1;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "sdlens-cli %s: %s\n", name.c_str(), one_line(e.what()).c_str());
        return 1;
    }
}
