// Parity with diffusers + peft as installed from PyPI (tools/make_pypi_reference.py; the versions are in
// tests/data/pypi_reference.json), on the tiny model: the text encoder, one U-Net call and a DPM++ 2M run,
// without LoRAs (diffusers' current SDPA attention) and with a kohya LoRA and one saved by diffusers'
// training code, both loaded by load_lora_weights and mixed by set_adapters at 0.8 and -0.5.
#include "core/io/safetensors.h"
#include "core/io/tensor_io.h"
#include "core/models/model_test_util.h"
#include "core/pipeline/pipeline.h"

#include <QtTest>

namespace {

const std::string kData = SDLENS_TEST_DATA;

struct Steps : sdl::PipelineObserver {
    std::vector<torch::Tensor> latents;
    void on_step(const sdl::StepEvent& e) override { latents.push_back(e.latents.cpu()); }
};

} // namespace

class TestPypiReference : public QObject {
    Q_OBJECT
    std::shared_ptr<sdl::SafetensorsFile> ref_;
    std::unique_ptr<sdl::StableDiffusion> sd_;

    torch::Tensor ref(const std::string& key) { return sdl::to_tensor(ref_->at(key)); }

    std::vector<sdl::LoraReport> applyLoras() {
        return sd_->set_loras(
            {{kData + "/pypi_lora_kohya.safetensors", 0.8}, {kData + "/pypi_lora_peft.safetensors", -0.5}});
    }

    // The LoRAs for the "lora" row, none for "base"; returns the key prefix.
    std::string setUp() {
        QFETCH(QString, run);
        if (run == "lora")
            applyLoras();
        else
            sd_->set_loras({});
        return run.toStdString();
    }

    static void rows() {
        QTest::addColumn<QString>("run");
        QTest::newRow("base") << "base";
        QTest::newRow("lora") << "lora";
    }

private slots:
    void initTestCase() {
        ref_ = sdl::SafetensorsFile::open(kData + "/pypi_reference.safetensors");
        sd_ = sdl::StableDiffusion::load(kData + "/tiny-sd", {"cpu", "fp32", 1});
    }

    // diffusers placed every layer of both files (pypi_reference.json): so must SD Lens.
    void everyLayerIsApplied() {
        const auto reports = applyLoras();
        QCOMPARE(reports.at(0).format, std::string("kohya"));
        QCOMPARE(reports.at(0).layers.size(), size_t{281 + 30});
        QCOMPARE(reports.at(1).layers.size(), size_t{128 + 20});
    }

    void textEncoderAndUnet_data() { rows(); }
    void textEncoderAndUnet() {
        const std::string run = setUp();
        const auto prompt = sd_->encode_prompt("a dog wearing hat");
        const auto negative = sd_->encode_prompt("");
        const double te_err = std::max(sdl_test::max_abs(prompt, ref(run + ".te.prompt")),
                                       sdl_test::max_abs(negative, ref(run + ".te.negative")));
        const auto out = sd_->predict_noise(ref("unet.sample"), 500, torch::cat({negative, prompt}));
        const double unet_err = sdl_test::max_abs(out, ref(run + ".unet.out"));
        qInfo("%s: text encoder max abs error %.3g, U-Net %.3g", run.c_str(), te_err, unet_err);
        QVERIFY(te_err <= 1e-4);
        QVERIFY(unet_err <= 1e-4);
    }

    void endToEnd_data() { rows(); }
    void endToEnd() {
        const std::string run = setUp();
        sdl::GenerateRequest r;
        r.prompt = "a dog wearing hat";
        r.steps = 8;
        r.guidance = 7.5;
        r.width = r.height = 128;
        r.scheduler = "dpmpp_2m";
        r.init_latents = ref("e2e.init");
        Steps steps;
        const auto image = sd_->generate(r, steps);
        const auto want = ref(run + ".e2e.steps");
        QCOMPARE(static_cast<int64_t>(steps.latents.size()), want.size(0));
        double worst = 0;
        for (int64_t i = 0; i < want.size(0); ++i)
            worst = std::max(worst, sdl_test::max_abs(steps.latents[static_cast<size_t>(i)][0], want[i]) /
                                        want[i].abs().max().item<double>());
        const double image_err = sdl_test::max_abs(image, ref(run + ".e2e.image"));
        qInfo("%s: worst step error %.3g of scale, image max abs error %.3g", run.c_str(), worst, image_err);
        QVERIFY2(worst <= 1e-3, "step latents differ from diffusers");
        QVERIFY2(image_err <= 2e-3, "final image differs from diffusers");
    }
};

QTEST_GUILESS_MAIN(TestPypiReference)
#include "test_pypi_reference.moc"
