#pragma once
// Read-only taps into a forward pass for the explorer. A network holds a pointer to a ModelHooks;
// null (the default) costs one pointer test per block.
#include <torch/torch.h>

#include <functional>
#include <map>
#include <string>
#include <vector>

namespace sdl {

struct AttentionProbs {
    std::string layer;          // "down_blocks.0.attentions.1.transformer_blocks.0.attn2"
    int64_t height = 0, width = 0;  // the latent grid the queries come from
    torch::Tensor probs;        // [B, height*width, context tokens], float32, averaged over heads
};

struct ModelHooks {
    // When set, every cross-attention layer appends its softmax probabilities, in call order.
    std::vector<AttentionProbs>* attention = nullptr;
    // Called with the output of the module of that state-dict name: "conv_in", "time_embedding",
    // "down_blocks.1", "down_blocks.1.resnets.0", "mid_block", "up_blocks.2.attentions.0", "conv_out"...
    std::map<std::string, std::function<void(const torch::Tensor&)>> outputs;

    // Not "emit": Qt defines that as a macro, and tests see this header after QtTest.
    void tap(const std::string& name, const torch::Tensor& out) const {
        if (const auto it = outputs.find(name); it != outputs.end())
            it->second(out);
    }
};

// A module whose output can be tapped knows its own state-dict name; name_hook_points() sets it
// once the network is built, so constructors need not thread prefixes through.
class HookPoint {
public:
    virtual ~HookPoint() = default;
    const std::string& hook_name() const { return hook_name_; }
    void set_hook_name(std::string name) { hook_name_ = std::move(name); }

private:
    std::string hook_name_;
};

inline void name_hook_points(torch::nn::Module& root) {
    // Without the root itself: a module under construction is not yet owned by a shared_ptr.
    for (const auto& item : root.named_modules("", /*include_self=*/false))
        if (auto* p = dynamic_cast<HookPoint*>(item.value().get()))
            p->set_hook_name(item.key());
}

} // namespace sdl
