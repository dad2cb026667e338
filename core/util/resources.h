#pragma once
#include <filesystem>
#include <string>

namespace sdl {

// Directory holding SD Lens' bundled data (CLIP vocabulary, shapes). Looked up in order:
// $SDLENS_RESOURCES, <exe>/../share/sdlens, <exe>/../resources, the source tree's resources/.
// Throws sdl::Error listing the places tried when none has the file.
std::filesystem::path resource_path(const std::string& relative);

} // namespace sdl
