#pragma once
// LoRA files as people have them, all safetensors, read into one list of layers named as SD Lens'
// modules are (diffusers / transformers names):
//  - kohya / A1111: "lora_unet_<module path with _>" in the diffusers path or the original (CompVis)
//    one ("input_blocks_4_1_transformer_blocks_0_attn1_to_q", resnet parts in_layers_2 ...),
//    "lora_te_text_model_encoder_layers_N_...", suffixes .lora_down.weight, .lora_up.weight, .alpha;
//  - peft as diffusers saves it: "unet.<path>.lora_A.weight" / ".lora_B.weight",
//    "text_encoder.text_model.<path>...", alpha from the lora_adapter_metadata JSON when present;
//  - the older diffusers attention processors: "<path>.processor.to_q_lora.down.weight", and the
//    text encoder's "<path>.q_proj.lora_linear_layer.down.weight";
//  - peft converted to those names, as diffusers' training scripts save it (convert_state_dict_to_diffusers):
//    "unet.<path>.lora.down.weight", the text encoder's as above, alpha from the metadata.
// The one name table is in lora_files.cpp. Refused with a message naming what the file is: pickles,
// LyCORIS LoHa / LoKr / Tucker LoCon, (IA)^3, DoRA, SDXL LoRAs; any key the table does not place.
#include "core/io/safetensors.h"

#include <memory>
#include <string>
#include <vector>

namespace sdl {

enum class LoraNetwork { TextEncoder, Unet };

const char* lora_network_name(LoraNetwork n);  // "text_encoder", "unet"

// One layer's low-rank pair: delta W = scale x up @ down per unit of strength (convolutions flattened
// to [out, in x kh x kw] for the product).
struct LoraLayerFile {
    LoraNetwork network = LoraNetwork::Unet;
    std::string module;  // "down_blocks.1.attentions.0.proj_in", "text_model.encoder.layers.0.mlp.fc1"
    std::string key;     // the file's name for the layer (its keys without the suffix), for messages
    TensorView down;     // [r, in] or [r, in, kh, kw]
    TensorView up;       // [out, r] or [out, r, 1, 1]
    int64_t rank = 0;
    double alpha = 0;    // stored (.alpha, metadata), else the rank
    double scale = 1;    // alpha / rank; alpha / sqrt(rank) for rsLoRA
};

struct LoraFile {
    std::string path;
    std::string name;    // the file's stem
    std::string format;  // "kohya", "kohya (original names)", "peft", "diffusers (attention processors)"
    std::vector<LoraLayerFile> layers;  // sorted by network, then module
    std::shared_ptr<SafetensorsFile> file;  // keeps the views mapped
};

// Reads and checks every tensor (pairs complete, ranks agree, shapes are linear or convolution
// weights, values finite). Throws sdl::Error naming the file and the first offending keys.
LoraFile read_lora_file(const std::string& path);

// Whether some key of f is spelled as a LoRA or LyCORIS network's (whether a failure to open f as
// something else is best explained by read_lora_file's message).
bool is_lora_file(const SafetensorsFile& f);

// The U-Net resolution level a module belongs to: "down 0".."down 3", "mid", "up 0".."up 3"; "" for
// modules outside the blocks (conv_in, time_embedding, conv_out) and for the text encoder's.
std::string unet_level(const std::string& module);

} // namespace sdl
