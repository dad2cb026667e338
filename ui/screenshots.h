#pragma once
#include <QString>
#include <QStringList>

namespace sdlui {

// `sdlens --screenshots DIR`: opens the window on the demo model (or `model`), drives every stage
// with a fixed prompt and seed, and writes one PNG per stage to DIR, then the VAE comparison: the
// first of `vaes` chosen in the VAE picker, and the model's VAE against each of them (default: the
// model folder's own vae/). Returns the process exit code.
int renderScreenshots(const QString& dir, const QString& model, const QStringList& vaes);

} // namespace sdlui
