#pragma once
// The FlashAttention inner loop on packed float32 buffers, torch-free so that it can be compiled once
// per instruction set (attention_kernel_{avx512,avx2,generic}.cpp) and picked at run time: Debian's
// LibTorch and this project are built for baseline x86-64, which would leave the loop at SSE2 width.
#include <cstdint>

namespace sdl::attention_kernel {

// Keys per block of the online softmax: the [kQueryBlock, kKeyBlock] score tile, the key block of
// K^T and of V stay in a core's L2 cache.
constexpr int64_t kQueryBlock = 64;
constexpr int64_t kKeyBlock = 256;
// K^T is stored in panels of kKeyPad keys, each [d, kKeyPad], so that a score tile reads one
// contiguous block however long the sequence (rows of the whole K^T would put every c a page apart).
// Keys are padded to whole panels and V rows to whole vectors (zeros).
constexpr int64_t kKeyPad = 64;
constexpr int64_t kDimPad = 16;

inline int64_t round_up(int64_t x, int64_t m) { return (x + m - 1) / m * m; }

// One head's keys and values, packed by the caller.
struct Head {
    const float* kt;   // [lk_pad / kKeyPad, d, kKeyPad]: K^T in panels, keys past lk are zero
    int64_t lk_pad;    // round_up(lk, kKeyPad)
    const float* v;    // [lk, d_pad]: V, columns past d are zero
    int64_t d_pad;     // round_up(d, kDimPad)
    int64_t lk;
    int64_t d;
};

// Scratch for one thread, sized by scratch_floats(d, d_pad).
int64_t scratch_floats(int64_t d, int64_t d_pad);

// Rows [i0, i0 + rows) of softmax(q k^T) v for one head, rows <= kQueryBlock. q: those rows, [rows, d]
// contiguous, already multiplied by log2(e)/sqrt(d) (the softmax then runs in base 2). causal: query
// i sees keys j <= i (CLIP's mask). out: row r written at out + r * ldo, d floats.
using AttendFn = void (*)(const float* q, int64_t rows, int64_t i0, const Head& head, bool causal, float* out,
                          int64_t ldo, float* scratch);

// The widest implementation this CPU runs, and its name ("avx512", "avx2", "generic").
AttendFn best_attend();
const char* best_isa();

// bfloat16 inputs on a CPU with AVX512-BF16 (attention_kernel_avx512bf16.cpp): pairs of bfloat16
// along the product's inner dimension, so that one instruction takes both.
struct HeadBf16 {
    const uint16_t* kp;  // [lk_pad / kKeyPad, d2, kKeyPad, 2]: K^T panels, the pair (c, c+1) of a key
                         // adjacent; zero past lk and d
    int64_t lk_pad;      // round_up(lk, kKeyPad)
    const uint16_t* vp;  // [lk2, d_pad, 2]: V, the pair (j, j+1) of a column adjacent; zero past lk and d
    int64_t d_pad;       // round_up(d, kDimPad)
    int64_t lk;
    int64_t d;
    int64_t d2;          // (d + 1) / 2
    float scale;         // log2(e) / sqrt(d), applied to the scores
};
int64_t scratch_floats_bf16(int64_t d2, int64_t d_pad);
// q: rows of d2 pairs (the query's bfloat16 values, zero-padded to even d), unscaled.
using AttendBf16Fn = void (*)(const uint16_t* q, int64_t rows, int64_t i0, const HeadBf16& head, bool causal,
                              float* out, int64_t ldo, float* scratch);
// avx512bf16::attend where this build and this CPU run it, else null.
AttendBf16Fn bf16_attend();

namespace avx512bf16 { void attend(const uint16_t*, int64_t, int64_t, const HeadBf16&, bool, float*, int64_t, float*); }
namespace avx512 { void attend(const float*, int64_t, int64_t, const Head&, bool, float*, int64_t, float*); }
namespace avx2 { void attend(const float*, int64_t, int64_t, const Head&, bool, float*, int64_t, float*); }
namespace generic { void attend(const float*, int64_t, int64_t, const Head&, bool, float*, int64_t, float*); }

} // namespace sdl::attention_kernel
