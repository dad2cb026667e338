#include "core/models/lora.h"

#include "core/io/tensor_io.h"
#include "core/models/weights.h"
#include "core/util/error.h"

#include <algorithm>
#include <unordered_map>

namespace sdl {

namespace {

using Weights = std::unordered_map<std::string, torch::Tensor>;

Weights weights_of(torch::nn::Module* m) {
    Weights w;
    if (!m)
        return w;
    for (const auto& p : m->named_parameters())
        w.emplace(p.key(), p.value());
    return w;
}

// Whether down [r, in(, kh, kw)] and up [out, r(, 1, 1)] make an update of the weight's shape. A 1x1
// convolution and a linear layer are the same product, so either may stand for the other.
bool fits(c10::IntArrayRef weight, const std::vector<int64_t>& down, const std::vector<int64_t>& up) {
    if (weight.size() != 2 && weight.size() != 4)
        return false;
    if (up[0] != weight[0] || down[1] != weight[1])
        return false;
    const int64_t kh = weight.size() == 4 ? weight[2] : 1, kw = weight.size() == 4 ? weight[3] : 1;
    const int64_t dh = down.size() == 4 ? down[2] : 1, dw = down.size() == 4 ? down[3] : 1;
    return kh == dh && kw == dw;
}

std::string update_text(const LoraLayerFile& l) {
    std::vector<int64_t> s{l.up.shape[0], l.down.shape[1]};
    s.insert(s.end(), l.down.shape.begin() + 2, l.down.shape.end());
    return shape_str(s);
}

} // namespace

PreparedLora prepare_lora(const LoraFile& file, torch::nn::Module* text_encoder, torch::nn::Module* unet) {
    const Weights text = weights_of(text_encoder), net = weights_of(unet);
    PreparedLora out;
    out.path = file.path;
    out.name = file.name;
    out.format = file.format;
    std::vector<std::string> unknown;
    for (const LoraLayerFile& l : file.layers) {
        if (!(l.network == LoraNetwork::TextEncoder ? text_encoder : unet)) {
            out.left_out.push_back(l.key);
            continue;
        }
        const Weights& w = l.network == LoraNetwork::TextEncoder ? text : net;
        const auto it = w.find(l.module + ".weight");
        if (it == w.end()) {
            unknown.push_back(l.key);
            continue;
        }
        const torch::Tensor& weight = it->second;
        if (!fits(weight.sizes(), l.down.shape, l.up.shape))
            throw Error(file.path + ": '" + l.key + "' makes a " + update_text(l) + " update but this model's " +
                        lora_network_name(l.network) + " " + l.module + ".weight is " + shape_str(weight.sizes()) +
                        ": the LoRA was made for another model family (SD 2.x's text encoder and cross-attention "
                        "are 1024 wide, SDXL's 2048) or another model size");
        LoraDelta d;
        d.network = l.network;
        d.module = l.module;
        d.up = to_tensor(l.up, torch::kFloat32, weight.device()).reshape({l.up.shape[0], l.rank});
        d.down = to_tensor(l.down, torch::kFloat32, weight.device()).reshape({l.rank, -1});
        d.scale = l.scale;
        out.layers.push_back(std::move(d));
        out.rank = std::max(out.rank, l.rank);
    }
    if (!unknown.empty())
        throw Error(file.path + ": " + std::to_string(unknown.size()) + " of its " + std::to_string(file.layers.size()) +
                    " layers name no layer of this SD 1.x model: '" + unknown.front() + "'" +
                    (unknown.size() > 1 ? ", '" + unknown[1] + "'" : std::string()) +
                    (unknown.size() > 2 ? " and " + std::to_string(unknown.size() - 2) + " more" : std::string()) +
                    " (a LoRA for another model family, such as SDXL, names layers SD 1.x does not have)");
    if (!file.layers.empty())
        out.alpha = file.layers.front().alpha;
    return out;
}

void LoraMerger::restore_all() {
    for (auto& [name, k] : kept_)
        k.parameter.set_data(k.base);
    kept_.clear();
}

std::vector<std::vector<double>> LoraMerger::merge(torch::nn::Module* text_encoder, torch::nn::Module* unet,
                                                   const std::vector<Applied>& loras) {
    torch::NoGradGuard no_grad;
    using Key = std::pair<LoraNetwork, std::string>;
    struct Term {
        const LoraDelta* delta;
        double strength;
        double* change;
    };
    std::vector<std::vector<double>> changes;
    std::map<Key, std::vector<Term>> terms;
    changes.reserve(loras.size());
    for (const Applied& a : loras) {
        changes.emplace_back(a.lora->layers.size(), 0.0);
        for (size_t i = 0; i < a.lora->layers.size(); ++i) {
            const LoraDelta& d = a.lora->layers[i];
            // A zero update leaves the weight alone rather than rewriting it (a -0.0 would become +0.0).
            if (a.strength * d.scale == 0)
                continue;
            terms[{d.network, d.module}].push_back({&d, a.strength, &changes.back()[i]});
        }
    }
    try {
        for (auto it = kept_.begin(); it != kept_.end();) {
            if (terms.count(it->first)) {
                ++it;
                continue;
            }
            it->second.parameter.set_data(it->second.base);
            it = kept_.erase(it);
        }
        const Weights text = weights_of(text_encoder), net = weights_of(unet);
        for (const auto& [key, list] : terms) {
            auto k = kept_.find(key);
            if (k == kept_.end()) {
                const Weights& w = key.first == LoraNetwork::TextEncoder ? text : net;
                const auto found = w.find(key.second + ".weight");
                if (found == w.end())
                    throw Error("LoRA layer " + key.second + " was prepared for another model");
                const torch::Tensor& parameter = found->second;
                Kept fresh{parameter, parameter.detach(), 0.0};
                fresh.base_norm = fresh.base.to(torch::kFloat32).norm().item<double>();
                k = kept_.emplace(key, std::move(fresh)).first;
            }
            const torch::Tensor& base = k->second.base;
            torch::Tensor merged = base.to(torch::kFloat32, /*non_blocking=*/false, /*copy=*/true);
            for (const Term& t : list) {
                const torch::Tensor delta =
                    torch::matmul(t.delta->up, t.delta->down).reshape(base.sizes()).mul_(t.strength * t.delta->scale);
                *t.change = k->second.base_norm > 0 ? delta.norm().item<double>() / k->second.base_norm : 0.0;
                merged.add_(delta);
            }
            k->second.parameter.set_data(merged.to(base.scalar_type()));
        }
    } catch (...) {
        restore_all();
        throw;
    }
    return changes;
}

int64_t LoraMerger::kept_bytes() const {
    int64_t bytes = 0;
    for (const auto& [key, k] : kept_)
        bytes += static_cast<int64_t>(k.base.nbytes());
    return bytes;
}

} // namespace sdl
