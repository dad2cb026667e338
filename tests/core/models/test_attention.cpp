#include "core/models/attention.h"
#include "core/models/flash_attention.h"
#include "core/models/kernels/attention_kernel.h"
#include "core/util/error.h"

#include <torch/torch.h>

#include <QtTest>

#include <string>
#include <vector>

namespace {

struct Case {
    int64_t b, heads, lq, lk, d;
    bool causal;
};

// The shapes SD 1.x meets and the edges of the blocking: one query, 77 keys (cross-attention and
// CLIP), lengths that are not multiples of the 64-query or 256-key blocks, head sizes 1 to 512 (the
// VAE's single head), and keys spanning several blocks so the online softmax rescales.
const std::vector<Case> kCases = {
    {1, 1, 1, 1, 1, false},    {1, 2, 1, 77, 64, false},   {2, 8, 257, 77, 40, false},
    {2, 3, 300, 300, 40, false}, {1, 1, 130, 600, 512, false}, {2, 4, 200, 200, 4, false},
    {1, 12, 77, 77, 64, true}, {2, 2, 70, 70, 160, false},  {1, 3, 65, 513, 17, false},
    {1, 2, 129, 129, 80, true}, {1, 1, 5, 1000, 3, false},
};

// [B, heads, L, d] as the attention layers pass them: a transposed view of [B, L, heads * d].
torch::Tensor heads_view(int64_t b, int64_t heads, int64_t l, int64_t d, double scale = 1.0) {
    return (torch::randn({b, l, heads, d}) * scale).transpose(1, 2);
}

torch::Tensor reference(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v, bool causal) {
    const auto qd = q.to(torch::kDouble), kd = k.to(torch::kDouble), vd = v.to(torch::kDouble);
    auto s = torch::matmul(qd, kd.transpose(-1, -2)) / std::sqrt(static_cast<double>(q.size(-1)));
    if (causal)
        s.masked_fill_(torch::ones({q.size(2), k.size(2)}, torch::kBool).triu(1), -INFINITY);
    return torch::matmul(torch::softmax(s, -1), vd);
}

std::vector<std::string> isas() {
    std::vector<std::string> r{"generic"};
    const std::string best = sdl::attention_kernel::best_isa();
    if (best == "avx2" || best == "avx512")
        r.push_back("avx2");
    if (best == "avx512")
        r.push_back("avx512");
    return r;
}

QString label(const Case& c, const std::string& isa) {
    return QString("%1 B%2 H%3 Lq%4 Lk%5 d%6%7")
        .arg(QString::fromStdString(isa)).arg(c.b).arg(c.heads).arg(c.lq).arg(c.lk).arg(c.d)
        .arg(c.causal ? " causal" : "");
}

} // namespace

class TestAttention : public QObject {
    Q_OBJECT

private slots:
    void initTestCase() { torch::manual_seed(7); }

    void float32MatchesFloat64() {
        for (const auto& isa : isas())
            for (const auto& c : kCases) {
                const auto q = heads_view(c.b, c.heads, c.lq, c.d), k = heads_view(c.b, c.heads, c.lk, c.d),
                           v = heads_view(c.b, c.heads, c.lk, c.d);
                const auto out = sdl::flash_attention(q, k, v, c.causal, isa);
                QCOMPARE(out.sizes(), q.sizes());
                QCOMPARE(out.scalar_type(), torch::kFloat);
                const double err = (out.to(torch::kDouble) - reference(q, k, v, c.causal)).abs().max().item<double>();
                QVERIFY2(err < 1e-5, qPrintable(label(c, isa) + QString(": max error %1").arg(err)));
            }
    }

    // Scores of a few hundred: the row maximum moves from block to block and everything accumulated
    // under the old one is rescaled; exp of unshifted scores would overflow float32. Scores that large
    // carry float32 rounding of ~3e-5 themselves (the plain path's too), hence 1e-4 here.
    void largeScoresRescale() {
        for (const auto& isa : isas()) {
            const auto q = heads_view(1, 2, 100, 40, 8.0), k = heads_view(1, 2, 900, 40, 8.0),
                       v = heads_view(1, 2, 900, 40);
            const auto out = sdl::flash_attention(q, k, v, false, isa);
            const double err = (out.to(torch::kDouble) - reference(q, k, v, false)).abs().max().item<double>();
            QVERIFY2(err < 1e-4, qPrintable(QString::fromStdString(isa) + QString(": max error %1").arg(err)));
        }
    }

    // bfloat16 in and out, float32 inside: the only error is the output's rounding to bfloat16 (8
    // significant bits), so each value is within 2^-8 of itself from the float64 result.
    void bfloat16WithinItsRounding() {
        for (const auto& isa : isas())
            for (const auto& c : kCases) {
                const auto q = heads_view(c.b, c.heads, c.lq, c.d).to(torch::kBFloat16),
                           k = heads_view(c.b, c.heads, c.lk, c.d).to(torch::kBFloat16),
                           v = heads_view(c.b, c.heads, c.lk, c.d).to(torch::kBFloat16);
                const auto out = sdl::flash_attention(q, k, v, c.causal, isa);
                QCOMPARE(out.scalar_type(), torch::kBFloat16);
                const auto ref = reference(q, k, v, c.causal);
                const auto excess = (out.to(torch::kDouble) - ref).abs() - (ref.abs() * std::ldexp(1.0, -8) + 1e-6);
                QVERIFY2(excess.max().item<double>() <= 0, qPrintable(label(c, isa)));
            }
    }

    // The AVX512-BF16 kernel also rounds the softmax weights to bfloat16 (relative 2^-9 each) before
    // the value product: the output moves by up to 2^-9 of sum_j p_j |v_j|, at most 2^-9 max |v|,
    // on top of its own rounding.
    void avx512bf16WithinWeightRounding() {
        if (!sdl::attention_kernel::bf16_attend())
            QSKIP("this CPU has no AVX512-BF16");
        for (const auto& c : kCases) {
            const auto q = heads_view(c.b, c.heads, c.lq, c.d).to(torch::kBFloat16),
                       k = heads_view(c.b, c.heads, c.lk, c.d).to(torch::kBFloat16),
                       v = heads_view(c.b, c.heads, c.lk, c.d).to(torch::kBFloat16);
            const auto out = sdl::flash_attention(q, k, v, c.causal, "avx512bf16");
            QCOMPARE(out.scalar_type(), torch::kBFloat16);
            const auto ref = reference(q, k, v, c.causal);
            const double vmax = v.abs().max().item<double>();
            const auto excess = (out.to(torch::kDouble) - ref).abs() -
                                (ref.abs() * std::ldexp(1.0, -8) + vmax * std::ldexp(1.0, -9) + 1e-6);
            QVERIFY2(excess.max().item<double>() <= 0, qPrintable(label(c, "avx512bf16")));
        }
        QVERIFY_THROWS_EXCEPTION(std::exception, sdl::flash_attention(torch::zeros({1, 1, 1, 2}), torch::zeros({1, 1, 1, 2}),
                                                                      torch::zeros({1, 1, 1, 2}), false, "avx512bf16"));
    }

    // The heads come back as a view of [B, L, heads, d], so merging them is free.
    void outputMergesHeadsWithoutACopy() {
        const auto q = heads_view(2, 8, 33, 40);
        const auto out = sdl::flash_attention(q, heads_view(2, 8, 77, 40), heads_view(2, 8, 77, 40));
        QVERIFY(out.transpose(1, 2).is_contiguous());
    }

    // A NaN reaches the output (callers look for NaNs there), in that query's row only.
    void nanPropagates() {
        for (const auto& isa : isas()) {
            auto q = torch::randn({1, 1, 100, 16});
            const auto k = torch::randn({1, 1, 300, 16}), v = torch::randn({1, 1, 300, 16});
            q[0][0][42][3] = NAN;
            const auto out = sdl::flash_attention(q, k, v, false, isa);
            QVERIFY(out[0][0][42].isnan().all().item<bool>());
            QCOMPARE(out.isnan().sum().item<int64_t>(), int64_t{16});
        }
        auto q = torch::randn({1, 1, 100, 16}, torch::kBFloat16);
        q[0][0][42][3] = NAN;
        const auto out = sdl::flash_attention(q, torch::randn({1, 1, 300, 16}, torch::kBFloat16),
                                              torch::randn({1, 1, 300, 16}, torch::kBFloat16));
        QVERIFY(out[0][0][42].isnan().all().item<bool>());
        QCOMPARE(out.isnan().sum().item<int64_t>(), int64_t{16});
    }

    // scaled_attention takes the kernel by default; the plain path (bmm, softmax, bmm) gives the same
    // numbers to 1e-5, also in CLIP's causal form.
    void scaledAttentionMatchesPlainPath() {
        for (const bool causal : {false, true}) {
            const auto q = heads_view(2, 8, 300, 40), k = heads_view(2, 8, 300, 40), v = heads_view(2, 8, 300, 40);
            QCOMPARE(sdl::cpu_attention(), sdl::CpuAttention::flash);
            const auto flash = sdl::scaled_attention(q, k, v, causal);
            sdl::set_cpu_attention(sdl::CpuAttention::plain);
            const auto plain = sdl::scaled_attention(q, k, v, causal);
            sdl::set_cpu_attention(sdl::CpuAttention::flash);
            QVERIFY((flash - plain).abs().max().item<double>() < 1e-5);
        }
    }

    // LibTorch 2.x's scaled_dot_product_attention, where there is one, matches the plain path to 1e-4 in
    // float32 (the parity bound), causal too; a LibTorch without it refuses the choice.
    void sdpaMatchesPlainPath() {
        const auto before = sdl::cpu_attention();
        if (!sdl::have_sdpa()) {
            QVERIFY_THROWS_EXCEPTION(sdl::UsageError, sdl::set_cpu_attention(sdl::CpuAttention::sdpa));
            QCOMPARE(sdl::cpu_attention(), before);
            return;
        }
        for (const bool causal : {false, true}) {
            const auto q = heads_view(2, 8, 300, 40), k = heads_view(2, 8, 300, 40), v = heads_view(2, 8, 300, 40);
            sdl::set_cpu_attention(sdl::CpuAttention::sdpa);
            const auto sdpa = sdl::scaled_attention(q, k, v, causal);
            QCOMPARE(std::string(sdl::cpu_attention_label()), std::string("sdpa"));
            sdl::set_cpu_attention(sdl::CpuAttention::plain);
            const auto plain = sdl::scaled_attention(q, k, v, causal);
            sdl::set_cpu_attention(before);
            QVERIFY((sdpa - plain).abs().max().item<double>() < 1e-4);
        }
    }

    void unknownKernelIsNamed() {
        QVERIFY_THROWS_EXCEPTION(std::exception, sdl::flash_attention(torch::zeros({1, 1, 1, 1}), torch::zeros({1, 1, 1, 1}),
                                                                      torch::zeros({1, 1, 1, 1}), false, "neon"));
    }
};

QTEST_APPLESS_MAIN(TestAttention)
#include "test_attention.moc"
