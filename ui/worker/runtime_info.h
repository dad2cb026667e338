#pragma once
// What the torch runtime offers, for the settings panel; keeps torch out of the widgets.
#include <QStringList>

namespace sdlui {

QStringList availableDevices();  // "cpu", plus "cuda" when a CUDA device is usable

} // namespace sdlui
