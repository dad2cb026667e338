#include "core/io/embedding_files.h"

#include "core/io/model_files.h"
#include "core/io/safetensors.h"
#include "core/io/tensor_io.h"
#include "core/util/error.h"

#include <algorithm>
#include <cctype>
#include <filesystem>

namespace sdl {

namespace fs = std::filesystem;

namespace {

constexpr int64_t kSd2Width = 1024;   // OpenCLIP ViT-H, SD 2.x's text encoder
constexpr int64_t kSdxlGWidth = 1280;  // OpenCLIP ViT-bigG, SDXL's second text encoder
// Far wider than any CLIP text encoder (768 for SD 1.x); refused before a damaged header makes the
// conversion read gigabytes.
constexpr int64_t kMaxWidth = 16384;
// A prompt holds CLIP's 77 positions, two of them the start and end tokens.
constexpr int64_t kMaxVectors = 77 - 2;

bool has_whitespace(const std::string& s) {
    return std::any_of(s.begin(), s.end(), [](unsigned char c) { return std::isspace(c) != 0; });
}

std::string ascii_lower(std::string s) {
    for (char& c : s)
        c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return s;
}

std::string first_keys(const SafetensorsFile& f) {
    std::string keys;
    int n = 0;
    for (auto it = f.tensors().begin(); it != f.tensors().end() && n < 3; ++it, ++n)
        keys += std::string(n ? ", " : "") + "'" + it->first + "'";
    return keys;
}

// What a file that is none of the three layouts holds, as far as its keys tell.
[[noreturn]] void refuse_layout(const std::string& path, const SafetensorsFile& f) {
    const auto& t = f.tensors();
    if (t.count("clip_g") || t.count("clip_l"))
        throw Error(path + ": this is an SDXL embedding (clip_g/clip_l vectors for SDXL's two text encoders); "
                           "SD Lens runs Stable Diffusion 1.x, which needs an SD 1.x embedding");
    const bool lora = std::any_of(t.begin(), t.end(), [](const auto& kv) {
        return kv.first.find("lora") != std::string::npos;
    });
    if (lora)
        throw Error(path + ": this is a LoRA, not a textual-inversion embedding; pass it with --lora");
    throw Error(path + ": not a textual-inversion embedding: expected one tensor named 'emb_params' (kohya), "
                       "'string_to_param.*' (A1111) or the trigger word (diffusers), found " +
                std::to_string(t.size()) + " tensors" + (t.empty() ? "" : " (" + first_keys(f) + ")"));
}

} // namespace

EmbeddingFile read_embedding_file(const std::string& path) {
    try {
        refuse_if_pickle(path);
    } catch (const Error&) {
        // model_files' hint saves a checkpoint's flat state dict; an embedding's .pt nests its vectors
        // (A1111: string_to_param -> '*'), which that line would drop.
        throw Error(path + ": is a PyTorch pickle embedding, which SD Lens does not open because loading a pickle "
                           "can run arbitrary code. Convert it to safetensors once, in Python: import torch, "
                           "safetensors.torch as st; e = torch.load('IN.pt', map_location='cpu', weights_only=True); "
                           "v = e['string_to_param']['*'] if 'string_to_param' in e else next(iter(e.values())); "
                           "st.save_file({'emb_params': v.contiguous()}, 'TRIGGER.safetensors') -- the file's name "
                           "is then its trigger word");
    }
    const auto file = SafetensorsFile::open(path);
    EmbeddingFile e;
    e.path = path;
    const auto& tensors = file->tensors();
    if (tensors.size() != 1)
        refuse_layout(path, *file);
    const auto& [key, view] = *tensors.begin();
    if (key == "emb_params") {
        e.format = "kohya (emb_params)";
        e.trigger = fs::path(path).stem().string();
    } else if (key == "string_to_param.*") {
        e.format = "a1111 (string_to_param)";
        e.trigger = fs::path(path).stem().string();
    } else if (key == "clip_g" || key == "clip_l") {
        refuse_layout(path, *file);
    } else {
        e.format = "diffusers (learned_embeds)";
        e.trigger = key;
    }
    const bool named_by_file = e.format != "diffusers (learned_embeds)";
    if (e.trigger.empty() || has_whitespace(e.trigger))
        throw Error(path + ": the trigger word '" + e.trigger + "' (" +
                    (named_by_file ? "the file's name" : "its tensor's name") + ") is empty or has spaces; " +
                    (named_by_file ? "rename the file to the one word that should stand for it"
                                   : "a trigger is one word"));

    const std::string where = path + ": tensor '" + key + "'";
    if (view.dtype != DType::F32 && view.dtype != DType::F16 && view.dtype != DType::BF16)
        throw Error(where + " is " + dtype_name(view.dtype) + ", expected float vectors (F32, F16 or BF16)");
    if (view.shape.empty() || view.shape.size() > 2)
        throw Error(where + " has " + std::to_string(view.shape.size()) +
                    " dimensions, expected [vectors, width] or [width]");
    const int64_t width = view.shape.back();
    const int64_t count = view.shape.size() == 2 ? view.shape[0] : 1;
    if (count == 0 || width == 0)
        throw Error(where + " holds no vectors (shape [" + std::to_string(count) + ", " + std::to_string(width) + "])");
    if (width == kSd2Width)
        throw Error(path + ": this is a Stable Diffusion 2.x embedding (1024-wide vectors for OpenCLIP); SD Lens "
                           "runs Stable Diffusion 1.x, whose text encoder takes 768-wide vectors");
    if (width == kSdxlGWidth)
        throw Error(path + ": this is an SDXL embedding (1280-wide vectors for SDXL's OpenCLIP encoder); SD Lens "
                           "runs Stable Diffusion 1.x, whose text encoder takes 768-wide vectors");
    if (width > kMaxWidth)
        throw Error(where + " holds vectors " + std::to_string(width) + " wide; no CLIP text encoder is that wide "
                            "(SD 1.x: 768), so this is not a textual-inversion embedding");
    if (count > kMaxVectors)
        throw Error(where + " has " + std::to_string(count) + " vectors, more than the " +
                    std::to_string(kMaxVectors) + " a prompt holds");
    e.vectors = to_tensor(view, torch::kFloat32).reshape({count, width});
    if (!torch::isfinite(e.vectors).all().item<bool>())
        throw Error(where + " has NaN or infinite values; the embedding is damaged (retrain or re-export it)");
    return e;
}

std::vector<EmbeddingFile> read_embedding_files(const std::vector<std::string>& paths, int64_t hidden_size) {
    std::vector<EmbeddingFile> out;
    for (const auto& path : paths) {
        EmbeddingFile e = read_embedding_file(path);
        const int64_t width = e.vectors.size(1);
        if (hidden_size > 0 && width != hidden_size)
            throw Error(path + ": its vectors are " + std::to_string(width) + " wide but the model's text encoder is " +
                        std::to_string(hidden_size) + " wide (hidden size); the embedding was made for another model");
        for (const auto& other : out)
            if (ascii_lower(other.trigger) == ascii_lower(e.trigger))
                throw Error("two embeddings have the trigger '" + e.trigger + "': '" + other.path + "' and '" + path +
                            "'; load only one of them (or rename one file when the trigger is its name)");
        out.push_back(std::move(e));
    }
    return out;
}

} // namespace sdl
