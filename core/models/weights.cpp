#include "core/models/weights.h"

#include "core/io/tensor_io.h"
#include "core/util/error.h"

#include <set>
#include <sstream>

namespace sdl {
namespace {

// Parameters and buffers together: both are state-dict entries.
std::vector<std::pair<std::string, torch::Tensor>> state_entries(torch::nn::Module& module) {
    std::vector<std::pair<std::string, torch::Tensor>> out;
    for (const auto& p : module.named_parameters())
        out.emplace_back(p.key(), p.value());
    for (const auto& b : module.named_buffers())
        out.emplace_back(b.key(), b.value());
    return out;
}

std::string describe(const ComponentFiles& files) {
    std::string s = files.name.empty() ? std::string("model") : files.name;
    if (!files.files.empty())
        s += " (" + files.files.front()->path() + (files.files.size() > 1 ? ", ..." : "") + ")";
    return s;
}

} // namespace

std::string shape_str(c10::IntArrayRef shape) {
    std::ostringstream s;
    s << '[';
    for (size_t i = 0; i < shape.size(); ++i)
        s << (i ? ", " : "") << shape[i];
    s << ']';
    return s.str();
}

ModelCheck check_weights(torch::nn::Module& module, const ComponentFiles& files) {
    ModelCheck check;
    std::set<std::string> seen;
    for (const auto& [key, tensor] : state_entries(module)) {
        seen.insert(key);
        const auto it = files.tensors.find(key);
        if (it == files.tensors.end()) {
            check.missing.push_back(key + " " + shape_str(tensor.sizes()));
            continue;
        }
        if (c10::IntArrayRef(it->second.shape) != tensor.sizes())
            check.misshapen.push_back(key + ": module " + shape_str(tensor.sizes()) + ", file " +
                                      shape_str(it->second.shape));
    }
    for (const auto& [key, view] : files.tensors)
        if (!seen.count(key))
            check.unexpected.push_back(key + " " + shape_str(view.shape));
    return check;
}

void load_weights(torch::nn::Module& module, const ComponentFiles& files, torch::Dtype dtype, torch::Device device) {
    const ModelCheck check = check_weights(module, files);
    if (!check.ok()) {
        std::string msg = describe(files) + ": weights do not match the configuration:";
        const auto list = [&](const char* what, const std::vector<std::string>& keys) {
            constexpr size_t kShown = 3;
            for (size_t i = 0; i < keys.size() && i < kShown; ++i)
                msg += std::string(" ") + what + " key " + keys[i] + ";";
            if (keys.size() > kShown)
                msg += " and " + std::to_string(keys.size() - kShown) + " more " + what + ";";
        };
        list("missing", check.missing);
        list("unexpected", check.unexpected);
        list("misshapen", check.misshapen);
        msg.pop_back();
        throw Error(msg);
    }
    torch::NoGradGuard no_grad;
    for (auto& [key, tensor] : state_entries(module))
        tensor.set_data(to_tensor(files.tensors.at(key), dtype, device));
}

void init_random(torch::nn::Module& module, uint64_t seed) {
    torch::NoGradGuard no_grad;
    auto gen = at::detail::createCPUGenerator(seed);
    for (auto& [key, tensor] : state_entries(module)) {
        // Norm scales at 1 keep activations O(1) through a hundred layers; everything else small.
        const bool norm_weight = tensor.dim() == 1 && key.size() > 7 && key.compare(key.size() - 7, 7, ".weight") == 0;
        if (norm_weight)
            tensor.fill_(1.0);
        else
            tensor.normal_(0.0, 0.02, gen);
    }
}

int64_t parameter_count(torch::nn::Module& module) {
    int64_t n = 0;
    for (const auto& p : module.parameters())
        n += p.numel();
    return n;
}

} // namespace sdl
