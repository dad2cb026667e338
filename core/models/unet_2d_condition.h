#pragma once
// diffusers' UNet2DConditionModel for SD 1.x/2.x: predicts the noise (or v) in latents at a timestep,
// conditioned on text embeddings. Module names are the diffusers state-dict keys.
#include "core/models/configs.h"
#include "core/models/embeddings.h"
#include "core/models/hooks.h"
#include "core/models/unet_blocks.h"

#include <torch/torch.h>

#include <vector>

namespace sdl {

class UNet2DConditionModelImpl : public torch::nn::Module {
public:
    explicit UNet2DConditionModelImpl(const UNet2DConditionConfig& c);
    // sample [B, in_channels, h, w]; timestep: a 0-dim or one-element tensor (int or float) for the
    // whole batch, or [B] one per element; context [B, 77, cross_attention_dim] -> [B, out_channels, h, w].
    // timestep_cond [B, time_cond_proj_dim]: the guidance-scale embedding of an LCM-distilled U-Net
    // (guidance_scale_embedding); only for such a U-Net, which also runs without it.
    torch::Tensor forward(const torch::Tensor& sample, const torch::Tensor& timestep, const torch::Tensor& context,
                          const torch::Tensor& timestep_cond = {});
    torch::Tensor forward(const torch::Tensor& sample, double timestep, const torch::Tensor& context,
                          const torch::Tensor& timestep_cond = {});

    // Taps for the explorer; null (the default) turns them off. Not owned; must outlive forward calls.
    void set_hooks(const ModelHooks* hooks) { hooks_ = hooks; }
    const ModelHooks* hooks() const { return hooks_; }
    const UNet2DConditionConfig& config() const { return config_; }

private:
    UNet2DConditionConfig config_;
    const ModelHooks* hooks_ = nullptr;
    Conv2d conv_in{nullptr}, conv_out{nullptr};
    TimestepEmbedding time_embedding{nullptr};
    std::vector<UNetDownBlock> down_;
    UNetMidBlock mid_block{nullptr};
    std::vector<UNetUpBlock> up_;
    GroupNorm conv_norm_out{nullptr};
};
TORCH_MODULE(UNet2DConditionModel);

} // namespace sdl
