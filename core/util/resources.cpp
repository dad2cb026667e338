#include "core/util/resources.h"

#include "core/util/error.h"

#include <cstdlib>
#include <system_error>
#include <vector>

namespace fs = std::filesystem;

namespace sdl {

namespace {
fs::path executable_dir() {
    std::error_code ec;
    fs::path exe = fs::read_symlink("/proc/self/exe", ec);
    return ec ? fs::path() : exe.parent_path();
}
} // namespace

fs::path resource_path(const std::string& relative) {
    std::vector<fs::path> roots;
    if (const char* env = std::getenv("SDLENS_RESOURCES"); env && *env)
        roots.emplace_back(env);
    const fs::path exe = executable_dir();
    if (!exe.empty()) {
        roots.push_back(exe / ".." / SDLENS_INSTALL_DATADIR / "sdlens");
        roots.push_back(exe / ".." / "resources");
    }
    roots.emplace_back(SDLENS_SOURCE_RESOURCES);
    std::string tried;
    for (const auto& root : roots) {
        fs::path p = root / relative;
        std::error_code ec;
        if (fs::exists(p, ec))
            return p.lexically_normal();
        tried += "\n  " + p.lexically_normal().string();
    }
    throw Error("bundled resource '" + relative + "' not found; looked in:" + tried +
                "\n(set SDLENS_RESOURCES to the folder that holds it)");
}

} // namespace sdl
