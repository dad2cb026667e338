// lcm through the whole pipeline as LCM models are used: 4 steps, guidance 1 (no classifier-free
// guidance, one batch-1 U-Net call per step). Against diffusers 0.27.2 on the tiny model
// (tests/data/lcm_reference.safetensors, e2e.*): the initial latents and every step's latents, so
// the noise lcm injects between steps must come from the run's generator as diffusers draws it.
#include "core/io/safetensors.h"
#include "core/io/tensor_io.h"
#include "core/pipeline/pipeline.h"

#include <QtTest>

namespace {

struct Recorder : sdl::PipelineObserver {
    torch::Tensor init;
    std::vector<sdl::StepEvent> steps;
    void on_initial_latents(const torch::Tensor& t) override { init = t; }
    void on_step(const sdl::StepEvent& e) override { steps.push_back(e); }
};

double max_abs(const torch::Tensor& a, const torch::Tensor& b) {
    return (a.to(torch::kFloat64) - b.to(torch::kFloat64)).abs().max().item<double>();
}

} // namespace

class TestLcmPipeline : public QObject {
    Q_OBJECT

private slots:
    void fourStepsAtGuidanceOneMatchDiffusers() {
        const auto ref = sdl::SafetensorsFile::open(SDLENS_TEST_DATA "/lcm_reference.safetensors");
        const auto model = sdl::StableDiffusion::load(SDLENS_TEST_DATA "/tiny-sd", {"cpu", "fp32", 2});
        sdl::GenerateRequest r;
        r.prompt = "a dog wearing hat";
        r.scheduler = "lcm";
        r.steps = 4;
        r.guidance = 1.0;
        r.width = r.height = 128;
        r.seed = 1234;
        Recorder rec;
        const auto image = model->generate(r, rec);

        QVERIFY(torch::equal(rec.init, sdl::to_tensor(ref->at("e2e.init"))));
        const torch::Tensor want = sdl::to_tensor(ref->at("e2e.steps"));
        QCOMPARE(static_cast<int64_t>(rec.steps.size()), want.size(0));
        const std::vector<double> timesteps{999, 759, 499, 259};
        double worst = 0;
        for (size_t i = 0; i < rec.steps.size(); ++i) {
            const auto& e = rec.steps[i];
            QCOMPARE(e.timestep, timesteps[i]);
            QVERIFY(!e.noise_uncond.defined());  // no unconditional pass
            QCOMPARE(e.noise_pred.size(0), 1);
            const torch::Tensor expected = want[static_cast<int64_t>(i)];
            worst = std::max(worst, max_abs(e.latents[0], expected) / expected.abs().max().item<double>());
        }
        qInfo("lcm, 4 steps, guidance 1: worst step error %.3g of scale", worst);
        QVERIFY2(worst <= 1e-5, "step latents differ from diffusers");
        QCOMPARE(image.sizes(), (at::IntArrayRef{1, 3, 128, 128}));
        QVERIFY(torch::isfinite(image).all().item<bool>());
    }
};

QTEST_GUILESS_MAIN(TestLcmPipeline)
#include "test_lcm_pipeline.moc"
