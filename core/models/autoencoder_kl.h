#pragma once
// diffusers' AutoencoderKL (SD's VAE): image [B, 3, H, W] in [-1, 1] <-> latents [B, 4, H/8, W/8].
// Module names are the diffusers state-dict keys ("encoder.down_blocks.0.resnets.1.conv2").
#include "core/models/attention.h"
#include "core/models/configs.h"
#include "core/models/resnet.h"

#include <torch/torch.h>

#include <vector>

namespace sdl {

// The encoder's diagonal Gaussian over latents (before the scaling factor).
struct LatentDistribution {
    torch::Tensor mean;    // [B, C, h, w]
    torch::Tensor logvar;  // [B, C, h, w], clamped to [-30, 20] as diffusers does
    // mean + exp(logvar / 2) * noise, the noise drawn on the CPU in float32 from gen (diffusers'
    // randn_tensor with a CPU generator), then moved to mean's device and dtype.
    torch::Tensor sample(at::Generator gen) const;
};

// One VAE encoder/decoder stage: DownEncoderBlock2D (resnets, then "downsamplers.0") or
// UpDecoderBlock2D (resnets, then "upsamplers.0").
class VaeBlockImpl : public torch::nn::Module {
public:
    VaeBlockImpl(bool up, int64_t layers, int64_t in_channels, int64_t out_channels, bool resample, int64_t groups);
    torch::Tensor forward(torch::Tensor x);

private:
    std::vector<ResnetBlock2D> resnets_;
    Downsample2D down_{nullptr};
    Upsample2D up_{nullptr};
};
TORCH_MODULE(VaeBlock);

// UNetMidBlock2D without time embedding: resnets.0, [attentions.0], resnets.1.
class VaeMidBlockImpl : public torch::nn::Module {
public:
    VaeMidBlockImpl(int64_t channels, int64_t groups, bool attention);
    torch::Tensor forward(const torch::Tensor& x);

private:
    std::vector<ResnetBlock2D> resnets_;
    Attention attention_{nullptr};
};
TORCH_MODULE(VaeMidBlock);

// "encoder" (image -> 2*latent moments) and "decoder" (latent -> image) share this layout:
// conv_in, blocks, mid_block, conv_norm_out, SiLU, conv_out; the encoder runs the mid block last.
class VaeCoderImpl : public torch::nn::Module {
public:
    VaeCoderImpl(const AutoencoderKLConfig& c, bool decoder);
    torch::Tensor forward(const torch::Tensor& x);
    torch::Dtype dtype() const { return conv_in->weight.scalar_type(); }

private:
    bool decoder_;
    Conv2d conv_in{nullptr}, conv_out{nullptr};
    std::vector<VaeBlock> blocks_;
    VaeMidBlock mid_block{nullptr};
    GroupNorm conv_norm_out{nullptr};
};
TORCH_MODULE(VaeCoder);

struct TileOptions {
    int64_t tile = 64;     // latent pixels per tile side (64 = 512 image pixels for SD)
    int64_t overlap = 16;  // latent pixels shared by neighbouring tiles, cross-faded
};

// The encoder side (encoder, quant_conv) and the decoder side (post_quant_conv, decoder) may hold
// different dtypes (the precision each runs fastest in, core/models/precision.h): encode() and decode()
// convert their input to their side's dtype and return that dtype.
class AutoencoderKLImpl : public torch::nn::Module {
public:
    explicit AutoencoderKLImpl(const AutoencoderKLConfig& c);
    // image [B, in_channels, H, W] in [-1, 1], H and W multiples of downscale() -> distribution.
    LatentDistribution encode(const torch::Tensor& image);
    // latents [B, C, h, w] without the scaling factor -> image [B, out_channels, 8h, 8w], about [-1, 1],
    // not clamped.
    torch::Tensor decode(const torch::Tensor& latents);
    // Converts each side's floating-point weights (lossy from fp32 to a 16-bit type).
    void set_dtypes(torch::Dtype encoder_side, torch::Dtype decoder_side);
    torch::Dtype encoder_dtype() const { return encoder->dtype(); }
    torch::Dtype decoder_dtype() const { return decoder->dtype(); }
    // Decodes overlapping tiles and cross-fades them: memory is bounded by one tile's decode (SD 1.5,
    // CPU fp32: a 512x512 tile peaks at 1.7 GB RSS, so any size fits in about 2 GB, where a plain
    // 1024x1024 decode needs four times the activations). GroupNorm statistics are per tile, so
    // the result differs slightly from decode(), as diffusers' tiled decode does. Falls back to
    // decode() when the latents fit in one tile.
    torch::Tensor decode_tiled(const torch::Tensor& latents, const TileOptions& tiles = {});
    double scaling_factor() const { return config_.scaling_factor; }
    const AutoencoderKLConfig& config() const { return config_; }

private:
    AutoencoderKLConfig config_;
    VaeCoder encoder{nullptr}, decoder{nullptr};
    Conv2d quant_conv{nullptr}, post_quant_conv{nullptr};
};
TORCH_MODULE(AutoencoderKL);

// Above this many latent pixels (768x768 images) the pipeline decodes in tiles, so its memory stays
// that of one 512x512 tile whatever the size.
constexpr int64_t kTiledDecodeAbove = 96 * 96;

struct DecodeResult {
    torch::Tensor image;           // [B, 3, H, W] in about [-1, 1]
    bool redone_in_fp32 = false;   // fp16 overflowed (NaN/Inf) and the decode was repeated in float32
};

// SD 1.x VAEs overflow in fp16 on some latents (diffusers marks them force_upcast). Decodes in the
// decoder side's dtype and, when that is fp16 and the result is not finite, once more in float32 (the
// decoder side is converted for that call and back; fp16 -> fp32 -> fp16 is lossless).
DecodeResult decode_checked(AutoencoderKL& vae, const torch::Tensor& latents, bool tiled = false);

} // namespace sdl
