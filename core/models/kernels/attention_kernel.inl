// The body of attention_kernel_<isa>.cpp, which define before including it:
//   SDL_ATTN_ISA  the namespace (avx512, avx2, generic)
//   SDL_ATTN_W    floats per vector register (16, 8, 4)
//   SDL_ATTN_REGS vector registers (32 with AVX-512, else 16): sets the register tiles below.
// Written with GCC/Clang vector extensions so one text serves every width.
#include "core/models/kernels/attention_kernel.h"

#include <algorithm>
#include <cstring>
#include <utility>

namespace sdl::attention_kernel::SDL_ATTN_ISA {
namespace {

constexpr int W = SDL_ATTN_W;
typedef float vf __attribute__((vector_size(W * sizeof(float))));
typedef int32_t vi __attribute__((vector_size(W * sizeof(float))));

// Score tile: kRows queries x kScoreVecs vectors of keys, accumulated in registers.
constexpr int kRows = 4;
constexpr int kScoreVecs = SDL_ATTN_REGS == 32 ? 4 : 2;
constexpr int64_t kScoreCols = int64_t{W} * kScoreVecs;
static_assert(kKeyPad % kScoreCols == 0 && kKeyBlock % kScoreCols == 0, "key tiles must divide the padding");
static_assert(kDimPad % W == 0, "V rows must hold whole vectors");
// Rows of the P.V tile: queries are padded to a multiple of kPvRowPad.
constexpr int kPvRowPad = 8;

inline vf load(const float* p) {
    vf v;
    std::memcpy(&v, p, sizeof v);
    return v;
}
inline void store(float* p, vf v) { std::memcpy(p, &v, sizeof v); }
// Every lane initialised with x, which compilers emit as one broadcast (from memory, into the FMA):
// vf{} + x costs an add per broadcast (0 + x is not x for x = -0), a lane-by-lane fill worse.
template <size_t... I>
inline vf splat_lanes(float x, std::index_sequence<I...>) {
    return vf{((void)I, x)...};
}
inline vf splat(float x) { return splat_lanes(x, std::make_index_sequence<W>{}); }
inline vf vmax(vf a, vf b) {
    const vi gt = a > b;
    return (vf)(((vi)a & gt) | ((vi)b & ~gt));
}

// 2^x for x <= 0 (scores minus the row maximum): round to nearest, a degree-6 polynomial for 2^f on
// [-1/2, 1/2] (relative error ~2e-7, below float32's rounding of the scores) times 2^n built in the
// exponent bits. Below -126 the result is 2^-126 rather than a denormal or zero: a weight 2^-126 times
// the row's largest, which float32 sums cannot see.
constexpr float kRound = 12582912.0f;  // 1.5 * 2^23: adding it rounds to an integer in the low mantissa
inline vf exp2v(vf x) {
    // Written so that a NaN stays a NaN (and reaches the output, where callers look for it).
    const vi low = x < splat(-126.0f);
    x = (vf)(((vi)splat(-126.0f) & low) | ((vi)x & ~low));
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
inline float exp2s(float x) {
    float r[W];
    store(r, exp2v(splat(x)));
    return r[0];
}

// s[r, :] = q[r, :] . kt[:, cols] for kRows rows and kScoreCols columns.
inline void score_tile(const float* q, int64_t d, const float* kt, int64_t ldk, float* s, int64_t lds) {
    vf acc[kRows][kScoreVecs] = {};
    for (int64_t c = 0; c < d; ++c) {
        vf kv[kScoreVecs];
#pragma GCC unroll 4
        for (int v = 0; v < kScoreVecs; ++v)
            kv[v] = load(kt + c * ldk + v * W);
#pragma GCC unroll 4
        for (int r = 0; r < kRows; ++r) {
            const vf qb = splat(q[r * d + c]);
#pragma GCC unroll 4
            for (int v = 0; v < kScoreVecs; ++v)
                acc[r][v] += qb * kv[v];
        }
    }
    for (int r = 0; r < kRows; ++r)
        for (int v = 0; v < kScoreVecs; ++v)
            store(s + r * lds + v * W, acc[r][v]);
}

// o[r, cols] += p[r, :keys] . v[:keys, cols] for R rows and NV vectors of columns.
template <int R, int NV>
inline void pv_tile(const float* p, int64_t ldp, int64_t keys, const float* v, int64_t ldv, float* o, int64_t ldo) {
    vf acc[R][NV];
    for (int r = 0; r < R; ++r)
        for (int c = 0; c < NV; ++c)
            acc[r][c] = load(o + r * ldo + c * W);
    for (int64_t j = 0; j < keys; ++j) {
        vf vv[NV];
#pragma GCC unroll 4
        for (int c = 0; c < NV; ++c)
            vv[c] = load(v + j * ldv + c * W);
#pragma GCC unroll 8
        for (int r = 0; r < R; ++r) {
            const vf pb = splat(p[r * ldp + j]);
#pragma GCC unroll 4
            for (int c = 0; c < NV; ++c)
                acc[r][c] += pb * vv[c];
        }
    }
    for (int r = 0; r < R; ++r)
        for (int c = 0; c < NV; ++c)
            store(o + r * ldo + c * W, acc[r][c]);
}

// All rows of the block against one column chunk of NV vectors; R rows at a time, as many as the
// registers hold (R * NV accumulators plus NV values of V and one broadcast).
template <int NV>
void pv_rows(const float* p, int64_t ldp, int64_t rows, int64_t keys, const float* v, int64_t ldv, float* o,
             int64_t ldo) {
    constexpr int R = (SDL_ATTN_REGS - 2 - NV) / NV >= 8 ? 8 : 4;
    static_assert(kPvRowPad % R == 0, "the row padding must hold whole tiles");
    for (int64_t i = 0; i < rows; i += R)
        pv_tile<R, NV>(p + i * ldp, ldp, keys, v, ldv, o + i * ldo, ldo);
}

void pv_block(const float* p, int64_t ldp, int64_t rows, int64_t keys, const float* v, int64_t d_pad, float* o) {
    constexpr int kMaxVecs = SDL_ATTN_REGS == 32 ? 4 : 2;
    for (int64_t c = 0; c < d_pad;) {
        const int64_t vecs = std::min<int64_t>(kMaxVecs, (d_pad - c) / W);
        switch (vecs) {
        case 1: pv_rows<1>(p, ldp, rows, keys, v + c, d_pad, o + c, d_pad); break;
        case 2: pv_rows<2>(p, ldp, rows, keys, v + c, d_pad, o + c, d_pad); break;
#if SDL_ATTN_REGS == 32
        case 3: pv_rows<3>(p, ldp, rows, keys, v + c, d_pad, o + c, d_pad); break;
        case 4: pv_rows<4>(p, ldp, rows, keys, v + c, d_pad, o + c, d_pad); break;
#endif
        }
        c += vecs * W;
    }
}

// One row of the online softmax over a key block: the scores s[:valid] become weights 2^(s - m) in
// place (zero past valid), m is raised to the new maximum, and what was accumulated under the old
// one (l and the output row o) is rescaled by 2^(m_old - m_new).
void softmax_row(float* s, int64_t valid, int64_t keys, float& m, float& l, float* o, int64_t d_pad) {
    if (valid <= 0) {
        std::fill(s, s + keys, 0.0f);
        return;
    }
    const int64_t vend = valid / W * W;
    vf mv = splat(-__builtin_inff());
    for (int64_t j = 0; j < vend; j += W)
        mv = vmax(mv, load(s + j));
    float lanes[W];
    store(lanes, mv);
    float mx = lanes[0];
    for (int i = 1; i < W; ++i)
        mx = std::max(mx, lanes[i]);
    for (int64_t j = vend; j < valid; ++j)
        mx = std::max(mx, s[j]);
    const float m_new = std::max(m, mx);
    vf sum = {};
    const vf mb = splat(m_new);
    for (int64_t j = 0; j < vend; j += W) {
        const vf e = exp2v(load(s + j) - mb);
        sum += e;
        store(s + j, e);
    }
    float total = 0;
    store(lanes, sum);
    for (int i = 0; i < W; ++i)
        total += lanes[i];
    for (int64_t j = vend; j < valid; ++j) {
        s[j] = exp2s(s[j] - m_new);
        total += s[j];
    }
    std::fill(s + valid, s + keys, 0.0f);
    if (m_new > m) {
        const float alpha = exp2s(m - m_new);
        l *= alpha;
        const vf ab = splat(alpha);
        for (int64_t c = 0; c < d_pad; c += W)
            store(o + c, load(o + c) * ab);
    }
    m = m_new;
    l += total;
}

} // namespace

void attend(const float* q, int64_t rows, int64_t i0, const Head& head, bool causal, float* out, int64_t ldo,
            float* scratch) {
    const int64_t d = head.d, d_pad = head.d_pad;
    const int64_t rows_pad = round_up(rows, kPvRowPad);
    float* qb = scratch;                            // [kQueryBlock, d]
    float* s = qb + kQueryBlock * d;                // [kQueryBlock, kKeyBlock]
    float* o = s + kQueryBlock * kKeyBlock;         // [kQueryBlock, d_pad]
    float* m = o + kQueryBlock * d_pad;             // [kQueryBlock]
    float* l = m + kQueryBlock;                     // [kQueryBlock]
    std::copy(q, q + rows * d, qb);
    std::fill(qb + rows * d, qb + rows_pad * d, 0.0f);
    std::fill(o, o + rows_pad * d_pad, 0.0f);
    std::fill(m, m + rows_pad, -__builtin_inff());
    std::fill(l, l + rows_pad, 0.0f);
    // Under the causal mask no row of this block sees keys past its last query.
    const int64_t key_end = causal ? std::min(head.lk, i0 + rows) : head.lk;
    for (int64_t j0 = 0; j0 < key_end; j0 += kKeyBlock) {
        const int64_t keys = std::min(kKeyBlock, key_end - j0);
        const int64_t cols = round_up(keys, kScoreCols);
        for (int64_t i = 0; i < rows_pad; i += kRows)
            for (int64_t j = 0; j < cols; j += kScoreCols)
                score_tile(qb + i * d, d, head.kt + (j0 + j) / kKeyPad * d * kKeyPad + (j0 + j) % kKeyPad, kKeyPad,
                           s + i * kKeyBlock + j, kKeyBlock);
        for (int64_t r = 0; r < rows_pad; ++r) {
            const int64_t valid = causal ? std::clamp<int64_t>(i0 + r - j0 + 1, 0, keys) : keys;
            softmax_row(s + r * kKeyBlock, valid, keys, m[r], l[r], o + r * d_pad, d_pad);
        }
        pv_block(s, kKeyBlock, rows_pad, keys, head.v + j0 * d_pad, d_pad, o);
    }
    for (int64_t r = 0; r < rows; ++r) {
        const float inv = 1.0f / l[r];
        for (int64_t c = 0; c < d; ++c)
            out[r * ldo + c] = o[r * d_pad + c] * inv;
    }
}

} // namespace sdl::attention_kernel::SDL_ATTN_ISA
