#pragma once
#include <QString>

namespace sdlui {

// `sdlens --screenshots DIR`: opens the window on the demo model (or `model`), drives every stage
// with a fixed prompt and seed, and writes one PNG per stage to DIR. Returns the process exit code.
int renderScreenshots(const QString& dir, const QString& model);

} // namespace sdlui
