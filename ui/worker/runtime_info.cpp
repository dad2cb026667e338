// Torch before Qt: Qt's `slots` and `signals` keyword macros break torch's headers.
#include <torch/torch.h>

#include "ui/worker/runtime_info.h"

namespace sdlui {

QStringList availableDevices() {
    QStringList devices{"cpu"};
    if (torch::cuda::is_available())
        devices << "cuda";
    return devices;
}

} // namespace sdlui
