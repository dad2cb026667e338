#include "core/models/layers.h"
#include "core/models/onednn_conv.h"
#include "core/util/error.h"

#include <torch/torch.h>

#include <QtTest>

#include <memory>
#include <vector>

namespace {

struct Case {
    int64_t b, in, out, h, w, k, stride, padding;
    bool bias;
};

// The convolutions SD 1.x has (3x3 same, 1x1 shortcuts, the stride-2 downsamplers with and without
// padding, the 4-channel latent ends) at odd and even sizes, and an input that is a single pixel.
const std::vector<Case> kCases = {
    {2, 4, 32, 9, 7, 3, 1, 1, true},   {1, 32, 32, 16, 16, 3, 1, 1, true}, {2, 48, 16, 5, 6, 1, 1, 0, true},
    {1, 32, 32, 9, 11, 3, 2, 1, true}, {1, 32, 32, 10, 10, 3, 2, 0, true}, {1, 64, 4, 8, 8, 3, 1, 1, false},
    {3, 8, 8, 1, 1, 3, 1, 1, true},    {1, 64, 128, 4, 4, 3, 1, 1, true},
};

torch::Tensor reference(const torch::Tensor& x, const torch::Tensor& w, const torch::Tensor& b, int64_t stride,
                        int64_t padding) {
    return torch::conv2d(x.to(torch::kDouble), w.to(torch::kDouble), b.defined() ? b.to(torch::kDouble) : b, stride,
                         padding);
}

double max_abs(const torch::Tensor& a, const torch::Tensor& b) {
    return (a.to(torch::kDouble) - b.to(torch::kDouble)).abs().max().item<double>();
}

// Restores the default path whatever a test switched to.
struct ConvGuard {
    sdl::CpuConv saved = sdl::cpu_conv();
    ~ConvGuard() { sdl::set_cpu_conv(saved); }
};

} // namespace

class TestOnednnConv : public QObject {
    Q_OBJECT

private slots:
    void init() {
        if (!sdl::have_onednn_conv())
            QSKIP("this build has no oneDNN");
    }

    // float32 to float64's result within float32 rounding of a 3x3x64 sum, in both layouts of the input.
    void matchesFloat64() {
        torch::manual_seed(1);
        for (const auto& c : kCases) {
            const auto x = torch::randn({c.b, c.in, c.h, c.w});
            const auto w = torch::randn({c.out, c.in, c.k, c.k}) * 0.1;
            const auto b = c.bias ? torch::randn({c.out}) : torch::Tensor();
            const auto want = reference(x, w, b, c.stride, c.padding);
            for (const bool cl : {false, true}) {
                std::shared_ptr<sdl::OnednnConvCache> cache;
                const auto xin = cl ? x.contiguous(torch::MemoryFormat::ChannelsLast) : x;
                const auto got = sdl::onednn_conv2d(xin, w, b, c.stride, c.padding, cache);
                QCOMPARE(got.sizes(), want.sizes());
                QVERIFY(got.is_contiguous(torch::MemoryFormat::ChannelsLast));
                QVERIFY2(max_abs(got, want) < 2e-5 * (1 + want.abs().max().item<double>()),
                         qPrintable(QString("B%1 I%2 O%3 %4x%5 k%6 s%7 p%8: %9").arg(c.b).arg(c.in).arg(c.out)
                                        .arg(c.h).arg(c.w).arg(c.k).arg(c.stride).arg(c.padding)
                                        .arg(max_abs(got, want))));
            }
        }
    }

    // bfloat16 inputs and weights: products exact, sums in float32, the output rounded once, as LibTorch's
    // own bfloat16 convolution rounds it (within 2 ulp of bfloat16 at the output's scale).
    void bfloat16() {
        torch::manual_seed(2);
        for (const auto& c : kCases) {
            const auto x = torch::randn({c.b, c.in, c.h, c.w}).to(torch::kBFloat16);
            const auto w = (torch::randn({c.out, c.in, c.k, c.k}) * 0.1).to(torch::kBFloat16);
            const auto b = c.bias ? torch::randn({c.out}).to(torch::kBFloat16) : torch::Tensor();
            const auto want = reference(x, w, b, c.stride, c.padding);
            std::shared_ptr<sdl::OnednnConvCache> cache;
            const auto got = sdl::onednn_conv2d(x, w, b, c.stride, c.padding, cache);
            QCOMPARE(got.scalar_type(), torch::kBFloat16);
            QVERIFY2(max_abs(got, want) <= 2 * std::pow(2.0, -8) * want.abs().max().item<double>(),
                     qPrintable(QString::number(max_abs(got, want))));
        }
    }

    // The packed weights follow the parameter: written in place (a LoRA merge), replaced (set_data), or
    // another dtype. A stale packed copy would silently keep the old image.
    void followsWeightChanges() {
        torch::manual_seed(3);
        torch::NoGradGuard no_grad;
        sdl::Conv2d conv(8, 8, 3, 1, 1);
        conv->weight.normal_();
        conv->bias.normal_();
        const auto x = torch::randn({1, 8, 6, 6});
        auto check = [&] {
            const auto want = reference(x.to(conv->weight.scalar_type()), conv->weight, conv->bias, 1, 1);
            const auto got = conv(x.to(conv->weight.scalar_type()));
            const double tol = conv->weight.scalar_type() == torch::kBFloat16 ? 0.1 : 1e-4;
            QVERIFY2(max_abs(got, want) < tol, qPrintable(QString::number(max_abs(got, want))));
        };
        check();
        conv->weight.add_(1.0);
        check();
        conv->bias.mul_(-2.0);
        check();
        conv->weight.set_data(torch::randn({8, 8, 3, 3}));
        check();
        conv->to(torch::kBFloat16);
        check();
        conv->to(torch::kFloat);
        check();
        for (auto& p : conv->parameters())
            if (p.dim() == 4)
                p.set_data(p.contiguous(torch::MemoryFormat::ChannelsLast));
        check();
    }

    // One layer called at several sizes keeps a primitive per size and one packed weight.
    void severalInputSizes() {
        torch::manual_seed(4);
        sdl::Conv2d conv(16, 16, 3, 1, 1);
        torch::NoGradGuard no_grad;
        conv->weight.normal_();
        conv->bias.normal_();
        for (const int64_t s : {8, 5, 8, 12}) {
            const auto x = torch::randn({2, 16, s, s});
            QVERIFY(max_abs(conv(x), reference(x, conv->weight, conv->bias, 1, 1)) < 1e-4);
        }
    }

    // Packed only: the parameter's storage is freed after the first call and comes back bit for bit;
    // calls at new sizes, and LibTorch's path, work meanwhile.
    void packedOnlyReleasesAndRestores() {
        ConvGuard guard;
        torch::manual_seed(5);
        torch::NoGradGuard no_grad;
        for (const bool cl : {false, true}) {
            sdl::Conv2d conv(16, 8, 3, 1, 1);
            conv->weight.normal_();
            conv->bias.normal_();
            if (cl)
                conv->weight.set_data(conv->weight.contiguous(torch::MemoryFormat::ChannelsLast));
            const auto original = conv->weight.clone();
            sdl::set_packed_only(*conv, true);
            const auto x = torch::randn({2, 16, 7, 7});
            const auto first = conv(x);
            QCOMPARE(conv->weight.numel(), int64_t{0});
            QVERIFY(torch::equal(conv(x), first));
            const auto y = torch::randn({1, 16, 12, 5});  // a new primitive, packed from the packed copy
            QVERIFY(max_abs(conv(y), reference(y, original, conv->bias, 1, 1)) < 1e-4);
            sdl::restore_plain_weights(*conv);
            QVERIFY(torch::equal(conv->weight, original));
            QCOMPARE(conv->weight.is_contiguous(torch::MemoryFormat::ChannelsLast), cl);
            conv(x);  // released again
            sdl::set_cpu_conv(sdl::CpuConv::aten);
            QVERIFY(max_abs(conv(x), first) < 1e-4);  // LibTorch's path restores the weight first
            QVERIFY(torch::equal(conv->weight, original));
            sdl::set_cpu_conv(sdl::CpuConv::onednn);
            sdl::set_packed_only(*conv, false);
            conv(x);
            QCOMPARE(conv->weight.sizes(), original.sizes());
        }
    }

    // Training needs autograd's convolution; the aten path is the old one, bit for bit.
    void gradientsAndAten() {
        ConvGuard guard;
        sdl::Conv2d conv(4, 4, 3, 1, 1);
        {
            torch::NoGradGuard no_grad;
            conv->weight.normal_();
            conv->bias.normal_();
        }
        const auto x = torch::randn({1, 4, 5, 5}, torch::requires_grad());
        QVERIFY(!sdl::onednn_conv_applies(x, conv->weight));
        conv(x).sum().backward();
        QVERIFY(x.grad().defined());
        sdl::set_cpu_conv(sdl::CpuConv::aten);
        torch::NoGradGuard no_grad;
        const auto y = torch::randn({1, 4, 5, 5});
        QVERIFY(!sdl::onednn_conv_applies(y, conv->weight));
        QVERIFY(torch::equal(conv(y), torch::conv2d(y, conv->weight, conv->bias, 1, 1)));
        QCOMPARE(QString(sdl::cpu_conv_label()), QString("aten"));
    }
};

QTEST_GUILESS_MAIN(TestOnednnConv)
#include "test_onednn_conv.moc"
