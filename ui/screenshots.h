#pragma once
#include <QString>
#include <QStringList>

namespace sdlui {

// `sdlens --screenshots DIR`: opens the window on the demo model (or `model`), drives every stage
// with a fixed prompt and seed, and writes one PNG per stage to DIR, then the VAE comparison: the
// first of `vaes` chosen in the VAE picker, and the model's VAE against each of them (default: the
// model folder's own vae/); then `lora` (default: a random LoRA made for the model folder) compared at
// strengths 0, 0.5 and 1, its layers, and the cross-attention with and without it. Returns the
// process exit code.
int renderScreenshots(const QString& dir, const QString& model, const QStringList& vaes, const QString& lora);

} // namespace sdlui
