// The bfloat16 variant of attention_kernel.inl for CPUs with AVX512-BF16 (Zen 4, Cooper Lake and
// later Xeons): vdpbf16ps multiplies pairs of bfloat16 and accumulates in float32, twice the products
// per instruction of float32 FMAs. Inputs stay as the caller's bfloat16 (no rounding of q, k, v); the
// softmax runs in float32 and only its weights are rounded to bfloat16 for the value product, as the
// plain bfloat16 path rounds them. Built with -mavx512bf16 (core/CMakeLists.txt).
#include "core/models/kernels/attention_kernel.h"

#include <algorithm>
#include <cstring>

#include <immintrin.h>

namespace sdl::attention_kernel::avx512bf16 {
namespace {

constexpr int kRows = 4;        // score tile: 4 queries x 64 keys, 16 accumulators
constexpr int kScoreVecs = 4;
constexpr int64_t kScoreCols = 16 * kScoreVecs;
constexpr int kPvRowPad = 8;
static_assert(kKeyPad % kScoreCols == 0 && kKeyBlock % kScoreCols == 0, "key tiles must divide the padding");

inline __m512 exp2v(__m512 x) {
    // As attention_kernel.inl's exp2v: a NaN stays a NaN, below -126 gives 2^-126.
    const __mmask16 low = _mm512_cmp_ps_mask(x, _mm512_set1_ps(-126.0f), _CMP_LT_OQ);
    x = _mm512_mask_mov_ps(x, low, _mm512_set1_ps(-126.0f));
    const __m512 n = _mm512_roundscale_ps(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    const __m512 f = _mm512_sub_ps(x, n);
    __m512 p = _mm512_set1_ps(1.535336188319500e-4f);
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(1.339887440266574e-3f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(9.618437357674640e-3f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(5.550332471162809e-2f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(2.402264791363012e-1f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(6.931472028550421e-1f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(1.0f));
    return _mm512_scalef_ps(p, n);
}

// s[r, :] = scale * q[r, :] . k[:, cols]: q rows of d2 bfloat16 pairs, k as [d2][ldk][2].
inline void score_tile(const uint32_t* q, int64_t d2, const uint16_t* kp, int64_t ldk, float scale, float* s,
                       int64_t lds) {
    __m512 acc[kRows][kScoreVecs];
    for (auto& row : acc)
        for (auto& a : row)
            a = _mm512_setzero_ps();
    for (int64_t c = 0; c < d2; ++c) {
        __m512bh kv[kScoreVecs];
        for (int v = 0; v < kScoreVecs; ++v)
            kv[v] = (__m512bh)_mm512_loadu_si512(kp + (c * ldk + v * 16) * 2);
        for (int r = 0; r < kRows; ++r) {
            const __m512bh qb = (__m512bh)_mm512_set1_epi32(static_cast<int>(q[r * d2 + c]));
            for (int v = 0; v < kScoreVecs; ++v)
                acc[r][v] = _mm512_dpbf16_ps(acc[r][v], qb, kv[v]);
        }
    }
    const __m512 sc = _mm512_set1_ps(scale);
    for (int r = 0; r < kRows; ++r)
        for (int v = 0; v < kScoreVecs; ++v)
            _mm512_storeu_ps(s + r * lds + v * 16, _mm512_mul_ps(acc[r][v], sc));
}

// o[r, cols] += p[r, :keys] . v[:keys, cols]: p rows of bfloat16 weights, read as pairs of keys;
// v as [keys/2][d_pad][2].
template <int R, int NV>
inline void pv_tile(const uint16_t* p, int64_t ldp, int64_t key_pairs, const uint16_t* vp, int64_t d_pad, float* o,
                    int64_t ldo) {
    __m512 acc[R][NV];
    for (int r = 0; r < R; ++r)
        for (int c = 0; c < NV; ++c)
            acc[r][c] = _mm512_loadu_ps(o + r * ldo + c * 16);
    for (int64_t j = 0; j < key_pairs; ++j) {
        __m512bh vv[NV];
        for (int c = 0; c < NV; ++c)
            vv[c] = (__m512bh)_mm512_loadu_si512(vp + (j * d_pad + c * 16) * 2);
        for (int r = 0; r < R; ++r) {
            uint32_t pair;
            std::memcpy(&pair, p + r * ldp + 2 * j, sizeof pair);
            const __m512bh pb = (__m512bh)_mm512_set1_epi32(static_cast<int>(pair));
            for (int c = 0; c < NV; ++c)
                acc[r][c] = _mm512_dpbf16_ps(acc[r][c], pb, vv[c]);
        }
    }
    for (int r = 0; r < R; ++r)
        for (int c = 0; c < NV; ++c)
            _mm512_storeu_ps(o + r * ldo + c * 16, acc[r][c]);
}

template <int NV>
void pv_rows(const uint16_t* p, int64_t ldp, int64_t rows, int64_t key_pairs, const uint16_t* vp, int64_t d_pad,
             float* o) {
    constexpr int R = NV <= 3 ? 8 : 4;
    for (int64_t i = 0; i < rows; i += R)
        pv_tile<R, NV>(p + i * ldp, ldp, key_pairs, vp, d_pad, o + i * d_pad, d_pad);
}

void pv_block(const uint16_t* p, int64_t ldp, int64_t rows, int64_t key_pairs, const uint16_t* vp, int64_t d_pad,
              float* o) {
    for (int64_t c = 0; c < d_pad;) {
        const int64_t vecs = std::min<int64_t>(4, (d_pad - c) / 16);
        const uint16_t* vc = vp + c * 2;
        switch (vecs) {
        case 1: pv_rows<1>(p, ldp, rows, key_pairs, vc, d_pad, o + c); break;
        case 2: pv_rows<2>(p, ldp, rows, key_pairs, vc, d_pad, o + c); break;
        case 3: pv_rows<3>(p, ldp, rows, key_pairs, vc, d_pad, o + c); break;
        case 4: pv_rows<4>(p, ldp, rows, key_pairs, vc, d_pad, o + c); break;
        }
        c += vecs * 16;
    }
}

inline __mmask16 first(int64_t n) { return n >= 16 ? __mmask16(0xffff) : __mmask16((1u << n) - 1); }

// As attention_kernel.inl's softmax_row, the weights written as bfloat16 to p (zero up to keys_even)
// and summed as rounded, so that the weights the value product sees sum to l.
void softmax_row(const float* s, int64_t valid, int64_t keys_even, float& m, float& l, uint16_t* p, float* o,
                 int64_t d_pad) {
    if (valid <= 0) {
        std::fill(p, p + keys_even, uint16_t{0});
        return;
    }
    __m512 mv = _mm512_set1_ps(-__builtin_inff());
    for (int64_t j = 0; j < valid; j += 16)
        mv = _mm512_mask_max_ps(mv, first(valid - j), mv, _mm512_maskz_loadu_ps(first(valid - j), s + j));
    const float m_new = std::max(m, _mm512_reduce_max_ps(mv));
    const __m512 mb = _mm512_set1_ps(m_new);
    __m512 sum = _mm512_setzero_ps();
    for (int64_t j = 0; j < keys_even; j += 16) {
        const __mmask16 live = j < valid ? first(valid - j) : 0;
        const __m512 e = _mm512_maskz_mov_ps(live, exp2v(_mm512_sub_ps(_mm512_maskz_loadu_ps(live, s + j), mb)));
        const __m256i eb = (__m256i)_mm512_cvtneps_pbh(e);
        sum = _mm512_add_ps(sum, _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(eb), 16)));
        _mm256_mask_storeu_epi16(p + j, first(keys_even - j), eb);
    }
    if (m_new > m) {
        const float alpha = _mm512_cvtss_f32(exp2v(_mm512_set1_ps(m - m_new)));
        l *= alpha;
        const __m512 ab = _mm512_set1_ps(alpha);
        for (int64_t c = 0; c < d_pad; c += 16)
            _mm512_storeu_ps(o + c, _mm512_mul_ps(_mm512_loadu_ps(o + c), ab));
    }
    m = m_new;
    l += _mm512_reduce_add_ps(sum);
}

} // namespace

void attend(const uint16_t* q, int64_t rows, int64_t i0, const HeadBf16& head, bool causal, float* out, int64_t ldo,
            float* scratch) {
    const int64_t d2 = head.d2, d_pad = head.d_pad;
    const int64_t rows_pad = round_up(rows, kPvRowPad);
    float* s = scratch;                                              // [kQueryBlock, kKeyBlock]
    float* o = s + kQueryBlock * kKeyBlock;                          // [kQueryBlock, d_pad]
    float* m = o + kQueryBlock * d_pad;                              // [kQueryBlock]
    float* l = m + kQueryBlock;                                      // [kQueryBlock]
    auto* qb = reinterpret_cast<uint32_t*>(l + kQueryBlock);         // [kQueryBlock, d2] pairs
    auto* p = reinterpret_cast<uint16_t*>(qb + kQueryBlock * d2);    // [kQueryBlock, kKeyBlock]
    std::memcpy(qb, q, sizeof(uint32_t) * rows * d2);
    std::fill(qb + rows * d2, qb + rows_pad * d2, 0u);
    std::fill(o, o + rows_pad * d_pad, 0.0f);
    std::fill(m, m + rows_pad, -__builtin_inff());
    std::fill(l, l + rows_pad, 0.0f);
    const int64_t key_end = causal ? std::min(head.lk, i0 + rows) : head.lk;
    for (int64_t j0 = 0; j0 < key_end; j0 += kKeyBlock) {
        const int64_t keys = std::min(kKeyBlock, key_end - j0);
        const int64_t keys_even = round_up(keys, 2);
        const int64_t cols = round_up(keys, kScoreCols);
        for (int64_t i = 0; i < rows_pad; i += kRows)
            for (int64_t j = 0; j < cols; j += kScoreCols)
                score_tile(qb + i * d2, d2, head.kp + ((j0 + j) / kKeyPad * d2 * kKeyPad + (j0 + j) % kKeyPad) * 2,
                           kKeyPad, head.scale, s + i * kKeyBlock + j, kKeyBlock);
        for (int64_t r = 0; r < rows_pad; ++r) {
            const int64_t valid = causal ? std::clamp<int64_t>(i0 + r - j0 + 1, 0, keys) : keys;
            softmax_row(s + r * kKeyBlock, valid, keys_even, m[r], l[r], p + r * kKeyBlock, o + r * d_pad, d_pad);
        }
        pv_block(p, kKeyBlock, rows_pad, keys_even / 2, head.vp + j0 * d_pad, d_pad, o);
    }
    for (int64_t r = 0; r < rows; ++r) {
        const float inv = 1.0f / l[r];
        for (int64_t c = 0; c < head.d; ++c)
            out[r * ldo + c] = o[r * d_pad + c] * inv;
    }
}

} // namespace sdl::attention_kernel::avx512bf16
