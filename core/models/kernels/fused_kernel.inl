// The body of fused_kernel_<isa>.cpp, which defines before including it:
//   SDL_FUSED_ISA  the namespace (avx512, avx2, generic)
//   SDL_FUSED_W    floats per vector register (16, 8, 4)
// Written with GCC/Clang vector extensions so one text serves every width.
#include "core/models/kernels/fused_kernel.h"

#include <cmath>
#include <cstring>
#include <utility>

namespace sdl::fused_kernel::SDL_FUSED_ISA {
namespace {

constexpr int W = SDL_FUSED_W;
typedef float vf __attribute__((vector_size(W * sizeof(float))));
typedef int32_t vi __attribute__((vector_size(W * sizeof(float))));
typedef uint32_t vu __attribute__((vector_size(W * sizeof(float))));
typedef uint16_t vh __attribute__((vector_size(W * sizeof(uint16_t))));

template <size_t... I>
inline vf splat_lanes(float x, std::index_sequence<I...>) {
    return vf{((void)I, x)...};
}
inline vf splat(float x) { return splat_lanes(x, std::make_index_sequence<W>{}); }

inline float widen(uint16_t h) {
    const uint32_t u = uint32_t{h} << 16;
    float f;
    std::memcpy(&f, &u, sizeof f);
    return f;
}
// Round to nearest even, as LibTorch rounds float32 to bfloat16; a NaN becomes the quiet NaN 0x7fc0.
inline uint16_t narrow(float f) {
    if (std::isnan(f))
        return 0x7fc0;
    uint32_t u;
    std::memcpy(&u, &f, sizeof u);
    return static_cast<uint16_t>((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}

inline vf load(const void* x, bool bf16, int64_t i) {
    vf v;
    if (bf16) {
        vh h;
        std::memcpy(&h, static_cast<const uint16_t*>(x) + i, sizeof h);
        const vu u = __builtin_convertvector(h, vu) << 16;
        std::memcpy(&v, &u, sizeof v);
    } else {
        std::memcpy(&v, static_cast<const float*>(x) + i, sizeof v);
    }
    return v;
}
inline void store(void* y, bool bf16, int64_t i, vf v) {
    if (bf16) {
        vu u;
        std::memcpy(&u, &v, sizeof u);
        const vi nan = v != v;
        u = (u + 0x7fffu + ((u >> 16) & 1u)) >> 16;
        u = (vu)(((vi)u & ~nan) | (nan & 0x7fc0));
        const vh h = __builtin_convertvector(u, vh);
        std::memcpy(static_cast<uint16_t*>(y) + i, &h, sizeof h);
    } else {
        std::memcpy(static_cast<float*>(y) + i, &v, sizeof v);
    }
}
inline float load1(const void* x, bool bf16, int64_t i) {
    return bf16 ? widen(static_cast<const uint16_t*>(x)[i]) : static_cast<const float*>(x)[i];
}
inline void store1(void* y, bool bf16, int64_t i, float v) {
    if (bf16)
        static_cast<uint16_t*>(y)[i] = narrow(v);
    else
        static_cast<float*>(y)[i] = v;
}

inline vf clamp(vf x, float lo, float hi) {
    const vi below = x < splat(lo), above = x > splat(hi);
    x = (vf)(((vi)splat(lo) & below) | ((vi)x & ~below));
    return (vf)(((vi)splat(hi) & above) | ((vi)x & ~above));
}
// 2^x on [-126, 126] (callers clamp): a degree-6 polynomial for 2^f on [-1/2, 1/2] (relative error
// ~2e-7) times 2^n built in the exponent bits.
constexpr float kRound = 12582912.0f;  // 1.5 * 2^23: adding it rounds to an integer in the low mantissa
inline vf exp2v(vf x) {
    const vf t = x + kRound;
    const vf n = t - kRound;
    const vf f = x - n;
    vf p = splat(1.535336188319500e-4f);
    p = p * f + 1.339887440266574e-3f;
    p = p * f + 9.618437357674640e-3f;
    p = p * f + 5.550332471162809e-2f;
    p = p * f + 2.402264791363012e-1f;
    p = p * f + 6.931472028550421e-1f;
    p = p * f + 1.0f;
    const vi bits = ((vi)t - (vi)splat(kRound) + 127) << 23;
    return p * (vf)bits;
}
// y * sigmoid(y) = y / (1 + e^-y). Clamping e^-y's exponent to ±126 changes nothing float32 shows:
// at y = 87 the quotient is y itself, at y = -87 it is 1e-36 where the exact value is smaller still.
// A NaN fails both comparisons of clamp, stays NaN and reaches the output.
inline vf silu(vf y) {
    return y / (1.0f + exp2v(clamp(y * -1.4426950408889634f, -126.0f, 126.0f)));
}
inline float silu1(float y) { return y / (1.0f + std::exp2(std::fmin(std::fmax(-y * 1.4426950408889634f, -126.0f), 126.0f))); }

void sums(const void* x, bool bf16, int64_t rows, int64_t c, const float* shift, float* sum, float* sq) {
    const int64_t cv = c / W * W;
    for (int64_t k = 0; k < cv; k += W) {
        vf s{}, q{};
        vf m;
        std::memcpy(&m, shift + k, sizeof m);
        for (int64_t r = 0; r < rows; ++r) {
            const vf d = load(x, bf16, r * c + k) - m;
            s += d;
            q += d * d;
        }
        std::memcpy(sum + k, &s, sizeof s);
        std::memcpy(sq + k, &q, sizeof q);
    }
    for (int64_t k = cv; k < c; ++k) {
        float s = 0, q = 0;
        for (int64_t r = 0; r < rows; ++r) {
            const float d = load1(x, bf16, r * c + k) - shift[k];
            s += d;
            q += d * d;
        }
        sum[k] = s;
        sq[k] = q;
    }
}

void apply(const void* x, bool bf16, int64_t rows, int64_t c, const float* mean, const float* scale, const float* beta,
           bool with_silu, void* y) {
    const int64_t cv = c / W * W;
    for (int64_t r = 0; r < rows; ++r) {
        const int64_t row = r * c;
        for (int64_t k = 0; k < cv; k += W) {
            vf m, a, b;
            std::memcpy(&m, mean + k, sizeof m);
            std::memcpy(&a, scale + k, sizeof a);
            std::memcpy(&b, beta + k, sizeof b);
            const vf v = (load(x, bf16, row + k) - m) * a + b;
            store(y, bf16, row + k, with_silu ? silu(v) : v);
        }
        for (int64_t k = cv; k < c; ++k) {
            const float v = (load1(x, bf16, row + k) - mean[k]) * scale[k] + beta[k];
            store1(y, bf16, row + k, with_silu ? silu1(v) : v);
        }
    }
}

inline float hsum(vf v) {
    float lanes[W];
    std::memcpy(lanes, &v, sizeof v);
    float s = 0;
    for (int i = 0; i < W; ++i)
        s += lanes[i];
    return s;
}

void layer_norm(const void* x, bool bf16, int64_t rows, int64_t c, const float* weight, const float* bias, float eps,
                void* y) {
    const int64_t cv = c / W * W;
    for (int64_t r = 0; r < rows; ++r) {
        const int64_t row = r * c;
        vf acc{};
        for (int64_t k = 0; k < cv; k += W)
            acc += load(x, bf16, row + k);
        float sum = hsum(acc);
        for (int64_t k = cv; k < c; ++k)
            sum += load1(x, bf16, row + k);
        const float mean = sum / static_cast<float>(c);
        const vf m = splat(mean);
        vf sq{};
        for (int64_t k = 0; k < cv; k += W) {
            const vf d = load(x, bf16, row + k) - m;
            sq += d * d;
        }
        float var = hsum(sq);
        for (int64_t k = cv; k < c; ++k) {
            const float d = load1(x, bf16, row + k) - mean;
            var += d * d;
        }
        const float rstd = 1.0f / std::sqrt(var / static_cast<float>(c) + eps);
        const vf rs = splat(rstd);
        for (int64_t k = 0; k < cv; k += W) {
            vf w, b;
            std::memcpy(&w, weight + k, sizeof w);
            std::memcpy(&b, bias + k, sizeof b);
            store(y, bf16, row + k, (load(x, bf16, row + k) - m) * rs * w + b);
        }
        for (int64_t k = cv; k < c; ++k)
            store1(y, bf16, row + k, (load1(x, bf16, row + k) - mean) * rstd * weight[k] + bias[k]);
    }
}

// erfc(z) for z >= 0 as t * e^(-z² + P(t)), t = 1 / (1 + z/2) (Numerical Recipes' Chebyshev fit, relative
// error below 1.2e-7 for every z >= 0), the exponential taken as a power of two.
template <typename V, typename E>
inline V erfc_nonneg(V z, V one, E exp2) {
    const V t = one / (one + z * 0.5f);
    V p = t * 0.17087277f - 0.82215223f;
    p = p * t + 1.48851587f;
    p = p * t - 1.13520398f;
    p = p * t + 0.27886807f;
    p = p * t - 0.18628806f;
    p = p * t + 0.09678418f;
    p = p * t + 0.37409196f;
    p = p * t + 1.00002368f;
    p = p * t - 1.26551223f;
    return t * exp2((p - z * z) * 1.4426950408889634f);
}
// gelu(x) = x/2 (1 + erf(x/√2)): from erfc(|x|/√2) directly for x < 0, where 1 + erf would cancel.
inline vf gelu(vf x) {
    const vi neg = x < splat(0.0f);
    const vf z = (vf)((vi)x & ~(vi)splat(-0.0f)) * 0.70710678118654752f;
    const vf e = erfc_nonneg(z, splat(1.0f), [](vf a) { return exp2v(clamp(a, -126.0f, 126.0f)); });
    const vf two_minus = 2.0f - e;
    return x * 0.5f * (vf)(((vi)e & neg) | ((vi)two_minus & ~neg));
}
inline float gelu1(float x) {
    const float e = erfc_nonneg(std::fabs(x) * 0.70710678118654752f, 1.0f,
                                [](float a) { return std::exp2(std::fmax(a, -126.0f)); });
    return x * 0.5f * (x < 0 ? e : 2.0f - e);
}

void geglu(const void* x, bool bf16, int64_t rows, int64_t f, void* y) {
    const int64_t fv = f / W * W;
    for (int64_t r = 0; r < rows; ++r) {
        const int64_t in = r * 2 * f, out = r * f;
        for (int64_t k = 0; k < fv; k += W)
            store(y, bf16, out + k, load(x, bf16, in + k) * gelu(load(x, bf16, in + f + k)));
        for (int64_t k = fv; k < f; ++k)
            store1(y, bf16, out + k, load1(x, bf16, in + k) * gelu1(load1(x, bf16, in + f + k)));
    }
}

} // namespace

const Kernels kernels{sums, apply, layer_norm, geglu, SDL_FUSED_NAME};

} // namespace sdl::fused_kernel::SDL_FUSED_ISA
