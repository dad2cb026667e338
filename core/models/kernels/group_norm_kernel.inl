// The body of group_norm_kernel_<isa>.cpp, which defines before including it:
//   SDL_GN_ISA  the namespace (avx512, avx2, generic)
//   SDL_GN_W    floats per vector register (16, 8, 4)
// Written with GCC/Clang vector extensions so one text serves every width.
#include "core/models/kernels/group_norm_kernel.h"

#include <cmath>
#include <cstring>
#include <utility>

namespace sdl::group_norm_kernel::SDL_GN_ISA {
namespace {

constexpr int W = SDL_GN_W;
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

} // namespace

const Kernels kernels{sums, apply, SDL_GN_NAME};

} // namespace sdl::group_norm_kernel::SDL_GN_ISA
