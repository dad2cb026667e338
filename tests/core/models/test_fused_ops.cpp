#include "core/models/fused_ops.h"
#include "core/models/kernels/fused_kernel.h"

#include <ATen/Parallel.h>
#include <torch/torch.h>

#include <QtTest>

#include <string>
#include <vector>

namespace {

struct Case {
    int64_t b, c, groups, h, w;
    double mean, std;
};

// SD 1.x's shapes (32 groups, 1 to 40 channels each) at odd and even sizes, channel counts that leave
// a tail past whole vectors, one pixel, and a channel mean 1000 times its spread (cancellation).
const std::vector<Case> kCases = {
    {2, 64, 32, 9, 7, 0, 1},   {1, 320, 32, 16, 16, 1, 3}, {1, 36, 4, 5, 3, 0, 1},
    {2, 64, 32, 1, 1, -2, 1},  {1, 96, 32, 33, 31, 0, 2}, {1, 128, 32, 8, 8, 1000, 1},
};

std::vector<std::string> isas() {
    std::vector<std::string> r;
    for (const char* isa : {"generic", "avx2", "avx512"})
        if (sdl::fused_kernel::by_isa(isa))
            r.push_back(isa);
    return r;
}

torch::Tensor reference(const torch::Tensor& x, int64_t groups, const torch::Tensor& w, const torch::Tensor& b,
                        bool silu) {
    auto y = torch::group_norm(x.to(torch::kDouble).contiguous(), groups, w.to(torch::kDouble), b.to(torch::kDouble),
                               1e-5);
    return silu ? torch::silu(y) : y;
}

double max_abs(const torch::Tensor& a, const torch::Tensor& b) {
    return (a.to(torch::kDouble) - b.to(torch::kDouble)).abs().max().item<double>();
}

torch::Tensor nhwc(const torch::Tensor& x) { return x.contiguous(torch::MemoryFormat::ChannelsLast); }

} // namespace

class TestFusedOps : public QObject {
    Q_OBJECT

private slots:
    // float32: every kernel variant against float64, with and without SiLU, in the input's layout.
    void matchesFloat64() {
        torch::manual_seed(1);
        for (const auto& isa : isas())
            for (const auto& c : kCases) {
                const auto x = nhwc(torch::randn({c.b, c.c, c.h, c.w}) * c.std + c.mean);
                const auto w = torch::randn({c.c}), b = torch::randn({c.c});
                for (const bool silu : {false, true}) {
                    const auto got = sdl::group_norm_nhwc(x, c.groups, w, b, 1e-5, silu, isa);
                    QVERIFY(got.is_contiguous(torch::MemoryFormat::ChannelsLast));
                    // The group mean is applied as a float32: at mean 1000 it is 3e-5 off, times the scale.
                    const double tol = 2e-5 + std::abs(c.mean) / c.std * std::pow(2.0, -24) * w.abs().max().item<double>();
                    const double err = max_abs(got, reference(x, c.groups, w, b, silu));
                    QVERIFY2(err < tol, qPrintable(QString("%1 C%2 G%3 %4x%5 mean %6 silu %7: %8")
                                                        .arg(QString::fromStdString(isa)).arg(c.c).arg(c.groups)
                                                        .arg(c.h).arg(c.w).arg(c.mean).arg(silu).arg(err)));
                }
            }
    }

    // bfloat16: statistics in float, so the output is float64's rounded once to bfloat16 (LibTorch 1.13's
    // channels-last bfloat16 group_norm misses by whole units at 64x64 pixels).
    void bfloat16() {
        torch::manual_seed(2);
        for (const auto& isa : isas())
            for (const auto& c : {Case{1, 128, 32, 64, 64, 1, 3}, Case{2, 64, 32, 9, 7, 0, 1}}) {
                const auto x = nhwc((torch::randn({c.b, c.c, c.h, c.w}) * c.std + c.mean).to(torch::kBFloat16));
                const auto w = torch::randn({c.c}).to(torch::kBFloat16), b = torch::randn({c.c}).to(torch::kBFloat16);
                for (const bool silu : {false, true}) {
                    const auto got = sdl::group_norm_nhwc(x, c.groups, w, b, 1e-5, silu, isa);
                    QCOMPARE(got.scalar_type(), torch::kBFloat16);
                    const auto want = reference(x, c.groups, w, b, silu);
                    const double err = max_abs(got, want);
                    QVERIFY2(err <= std::pow(2.0, -8) * want.abs().max().item<double>(),
                             qPrintable(QString("%1: %2").arg(QString::fromStdString(isa)).arg(err)));
                }
            }
    }

    // In place: the same values as into a new tensor, written over the input.
    void inPlace() {
        torch::manual_seed(6);
        const auto x = nhwc(torch::randn({2, 64, 19, 13}));
        const auto w = torch::randn({64}), b = torch::randn({64});
        const auto want = sdl::group_norm_nhwc(x, 32, w, b, 1e-5, true);
        auto y = x.clone();
        const auto got = sdl::group_norm_nhwc(y, 32, w, b, 1e-5, true, {}, true);
        QCOMPARE(got.data_ptr(), y.data_ptr());
        QVERIFY(torch::equal(y, want));
    }

    // The sums are added in block order, not thread order: the same bits on any number of threads.
    void sameBitsOnAnyThreadCount() {
        torch::manual_seed(3);
        const auto x = nhwc(torch::randn({2, 64, 40, 40}));
        const auto w = torch::randn({64}), b = torch::randn({64});
        const int threads = at::get_num_threads();
        at::set_num_threads(1);
        const auto one = sdl::group_norm_nhwc(x, 32, w, b, 1e-5, true);
        at::set_num_threads(2);
        const auto two = sdl::group_norm_nhwc(x, 32, w, b, 1e-5, true);
        at::set_num_threads(threads);
        QVERIFY(torch::equal(one, two));
    }

    // A NaN in the input reaches its group's outputs, as LibTorch's group_norm lets it, so the
    // pipeline's NaN check still sees it.
    void nanPropagates() {
        for (const auto& isa : isas()) {
            auto x = torch::randn({1, 64, 8, 8});
            x[0][5][3][3] = NAN;
            const auto got = sdl::group_norm_nhwc(nhwc(x), 32, torch::ones({64}), torch::zeros({64}), 1e-5, true, isa);
            QVERIFY(got.isnan().any().item<bool>());
            QVERIFY(!got.select(1, 40).isnan().any().item<bool>());  // another group
        }
    }

    // LayerNorm over rows: every variant against float64, widths with and without a tail past whole
    // vectors, a row mean 1000 times its spread; bfloat16 within one rounding.
    void layerNormMatchesFloat64() {
        torch::manual_seed(4);
        for (const auto& isa : isas())
            for (const int64_t c : {320, 37, 1280, 1}) {
                for (const double mean : {0.0, 1000.0}) {
                    const auto x = torch::randn({2, 9, c}) + mean;
                    const auto w = torch::randn({c}), b = torch::randn({c});
                    const auto want = torch::layer_norm(x.to(torch::kDouble), {c}, w.to(torch::kDouble),
                                                        b.to(torch::kDouble), 1e-5);
                    const double err = max_abs(sdl::layer_norm_rows(x, w, b, 1e-5, isa), want);
                    const double tol = 2e-5 + mean * std::pow(2.0, -24) * w.abs().max().item<double>() * 4;
                    QVERIFY2(err < tol, qPrintable(QString("%1 c%2 mean %3: %4").arg(QString::fromStdString(isa))
                                                       .arg(c).arg(mean).arg(err)));
                }
                const auto xb = torch::randn({3, c}).to(torch::kBFloat16);
                const auto wb = torch::randn({c}).to(torch::kBFloat16), bb = torch::randn({c}).to(torch::kBFloat16);
                const auto got = sdl::layer_norm_rows(xb, wb, bb, 1e-5, isa);
                QCOMPARE(got.scalar_type(), torch::kBFloat16);
                const auto want = torch::layer_norm(xb.to(torch::kDouble), {c}, wb.to(torch::kDouble),
                                                    bb.to(torch::kDouble), 1e-5);
                QVERIFY(max_abs(got, want) <= std::pow(2.0, -8) * want.abs().max().item<double>() + 1e-6);
            }
    }

    // GEGLU: value * gelu(gate) with the exact GELU, against float64's erf to a few float32 roundings of the
    // erfc chain (5e-6 relative), from -12 to 12 (where gelu is -7e-32 and 12); a NaN gate stays NaN.
    void gegluMatchesFloat64() {
        torch::manual_seed(5);
        for (const auto& isa : isas())
            for (const int64_t f : {1280, 37}) {
                auto x = torch::randn({2, 5, 2 * f}) * 3;
                x.narrow(-1, f, f).select(1, 0).copy_(torch::linspace(-12, 12, f).expand({2, f}));
                const auto xd = x.to(torch::kDouble);
                const auto want = xd.narrow(-1, 0, f) * torch::gelu(xd.narrow(-1, f, f));
                const auto got = sdl::geglu(x, isa);
                QCOMPARE(got.sizes(), want.sizes());
                const double err = ((got.to(torch::kDouble) - want).abs() / (want.abs() + 1e-6)).max().item<double>();
                QVERIFY2(err < 5e-6, qPrintable(QString("%1 f%2: relative %3").arg(QString::fromStdString(isa))
                                                    .arg(f).arg(err)));
                const auto xb = x.to(torch::kBFloat16);
                const auto wantb = xb.to(torch::kDouble).narrow(-1, 0, f) * torch::gelu(xb.to(torch::kDouble).narrow(-1, f, f));
                QVERIFY(max_abs(sdl::geglu(xb, isa), wantb) <= std::pow(2.0, -8) * wantb.abs().max().item<double>());
                x[0][0][f + 3] = NAN;
                QVERIFY(std::isnan(sdl::geglu(x, isa)[0][0][3].item<float>()));
            }
    }

    // Where the kernel runs: channels-last bfloat16 only; the rest keeps LibTorch's path.
    void appliesToChannelsLastOnly() {
        QVERIFY(sdl::group_norm_nhwc_applies(nhwc(torch::randn({1, 32, 4, 4}, torch::kBFloat16))));
        QVERIFY(!sdl::group_norm_nhwc_applies(nhwc(torch::randn({1, 32, 4, 4}))));  // float32: LibTorch's
        QVERIFY(!sdl::group_norm_nhwc_applies(torch::randn({1, 32, 4, 4}, torch::kBFloat16)));
        QVERIFY(!sdl::group_norm_nhwc_applies(nhwc(torch::randn({1, 32, 4, 4}, torch::kDouble))));
        QVERIFY(!sdl::group_norm_nhwc_applies(nhwc(torch::randn({1, 32, 4, 4}, torch::kBFloat16)).requires_grad_()));
    }
};

QTEST_APPLESS_MAIN(TestFusedOps)
#include "test_fused_ops.moc"
