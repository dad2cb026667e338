#pragma once
#include <QImage>

namespace sdlui {

// A drawn landscape (sky, sun, hills, a house) used when no image has been opened, so the latent,
// noise-progression, U-Net-step and VAE views have something recognisable to show.
QImage sampleImage(int size);

} // namespace sdlui
