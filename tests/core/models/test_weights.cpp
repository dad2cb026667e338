#include "core/models/autoencoder_kl.h"
#include "core/models/weights.h"
#include "model_test_util.h"

#include <QtTest>

using namespace sdl_test;

class TestWeights : public QObject {
    Q_OBJECT

    static sdl::AutoencoderKL vae() { return sdl::AutoencoderKL(sdl::AutoencoderKLConfig::from_json(tiny(false).vae.config)); }

private slots:
    void tinyFilesMatchExactly() {
        for (const bool single : {false, true}) {
            auto m = vae();
            const auto check = sdl::check_weights(*m, tiny(single).vae);
            QVERIFY(check.ok());
        }
    }

    void missingKeyIsNamed() {
        auto files = tiny(false).vae;
        files.tensors.erase("decoder.conv_out.bias");
        auto m = vae();
        const auto check = sdl::check_weights(*m, files);
        QCOMPARE(check.missing.size(), size_t(1));
        QVERIFY(QString::fromStdString(check.missing[0]).startsWith("decoder.conv_out.bias [3]"));
        expect_error([&] { sdl::load_weights(*m, files, torch::kFloat); },
                     {"vae", "tiny-sd/vae", "missing key decoder.conv_out.bias [3]"});
    }

    void wrongShapeIsNamed() {
        auto files = tiny(false).vae;
        files.tensors.at("quant_conv.weight").shape = {8, 8, 3, 3};
        auto m = vae();
        expect_error([&] { sdl::load_weights(*m, files, torch::kFloat); },
                     {"misshapen key quant_conv.weight: module [8, 8, 1, 1], file [8, 8, 3, 3]"});
    }

    void unexpectedKeyIsNamed() {
        auto files = tiny(false).vae;
        auto extra = files.tensors.at("quant_conv.bias");
        extra.name = "encoder.extra.bias";
        files.tensors.emplace(extra.name, extra);
        auto m = vae();
        expect_error([&] { sdl::load_weights(*m, files, torch::kFloat); }, {"unexpected key encoder.extra.bias [8]"});
    }

    void nothingLoadedOnMismatch() {
        auto files = tiny(false).vae;
        files.tensors.erase("decoder.conv_out.bias");
        auto m = vae();
        const auto before = m->named_parameters()["quant_conv.weight"].data_ptr();
        try {
            sdl::load_weights(*m, files, torch::kFloat);
        } catch (const sdl::Error&) {
        }
        QCOMPARE(m->named_parameters()["quant_conv.weight"].data_ptr(), before);
    }

    void convertsIntoRequestedDtype() {
        auto m = vae();
        sdl::load_weights(*m, tiny(false).vae, torch::kBFloat16);
        for (const auto& p : m->parameters())
            QCOMPARE(p.scalar_type(), torch::kBFloat16);
        const auto& view = tiny(false).vae.tensors.at("quant_conv.weight");
        QVERIFY(m->named_parameters()["quant_conv.weight"].equal(sdl::to_tensor(view, torch::kBFloat16)));
    }

    void randomInitIsSeeded() {
        auto a = vae(), b = vae();
        sdl::init_random(*a, 7);
        sdl::init_random(*b, 7);
        QVERIFY(a->named_parameters()["decoder.conv_in.weight"].equal(b->named_parameters()["decoder.conv_in.weight"]));
        QVERIFY(torch::all(a->named_parameters()["decoder.conv_norm_out.weight"] == 1).item<bool>());
    }
};

QTEST_GUILESS_MAIN(TestWeights)
#include "test_weights.moc"
