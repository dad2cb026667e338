// LoRAs merged into tiny-sd's text encoder and U-Net: every spelling adds exactly the delta it stands
// for (checked against the fixture's float64 merge), several LoRAs add up, strength 0 changes nothing,
// any sequence of apply / change / remove ends on the base weights bit for bit in fp32 and bf16, and
// a LoRA for another model is refused naming the layer and both shapes.
#include "core/io/lora_files.h"
#include "core/io/model_files.h"
#include "core/models/load.h"
#include "core/models/lora.h"
#include "fixtures/expect_error.h"
#include "fixtures/lora_fixtures.h"

#include <QTemporaryDir>
#include <QtTest>

using namespace lora_fixtures;
using sdl_test::expect_error;

namespace {

struct Tiny {
    sdl::ClipTextModel text{nullptr};
    sdl::UNet2DConditionModel unet{nullptr};
    explicit Tiny(torch::Dtype dtype) {
        const auto files = sdl::open_model_files(data("tiny-sd"));
        text = sdl::load_text_encoder(files.text_encoder, dtype, torch::kCPU);
        unet = sdl::load_unet(files.unet, dtype, torch::kCPU);
    }
    torch::nn::Module* net(sdl::LoraNetwork n) {
        return n == sdl::LoraNetwork::TextEncoder ? static_cast<torch::nn::Module*>(text.get()) : unet.get();
    }
    torch::Tensor weight(const Key& k) { return net(k.first)->named_parameters()[k.second + ".weight"]; }
    // Every parameter of both networks, copied.
    std::map<std::string, torch::Tensor> snapshot() {
        std::map<std::string, torch::Tensor> out;
        for (auto* m : {net(sdl::LoraNetwork::TextEncoder), net(sdl::LoraNetwork::Unet)})
            for (const auto& p : m->named_parameters())
                out[std::string(m == text.get() ? "text:" : "unet:") + p.key()] = p.value().detach().clone();
        return out;
    }
    sdl::PreparedLora prepare(const std::string& path) { return sdl::prepare_lora(sdl::read_lora_file(path), text.get(), unet.get()); }
};

bool identical(const std::map<std::string, torch::Tensor>& a, const std::map<std::string, torch::Tensor>& b,
               std::string* first_difference) {
    for (const auto& [k, t] : a)
        if (!torch::equal(t, b.at(k))) {
            *first_difference = k;
            return false;
        }
    return true;
}

} // namespace

class TestLora : public QObject {
    Q_OBJECT
    QTemporaryDir tmp_;
    std::string file(const std::string& name) const { return tmp_.filePath(QString::fromStdString(name)).toStdString(); }

    // After merging w at strength s (with base weights `base`), every changed weight is base + s x delta.
    static double merge_error(Tiny& m, const std::map<std::string, torch::Tensor>& base, const Written& w, double s) {
        double worst = 0;
        for (const auto& [k, delta] : w.deltas) {
            const std::string name = std::string(k.first == sdl::LoraNetwork::TextEncoder ? "text:" : "unet:") + k.second + ".weight";
            const auto want = base.at(name).to(torch::kFloat64) + s * delta;
            worst = std::max(worst, (m.weight(k).to(torch::kFloat64) - want).abs().max().item<double>());
        }
        return worst;
    }

private slots:
    void everySpellingAddsItsDelta() {
        const auto layers = tiny_layers();
        struct Case {
            const char* name;
            Spelling spelling;
            std::vector<Layer> layers;
            Options options;
        };
        Options meta;
        meta.metadata = true;
        meta.alpha = 8;
        Options no_alpha;
        no_alpha.store_alpha = false;
        const std::vector<Case> cases = {
            {"kohya", Spelling::Kohya, layers, {}},
            {"kohya-original", Spelling::KohyaOriginal, layers, {}},
            {"kohya-no-alpha", Spelling::Kohya, only(layers, {Kind::Projection, Kind::Resnet}), no_alpha},
            {"peft", Spelling::Peft, attention_projections(layers), {}},
            {"peft-metadata", Spelling::Peft, attention_projections(layers), meta},
            {"processors", Spelling::Processor, attention_projections(layers), {}},
        };
        Tiny m(torch::kFloat32);
        const auto base = m.snapshot();
        std::map<Key, torch::Tensor> kohya_weights;
        for (const auto& c : cases) {
            const std::string path = file(std::string(c.name) + ".safetensors");
            const Written w = write_lora(path, c.layers, c.spelling, c.options);
            const auto lora = m.prepare(path);
            QCOMPARE(lora.layers.size(), c.layers.size());
            sdl::LoraMerger merger;
            merger.merge(m.text.get(), m.unet.get(), {{&lora, 0.7}});
            const double err = merge_error(m, base, w, 0.7);
            qInfo("%s: %zu layers, max |W - (base + 0.7 delta)| = %.3g", c.name, c.layers.size(), err);
            QVERIFY2(err < 1e-6, c.name);
            // Both kohya namings of the same matrices give the same weights, bit for bit.
            if (c.spelling == Spelling::Kohya && c.options.store_alpha)
                for (const auto& [k, d] : w.deltas)
                    kohya_weights[k] = m.weight(k).detach().clone();
            if (c.spelling == Spelling::KohyaOriginal)
                for (const auto& [k, t] : kohya_weights)
                    QVERIFY2(torch::equal(m.weight(k), t), k.second.c_str());
            merger.merge(m.text.get(), m.unet.get(), {});
        }
        std::string diff;
        QVERIFY2(identical(base, m.snapshot(), &diff), diff.c_str());
    }

    void severalLorasAddUpAndReportTheirChange() {
        const auto layers = tiny_layers();
        const std::string a = file("sum-a.safetensors"), b = file("sum-b.safetensors");
        Options ob;
        ob.seed = 2;
        const Written wa = write_lora(a, only(layers, {Kind::Attention, Kind::Text}), Spelling::Kohya);
        const Written wb = write_lora(b, attention_projections(layers), Spelling::Peft, ob);
        Tiny m(torch::kFloat32);
        const auto base = m.snapshot();
        const auto la = m.prepare(a), lb = m.prepare(b);
        sdl::LoraMerger merger;
        const auto changes = merger.merge(m.text.get(), m.unet.get(), {{&la, 1.0}, {&lb, -0.5}});
        QCOMPARE(changes.size(), size_t{2});
        double worst = 0;
        for (const auto& l : layers) {
            const Key k{l.network, l.module};
            torch::Tensor want = base.at(std::string(l.network == sdl::LoraNetwork::TextEncoder ? "text:" : "unet:") + l.module + ".weight").to(torch::kFloat64);
            if (wa.deltas.count(k))
                want = want + wa.deltas.at(k);
            if (wb.deltas.count(k))
                want = want - 0.5 * wb.deltas.at(k);
            worst = std::max(worst, (m.weight(k).to(torch::kFloat64) - want).abs().max().item<double>());
        }
        qInfo("two LoRAs (1, -0.5): max error %.3g", worst);
        QVERIFY(worst < 1e-6);
        // ||strength x delta|| / ||W|| per layer, as the fixture computes it.
        for (size_t i = 0; i < lb.layers.size(); ++i) {
            const auto& d = lb.layers[i];
            const Key k{d.network, d.module};
            const std::string name = std::string(d.network == sdl::LoraNetwork::TextEncoder ? "text:" : "unet:") + d.module + ".weight";
            const double want = (0.5 * wb.deltas.at(k)).norm().item<double>() / base.at(name).to(torch::kFloat64).norm().item<double>();
            QVERIFY2(std::abs(changes[1][i] - want) < 1e-5 * want, d.module.c_str());
        }
        QVERIFY(merger.kept_bytes() > 0);
    }

    void strengthZeroChangesNothing() {
        const std::string path = file("zero.safetensors");
        write_lora(path, tiny_layers(), Spelling::Kohya);
        Tiny m(torch::kFloat32);
        const auto base = m.snapshot();
        const auto lora = m.prepare(path);
        sdl::LoraMerger merger;
        merger.merge(m.text.get(), m.unet.get(), {{&lora, 0.0}});
        std::string diff;
        QVERIFY2(identical(base, m.snapshot(), &diff), diff.c_str());
        QCOMPARE(merger.kept_bytes(), int64_t{0});
    }

    void applyRemoveCyclesRestoreTheBaseExactly_data() {
        QTest::addColumn<QString>("dtype");
        QTest::newRow("fp32") << "fp32";
        QTest::newRow("bf16") << "bf16";
    }
    void applyRemoveCyclesRestoreTheBaseExactly() {
        QFETCH(QString, dtype);
        const auto layers = tiny_layers();
        const std::string a = file("cycle-a.safetensors"), b = file("cycle-b.safetensors");
        Options ob;
        ob.seed = 3;
        write_lora(a, layers, Spelling::Kohya);
        write_lora(b, only(layers, {Kind::Attention, Kind::Projection, Kind::Text}), Spelling::KohyaOriginal, ob);
        Tiny m(dtype == "bf16" ? torch::kBFloat16 : torch::kFloat32);
        const auto base = m.snapshot();
        const auto la = m.prepare(a), lb = m.prepare(b);
        sdl::LoraMerger merger;
        merger.merge(m.text.get(), m.unet.get(), {{&la, 1.0}});
        const auto with_a = m.snapshot();
        std::string diff;
        QVERIFY(!identical(base, with_a, &diff));
        merger.merge(m.text.get(), m.unet.get(), {{&la, 0.5}, {&lb, -1.0}});
        merger.merge(m.text.get(), m.unet.get(), {{&lb, 2.5}});
        merger.merge(m.text.get(), m.unet.get(), {{&la, -1.3}, {&lb, 1.0}});
        merger.merge(m.text.get(), m.unet.get(), {{&la, 1.0}});
        QVERIFY2(identical(with_a, m.snapshot(), &diff), ("no drift after changes: " + diff).c_str());
        merger.merge(m.text.get(), m.unet.get(), {});
        QVERIFY2(identical(base, m.snapshot(), &diff), diff.c_str());
        QCOMPARE(merger.kept_bytes(), int64_t{0});
    }

    void anotherFamilysLoraIsRefused() {
        // SD 2.x's text encoder is 1024 wide: a q_proj LoRA for it does not fit tiny-sd's [32, 32].
        const std::string wide = file("sd2.safetensors");
        sdl::save_tensors(wide, {{"lora_te_text_model_encoder_layers_0_self_attn_q_proj.lora_down.weight", torch::ones({4, 1024})},
                                 {"lora_te_text_model_encoder_layers_0_self_attn_q_proj.lora_up.weight", torch::ones({1024, 4})}});
        Tiny m(torch::kFloat32);
        expect_error([&] { m.prepare(wide); },
                     {wide, "lora_te_text_model_encoder_layers_0_self_attn_q_proj", "[1024, 1024]", "[32, 32]", "SD 2.x"});
        // A second transformer block per attention (SDXL has up to ten); tiny-sd has one.
        const std::string deep = file("deep.safetensors");
        std::map<std::string, torch::Tensor> t;
        for (int i = 0; i < 4; ++i) {
            const std::string k = "lora_unet_down_blocks_1_attentions_0_transformer_blocks_" + std::to_string(i + 1) + "_attn1_to_q";
            t[k + ".lora_down.weight"] = torch::ones({4, 32});
            t[k + ".lora_up.weight"] = torch::ones({32, 4});
        }
        sdl::save_tensors(deep, t);
        expect_error([&] { m.prepare(deep); },
                     {deep, "4 of its 4 layers name no layer of this SD 1.x model",
                      "lora_unet_down_blocks_1_attentions_0_transformer_blocks_1_attn1_to_q", "and 2 more", "SDXL"});
    }

    void aNetworkNotGivenIsLeftOutAndCounted() {
        const std::string path = file("both.safetensors");
        const auto layers = tiny_layers();
        write_lora(path, layers, Spelling::Kohya);
        Tiny m(torch::kFloat32);
        const auto lora = sdl::prepare_lora(sdl::read_lora_file(path), nullptr, m.unet.get());
        const auto text = only(layers, {Kind::Text}).size();
        QCOMPARE(lora.left_out.size(), text);
        QCOMPARE(lora.layers.size(), layers.size() - text);
    }
};

QTEST_APPLESS_MAIN(TestLora)
#include "test_lora.moc"
