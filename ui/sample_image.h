#pragma once
#include <QImage>

namespace sdlui {

// A drawn landscape (sky, sun, hills, a house) used when no image has been opened, so the latent,
// noise-progression, U-Net-step and VAE views have something recognisable to show.
QImage sampleImage(int size);

// A picture from the demo model's toy world (core/demo/toy_world.h): a red circle on white, the
// colour and geometry its training pictures have, for the same views when the demo model is open.
QImage toyWorldSample(int size);

} // namespace sdlui
