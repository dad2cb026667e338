#pragma once
// LoRAs merged into the text encoder's and U-Net's weights, so a step costs what it costs without
// them, and taken out exactly: the merger keeps each changed weight's base tensor and rebuilds
// W = base + sum of strength x delta in float32 (then the model's dtype) from it on every change, so
// no rounding accumulates, and gives a weight no LoRA changes any more its base tensor back, bit for
// bit. The cost: while LoRAs are applied, every weight they change is held twice.
#include "core/io/lora_files.h"

#include <torch/torch.h>

#include <map>
#include <string>
#include <utility>
#include <vector>

namespace sdl {

// One layer of a LoRA, checked against the model: delta W = scale x up @ down per unit of strength.
struct LoraDelta {
    LoraNetwork network = LoraNetwork::Unet;
    std::string module;  // as in LoraLayerFile
    torch::Tensor up;    // [out, r] float32, on the weight's device
    torch::Tensor down;  // [r, in x kh x kw] float32
    double scale = 1;
};

// A LoRA file checked against one model's networks, ready to merge at any strength.
struct PreparedLora {
    std::string path, name, format;
    int64_t rank = 0;  // the largest among its layers
    double alpha = 0;  // its first layer's
    std::vector<LoraDelta> layers;
    std::vector<std::string> left_out;  // its layers for a network that was not given, by the file's names
};

// A null network is one a command does not run (sdlens-cli unet): its layers go to left_out, for the
// caller to say so. Throws sdl::Error naming the file and the first of its layers that name no module
// of the networks (with how many), or a layer whose shape does not fit its module's weight (both shapes).
PreparedLora prepare_lora(const LoraFile& file, torch::nn::Module* text_encoder, torch::nn::Module* unet);

class LoraMerger {
public:
    struct Applied {
        const PreparedLora* lora;
        double strength;
    };

    // Sets every weight the given LoRAs change to its base plus their deltas, and every other weight
    // changed before back to its base. Returns, per LoRA and per layer, ||strength x delta|| / ||base||
    // (Frobenius). When it throws, every weight is back to its base.
    std::vector<std::vector<double>> merge(torch::nn::Module* text_encoder, torch::nn::Module* unet,
                                           const std::vector<Applied>& loras);

    // What the kept base tensors take beyond the model itself.
    int64_t kept_bytes() const;

private:
    struct Kept {
        torch::Tensor parameter;  // the module's own tensor, whose data is replaced
        torch::Tensor base;       // the data it had before any LoRA
        double base_norm = 0;
    };
    void restore_all();
    std::map<std::pair<LoraNetwork, std::string>, Kept> kept_;
};

} // namespace sdl
