// LoRAs in the pipeline, on tests/data/tiny-sd: generating with LoRAs gives the image of a model whose
// files hold the merged weights; strength 0 and removing every LoRA give the base image bit for bit;
// a bad file leaves what was applied; the reports place each layer; a comparison of strengths puts the
// LoRA back as it was.
#include "core/pipeline/compare.h"
#include "core/pipeline/pipeline.h"
#include "fixtures/expect_error.h"
#include "fixtures/lora_fixtures.h"

#include <QTemporaryDir>
#include <QtTest>

#include <set>

using namespace lora_fixtures;
using sdl_test::expect_error;

namespace {

sdl::GenerateRequest request() {
    sdl::GenerateRequest r;
    r.prompt = "a red fox in the snow";
    r.negative_prompt = "blurry";
    r.steps = 3;
    r.width = 64;
    r.height = 48;
    r.seed = 11;
    return r;
}

torch::Tensor generate(sdl::StableDiffusion& sd) {
    sdl::PipelineObserver plain;
    return sd.generate(request(), plain);
}

double max_abs(const torch::Tensor& a, const torch::Tensor& b) {
    return (a.to(torch::kFloat64) - b.to(torch::kFloat64)).abs().max().item<double>();
}

} // namespace

class TestLoraPipeline : public QObject {
    Q_OBJECT
    QTemporaryDir tmp_;
    std::string a_, b_;  // kohya, every kind of layer; peft with metadata alpha, attention projections
    Written wa_, wb_;
    std::unique_ptr<sdl::StableDiffusion> sd_;  // fp32, no LoRA unless a test applies one
    torch::Tensor base_;

    std::string file(const std::string& name) const { return tmp_.filePath(QString::fromStdString(name)).toStdString(); }
    static sdl::RuntimeOptions fp32() {
        sdl::RuntimeOptions o;
        o.dtype = "fp32";
        return o;
    }

private slots:
    void initTestCase() {
        const auto layers = tiny_layers();
        a_ = file("style.safetensors");
        b_ = file("detail.safetensors");
        wa_ = write_lora(a_, layers, Spelling::Kohya);
        Options ob;
        ob.seed = 5;
        ob.metadata = true;
        ob.alpha = 6;
        wb_ = write_lora(b_, attention_projections(layers), Spelling::Peft, ob);
        sd_ = sdl::StableDiffusion::load(data("tiny-sd"), fp32());
        base_ = generate(*sd_);
    }

    void matchesTheMergedModel() {
        const std::string merged = file("merged");
        write_merged_model(merged, {{&wa_, 0.8}, {&wb_, -0.5}});
        auto reference = sdl::StableDiffusion::load(merged, fp32());
        const auto want = generate(*reference);
        sd_->set_loras({{a_, 0.8}, {b_, -0.5}});
        const auto got = generate(*sd_);
        const double err = max_abs(got, want);
        const double effect = (got - base_).abs().mean().item<double>();
        qInfo("LoRA vs merged model: max |image difference| %.3g (the LoRAs move the image by %.3g on average)", err,
              effect);
        QVERIFY(err < 1e-4);
        QVERIFY(effect > 1e-3);
        sd_->set_loras({});
    }

    void loadAppliesTheOptionsLoras() {
        auto o = fp32();
        o.loras = {{a_, 0.8}, {b_, -0.5}};
        auto sd = sdl::StableDiffusion::load(data("tiny-sd"), o);
        QCOMPARE(sd->loras().size(), size_t{2});
        sd_->set_loras({{a_, 0.8}, {b_, -0.5}});
        QVERIFY(torch::equal(generate(*sd), generate(*sd_)));
        sd_->set_loras({});
    }

    void strengthZeroIsNoLora() {
        sd_->set_loras({{a_, 0.0}});
        QVERIFY(torch::equal(generate(*sd_), base_));
        sd_->set_loras({});
    }

    void removingEveryLoraGivesTheBaseImage_data() {
        QTest::addColumn<QString>("dtype");
        QTest::newRow("fp32") << "fp32";
        QTest::newRow("bf16") << "bf16";
    }
    void removingEveryLoraGivesTheBaseImage() {
        QFETCH(QString, dtype);
        sdl::RuntimeOptions o;
        o.dtype = dtype.toStdString();
        auto sd = sdl::StableDiffusion::load(data("tiny-sd"), o);
        const auto base = generate(*sd);
        sd->set_loras({{a_, 1.0}});
        const auto with_a = generate(*sd);
        QVERIFY(!torch::equal(with_a, base));
        sd->set_loras({{a_, 0.3}, {b_, 1.5}});
        sd->set_loras({{b_, -2.0}});
        sd->set_loras({{a_, 1.0}});
        QVERIFY(torch::equal(generate(*sd), with_a));
        sd->set_loras({});
        QVERIFY(torch::equal(generate(*sd), base));
    }

    void reportsPlaceEveryLayer() {
        const auto reports = sd_->set_loras({{a_, 0.8}, {b_, -0.5}});
        QCOMPARE(reports.size(), size_t{2});
        const auto& a = reports[0];
        QCOMPARE(QString::fromStdString(a.name), QString("style"));
        QCOMPARE(QString::fromStdString(a.format), QString("kohya"));
        QCOMPARE(a.rank, int64_t{4});
        QCOMPARE(a.alpha, 2.0);
        QCOMPARE(a.strength, 0.8);
        QCOMPARE(a.layers.size(), wa_.deltas.size());
        std::set<std::string> levels;
        for (const auto& l : a.layers) {
            levels.insert(l.network + ":" + l.level);
            QVERIFY2(l.relative_change > 0 && std::isfinite(l.relative_change), l.module.c_str());
        }
        for (const char* want : {"text_encoder:", "unet:down 0", "unet:down 3", "unet:mid", "unet:up 0", "unet:up 3"})
            QVERIFY2(levels.count(want), want);
        QCOMPARE(QString::fromStdString(reports[1].format), QString("peft"));
        QCOMPARE(reports[1].alpha, 6.0);
        QCOMPARE(sd_->loras().size(), size_t{2});
        sd_->set_loras({});
        QVERIFY(sd_->loras().empty());
    }

    void aBadFileKeepsWhatWasApplied() {
        sd_->set_loras({{a_, 1.0}});
        const auto with_a = generate(*sd_);
        const std::string bad = file("bad.safetensors");
        sdl::save_tensors(bad, {{"lora_unet_down_blocks_0_resnets_0_conv1.hada_w1_a", torch::ones({4, 4})}});
        expect_error([&] { sd_->set_loras({{b_, 1.0}, {bad, 1.0}}); }, {bad, "LoHa"});
        expect_error([&] { sd_->set_loras({{file("absent.safetensors"), 1.0}}); }, {"absent.safetensors"});
        QCOMPARE(sd_->loras().size(), size_t{1});
        QVERIFY(torch::equal(generate(*sd_), with_a));
        sd_->set_loras({});
    }

    void comparingStrengthsPutsTheLoraBack() {
        sd_->set_loras({{a_, 0.8}});
        const auto at_08 = generate(*sd_);
        sd_->set_loras({{a_, 1.0}});
        const auto at_1 = generate(*sd_);
        sd_->set_loras({{a_, 0.8}});
        auto base = request();
        const auto c = sdl::make_comparison(base, "lora", {"0", "1"});
        QCOMPARE(QString::fromStdString(c.labels[1]), QString("lora 1"));
        sdl::ComparisonObserver quiet;
        const auto result = sdl::run_comparison(*sd_, c, quiet);
        QVERIFY(torch::equal(result.images[0], base_[0]));
        QVERIFY(torch::equal(result.images[1], at_1[0]));
        QCOMPARE(sd_->loras().size(), size_t{1});
        QCOMPARE(sd_->loras()[0].strength, 0.8);
        QVERIFY(torch::equal(generate(*sd_), at_08));
        sd_->set_loras({});
        expect_error([&] { sdl::run_comparison(*sd_, c, quiet); }, {"exactly one LoRA"});
        expect_error([&] { sdl::make_comparison(base, "lora", {"0", "strong"}); }, {"'strong'"});
    }
};

QTEST_APPLESS_MAIN(TestLoraPipeline)
#include "test_lora_pipeline.moc"
