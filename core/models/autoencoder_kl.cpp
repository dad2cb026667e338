#include "core/models/autoencoder_kl.h"

#include "core/util/error.h"

#include <algorithm>

namespace sdl {
namespace {

// Every VAE norm uses eps 1e-6 (diffusers hard-codes it for the encoder and decoder).
constexpr double kVaeEps = 1e-6;

void check_block_type(const char* key, const std::string& type, const char* expected) {
    if (type != expected)
        throw Error(std::string("vae config: unknown ") + key + " '" + type + "' (expected " + expected + ")");
}

// Tile start offsets along one axis: stride tile - overlap, the last tile flush with the end.
std::vector<int64_t> tile_starts(int64_t size, int64_t tile, int64_t overlap) {
    std::vector<int64_t> starts;
    for (int64_t s = 0;; s += tile - overlap) {
        if (s + tile >= size) {
            starts.push_back(std::max<int64_t>(0, size - tile));
            break;
        }
        starts.push_back(s);
    }
    return starts;
}

// Cross-fade weights along one axis of a decoded tile: a linear ramp over the overlap on each
// side that has a neighbour, 1 elsewhere; never 0, so every pixel has a defined weighted mean.
torch::Tensor ramp(int64_t length, int64_t fade, bool fade_start, bool fade_end) {
    auto w = torch::ones({length});
    const auto up = (torch::arange(fade, torch::kFloat) + 0.5) / fade;  // (0, 1)
    const int64_t n = std::min(fade, length);
    if (fade_start)
        w.slice(0, 0, n).copy_(up.slice(0, 0, n));
    if (fade_end)
        w.slice(0, length - n, length).mul_(up.slice(0, 0, n).flip(0));
    return w;
}

} // namespace

torch::Tensor LatentDistribution::sample(at::Generator gen) const {
    const auto noise = torch::randn(mean.sizes(), gen, torch::TensorOptions().dtype(torch::kFloat));
    return mean + torch::exp(0.5 * logvar) * noise.to(mean.device(), mean.scalar_type());
}

VaeBlockImpl::VaeBlockImpl(bool up, int64_t layers, int64_t in_channels, int64_t out_channels, bool resample,
                           int64_t groups) {
    auto resnets = register_module("resnets", torch::nn::ModuleList());
    for (int64_t i = 0; i < layers; ++i) {
        ResnetOptions o;
        o.in_channels = i == 0 ? in_channels : out_channels;
        o.out_channels = out_channels;
        o.groups = groups;
        o.eps = kVaeEps;
        resnets_.emplace_back(o);
        resnets->push_back(resnets_.back());
    }
    if (!resample)
        return;
    if (up) {
        up_ = Upsample2D(out_channels);
        register_module("upsamplers", torch::nn::ModuleList())->push_back(up_);
    } else {
        down_ = Downsample2D(out_channels, 0);
        register_module("downsamplers", torch::nn::ModuleList())->push_back(down_);
    }
}

torch::Tensor VaeBlockImpl::forward(torch::Tensor x) {
    for (auto& r : resnets_)
        x = r(x);
    if (down_)
        x = down_(x);
    if (up_)
        x = up_(x);
    return x;
}

VaeMidBlockImpl::VaeMidBlockImpl(int64_t channels, int64_t groups, bool attention) {
    ResnetOptions ro;
    ro.in_channels = ro.out_channels = channels;
    ro.groups = groups;
    ro.eps = kVaeEps;
    auto resnets = register_module("resnets", torch::nn::ModuleList());
    for (int i = 0; i < 2; ++i) {
        resnets_.emplace_back(ro);
        resnets->push_back(resnets_.back());
    }
    if (attention) {
        // One head over all channels, as diffusers builds it (attention_head_dim = channels).
        AttentionOptions ao;
        ao.query_dim = channels;
        ao.heads = 1;
        ao.head_dim = channels;
        ao.qkv_bias = true;
        ao.upcast = true;
        ao.spatial_groups = groups;
        ao.spatial_eps = kVaeEps;
        attention_ = Attention(ao);
        register_module("attentions", torch::nn::ModuleList())->push_back(attention_);
    }
}

torch::Tensor VaeMidBlockImpl::forward(const torch::Tensor& x) {
    auto h = resnets_[0](x);
    if (attention_)
        h = attention_->forward_spatial(h);
    return resnets_[1](h);
}

VaeCoderImpl::VaeCoderImpl(const AutoencoderKLConfig& c, bool decoder) : decoder_(decoder) {
    const auto& ch = c.block_out_channels;
    const int64_t n = static_cast<int64_t>(ch.size());
    for (int64_t i = 0; i < n; ++i)
        if (decoder)
            check_block_type("up_block_type", c.up_block_types[i], "UpDecoderBlock2D");
        else
            check_block_type("down_block_type", c.down_block_types[i], "DownEncoderBlock2D");

    conv_in = register_module("conv_in", decoder ? Conv2d(c.latent_channels, ch.back(), 3, 1, 1)
                                                 : Conv2d(c.in_channels, ch.front(), 3, 1, 1));
    if (decoder)
        mid_block = register_module("mid_block", VaeMidBlock(ch.back(), c.norm_num_groups, c.mid_block_add_attention));
    auto blocks = register_module(decoder ? "up_blocks" : "down_blocks", torch::nn::ModuleList());
    for (int64_t i = 0; i < n; ++i) {
        const bool last = i == n - 1;
        if (decoder) {
            // Channels run in reverse, and each up block has one resnet more than a down block.
            const int64_t in = ch[n - 1 - std::max<int64_t>(i - 1, 0)];
            blocks_.emplace_back(true, c.layers_per_block + 1, in, ch[n - 1 - i], !last, c.norm_num_groups);
        } else {
            const int64_t in = ch[std::max<int64_t>(i - 1, 0)];
            blocks_.emplace_back(false, c.layers_per_block, in, ch[i], !last, c.norm_num_groups);
        }
        blocks->push_back(blocks_.back());
    }
    if (!decoder)
        mid_block = register_module("mid_block", VaeMidBlock(ch.back(), c.norm_num_groups, c.mid_block_add_attention));
    const int64_t out_ch = decoder ? ch.front() : ch.back();
    conv_norm_out = register_module("conv_norm_out", GroupNorm(c.norm_num_groups, out_ch, kVaeEps));
    // The encoder outputs mean and log-variance stacked on channels ("double_z").
    conv_out = register_module("conv_out", decoder ? Conv2d(out_ch, c.out_channels, 3, 1, 1)
                                                   : Conv2d(out_ch, 2 * c.latent_channels, 3, 1, 1));
}

torch::Tensor VaeCoderImpl::forward(const torch::Tensor& x) {
    auto h = conv_in(x);
    if (decoder_)
        h = mid_block(h);
    for (auto& b : blocks_)
        h = b(h);
    if (!decoder_)
        h = mid_block(h);
    return conv_out(conv_norm_out->forward_silu(h));
}

AutoencoderKLImpl::AutoencoderKLImpl(const AutoencoderKLConfig& c) : config_(c) {
    encoder = register_module("encoder", VaeCoder(c, false));
    decoder = register_module("decoder", VaeCoder(c, true));
    if (c.use_quant_conv)
        quant_conv = register_module("quant_conv", Conv2d(2 * c.latent_channels, 2 * c.latent_channels, 1));
    if (c.use_post_quant_conv)
        post_quant_conv = register_module("post_quant_conv", Conv2d(c.latent_channels, c.latent_channels, 1));
}

LatentDistribution AutoencoderKLImpl::encode(const torch::Tensor& image) {
    const int64_t f = config_.downscale();
    if (image.dim() != 4 || image.size(1) != config_.in_channels || image.size(2) % f || image.size(3) % f)
        throw Error("vae: image must be [B, " + std::to_string(config_.in_channels) + ", H, W] with H and W multiples of " +
                    std::to_string(f) + ", found " + c10::str(image.sizes()));
    auto moments = encoder(image.to(encoder_dtype()));  // [B, 2C, H/8, W/8]
    if (quant_conv)
        moments = quant_conv(moments);
    auto parts = moments.chunk(2, 1);
    return {parts[0], parts[1].clamp(-30.0, 20.0)};
}

torch::Tensor AutoencoderKLImpl::decode(const torch::Tensor& latents) {
    if (latents.dim() != 4 || latents.size(1) != config_.latent_channels)
        throw Error("vae: latents must be [B, " + std::to_string(config_.latent_channels) + ", h, w], found " +
                    c10::str(latents.sizes()));
    const auto z = latents.to(decoder_dtype());
    return decoder(post_quant_conv ? post_quant_conv(z) : z);  // [B, 3, 8h, 8w]
}

void AutoencoderKLImpl::set_dtypes(torch::Dtype encoder_side, torch::Dtype decoder_side) {
    encoder->to(encoder_side);
    if (quant_conv)
        quant_conv->to(encoder_side);
    decoder->to(decoder_side);
    if (post_quant_conv)
        post_quant_conv->to(decoder_side);
}

torch::Tensor AutoencoderKLImpl::decode_tiled(const torch::Tensor& latents, const TileOptions& t) {
    if (t.tile <= 0 || t.overlap < 0 || t.overlap >= t.tile)
        throw Error("vae: tile size " + std::to_string(t.tile) + " with overlap " + std::to_string(t.overlap) +
                    " is invalid (need 0 <= overlap < tile)");
    const int64_t h = latents.size(2), w = latents.size(3);
    if (h <= t.tile && w <= t.tile)
        return decode(latents);
    const int64_t f = config_.downscale();
    const auto ys = tile_starts(h, t.tile, t.overlap), xs = tile_starts(w, t.tile, t.overlap);
    // Accumulate in float32 on the latents' device: the weighted sum, then divide by the weights.
    const auto acc_opts = latents.options().dtype(torch::kFloat);
    auto sum = torch::zeros({latents.size(0), config_.out_channels, h * f, w * f}, acc_opts);
    auto weight = torch::zeros({1, 1, h * f, w * f}, acc_opts);
    for (size_t yi = 0; yi < ys.size(); ++yi)
        for (size_t xi = 0; xi < xs.size(); ++xi) {
            const int64_t y = ys[yi], x = xs[xi];
            const int64_t th = std::min(t.tile, h - y), tw = std::min(t.tile, w - x);
            const auto tile = decode(latents.slice(2, y, y + th).slice(3, x, x + tw)).to(torch::kFloat);
            const auto wy = ramp(th * f, t.overlap * f, yi > 0, yi + 1 < ys.size());
            const auto wx = ramp(tw * f, t.overlap * f, xi > 0, xi + 1 < xs.size());
            const auto wt = (wy.unsqueeze(1) * wx.unsqueeze(0)).to(sum.device());  // [th*f, tw*f]
            sum.slice(2, y * f, (y + th) * f).slice(3, x * f, (x + tw) * f).add_(tile * wt);
            weight.slice(2, y * f, (y + th) * f).slice(3, x * f, (x + tw) * f).add_(wt);
        }
    return (sum / weight).to(decoder_dtype());
}

DecodeResult decode_checked(AutoencoderKL& vae, const torch::Tensor& latents, bool tiled) {
    const auto run = [&](const torch::Tensor& z) { return tiled ? vae->decode_tiled(z) : vae->decode(z); };
    DecodeResult r;
    r.image = run(latents);
    if (vae->decoder_dtype() != torch::kHalf || torch::isfinite(r.image).all().item<bool>())
        return r;
    const auto encoder_side = vae->encoder_dtype();
    vae->set_dtypes(encoder_side, torch::kFloat);
    try {
        r.image = run(latents);
    } catch (...) {
        vae->set_dtypes(encoder_side, torch::kHalf);
        throw;
    }
    vae->set_dtypes(encoder_side, torch::kHalf);
    r.redone_in_fp32 = true;
    return r;
}

} // namespace sdl
