#pragma once
// GroupNorm (and the SiLU that follows it in every ResNet block) over channels-last activations,
// LayerNorm over rows (the transformer blocks') and GEGLU (their feed-forward gate), torch-free so that they are compiled once per
// instruction set (fused_kernel_{avx512,avx2,generic}.cpp) and picked at run time. Values are read as
// float32 (bfloat16 widened exactly); GroupNorm's sums are float32 over one short block of pixels, the
// blocks then added in float64 by the caller; LayerNorm's are float32 over one row (at most a few
// thousand values), centred before squaring.
#include <cstdint>

namespace sdl::fused_kernel {

// Pixels per block of the statistics pass: a float32 sum of this many terms loses at most ~8 bits
// less than float64's, and the blocks are added in float64.
constexpr int64_t kBlockRows = 64;

// For rows pixels of c channels (x: [rows, c], bfloat16 when bf16, else float32), per channel k:
// sum[k] = Σ (x - shift[k]), sq[k] = Σ (x - shift[k])², overwritten. shift (a value of the channel)
// keeps E[x²] - E[x]² from cancelling when a channel's mean is far larger than its spread.
using SumsFn = void (*)(const void* x, bool bf16, int64_t rows, int64_t c, const float* shift, float* sum, float* sq);

// y = (x - mean[k]) * scale[k] + beta[k] per channel k, then y * sigmoid(y) when silu; x and y
// [rows, c] of the same type (bfloat16 rounded to nearest even; NaN stays NaN). y may be x. The mean
// is subtracted first, not folded into an offset: x * scale + (beta - mean * scale) cancels when the
// mean is large (float32 then loses ~1e-4 at mean 1000).
using ApplyFn = void (*)(const void* x, bool bf16, int64_t rows, int64_t c, const float* mean, const float* scale,
                         const float* beta, bool silu, void* y);

// LayerNorm of each of rows rows of c values (x and y [rows, c], bfloat16 when bf16, else float32):
// y = (x - mean) / sqrt(var + eps) * weight + bias per row, var the biased variance, as torch's.
using LayerNormFn = void (*)(const void* x, bool bf16, int64_t rows, int64_t c, const float* weight,
                             const float* bias, float eps, void* y);

// GEGLU of rows rows (x [rows, 2f], y [rows, f], bfloat16 when bf16, else float32):
// y = x[:, :f] * gelu(x[:, f:]) with the exact (erf) GELU, erfc to ~1e-7 relative.
using GegluFn = void (*)(const void* x, bool bf16, int64_t rows, int64_t f, void* y);

struct Kernels {
    SumsFn sums;
    ApplyFn apply;
    LayerNormFn layer_norm;
    GegluFn geglu;
    const char* isa;  // "avx512", "avx2" or "generic"
};
// The widest this CPU runs; by name, or null where this CPU or build lacks it (the tests run each).
Kernels best();
const Kernels* by_isa(const char* isa);

namespace avx512 { extern const Kernels kernels; }
namespace avx2 { extern const Kernels kernels; }
namespace generic { extern const Kernels kernels; }

} // namespace sdl::fused_kernel
