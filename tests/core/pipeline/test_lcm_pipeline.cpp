// lcm through the whole pipeline as LCM models are used: 4 steps, guidance 1 (no classifier-free
// guidance, one batch-1 U-Net call per step). Against diffusers 0.27.2 on the tiny model
// (tests/data/lcm_reference.safetensors, e2e.*): the initial latents and every step's latents, so
// the noise lcm injects between steps must come from the run's generator as diffusers draws it.
// Then an LCM-distilled U-Net (tiny-sd's with time_cond_proj_dim and a cond_proj, distilled.*),
// guided through its guidance-scale embedding as diffusers' LatentConsistencyModelPipeline does.
#include "core/io/safetensors.h"
#include "core/io/tensor_io.h"
#include "core/models/embeddings.h"
#include "core/pipeline/pipeline.h"

#include <QTemporaryDir>
#include <QtTest>
#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>

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

double worst_step_error(const std::vector<sdl::StepEvent>& steps, const torch::Tensor& want) {
    double worst = 0;
    for (size_t i = 0; i < steps.size(); ++i) {
        const torch::Tensor expected = want[static_cast<int64_t>(i)];
        worst = std::max(worst, max_abs(steps[i].latents[0], expected) / expected.abs().max().item<double>());
    }
    return worst;
}

// tiny-sd with its U-Net made LCM-distilled: time_cond_proj_dim in the config, cond_proj among the weights.
// The reference runs' request (tools/make_lcm_reference.py): 4 lcm steps at 128x128.
sdl::GenerateRequest lcm_request(double guidance, uint64_t seed) {
    sdl::GenerateRequest r;
    r.prompt = "a dog wearing hat";
    r.scheduler = "lcm";
    r.steps = 4;
    r.guidance = guidance;
    r.width = r.height = 128;
    r.seed = seed;
    return r;
}

std::string distilled_model(const QTemporaryDir& dir, const torch::Tensor& cond_proj) {
    namespace fs = std::filesystem;
    const fs::path root = dir.filePath("tiny-lcm").toStdString();
    fs::copy(SDLENS_TEST_DATA "/tiny-sd", root, fs::copy_options::recursive);
    const fs::path unet = root / "unet";
    nlohmann::json config = nlohmann::json::parse(std::ifstream(unet / "config.json"));
    config["time_cond_proj_dim"] = cond_proj.size(1);
    std::ofstream(unet / "config.json") << config.dump(1);
    std::map<std::string, torch::Tensor> weights;
    const auto file = sdl::SafetensorsFile::open((unet / "diffusion_pytorch_model.safetensors").string());
    for (const auto& [name, view] : file->tensors())
        weights[name] = sdl::to_tensor(view);
    weights["time_embedding.cond_proj.weight"] = cond_proj;
    sdl::save_tensors((unet / "diffusion_pytorch_model.safetensors").string(), weights);
    return root.string();
}

} // namespace

class TestLcmPipeline : public QObject {
    Q_OBJECT

private slots:
    void fourStepsAtGuidanceOneMatchDiffusers() {
        const auto ref = sdl::SafetensorsFile::open(SDLENS_TEST_DATA "/lcm_reference.safetensors");
        const auto model = sdl::StableDiffusion::load(SDLENS_TEST_DATA "/tiny-sd", {"cpu", "fp32", 2});
        const auto r = lcm_request(1.0, 1234);
        Recorder rec;
        const auto image = model->generate(r, rec);

        QVERIFY(torch::equal(rec.init, sdl::to_tensor(ref->at("e2e.init"))));
        const torch::Tensor want = sdl::to_tensor(ref->at("e2e.steps"));
        QCOMPARE(static_cast<int64_t>(rec.steps.size()), want.size(0));
        const std::vector<double> timesteps{999, 759, 499, 259};
        for (size_t i = 0; i < rec.steps.size(); ++i) {
            const auto& e = rec.steps[i];
            QCOMPARE(e.timestep, timesteps[i]);
            QVERIFY(!e.noise_uncond.defined());  // no unconditional pass
            QCOMPARE(e.noise_pred.size(0), 1);
        }
        const double worst = worst_step_error(rec.steps, want);
        qInfo("lcm, 4 steps, guidance 1: worst step error %.3g of scale", worst);
        QVERIFY2(worst <= 1e-5, "step latents differ from diffusers");
        QCOMPARE(image.sizes(), (at::IntArrayRef{1, 3, 128, 128}));
        QVERIFY(torch::isfinite(image).all().item<bool>());
    }

    void guidanceEmbeddingMatchesDiffusers() {
        const auto ref = sdl::SafetensorsFile::open(SDLENS_TEST_DATA "/lcm_reference.safetensors");
        const torch::Tensor want = sdl::to_tensor(ref->at("distilled.w_embedding"));
        const torch::Tensor got = sdl::guidance_scale_embedding(sdl::to_tensor(ref->at("distilled.w")), want.size(1));
        QCOMPARE(got.sizes(), want.sizes());
        const double err = max_abs(got, want);
        qInfo("guidance-scale embedding: max abs error %.3g", err);
        // The sinusoids' arguments reach w * 1000: float32 sin and cos of those round at ~1e-5, and
        // LibTorch 1.13 and 2.x vectorise them differently (0 and 2.6e-5 from diffusers on torch 1.13).
        QVERIFY(err <= 1e-4);
    }

    void distilledUNetIsGuidedByItsEmbedding() {
        const auto ref = sdl::SafetensorsFile::open(SDLENS_TEST_DATA "/lcm_reference.safetensors");
        QTemporaryDir dir;
        const auto model = sdl::StableDiffusion::load(
            distilled_model(dir, sdl::to_tensor(ref->at("distilled.cond_proj.weight"))), {"cpu", "fp32", 2});
        auto r = lcm_request(8.5, 4321);
        r.negative_prompt = "ignored, as by diffusers' LCM pipeline";
        Recorder rec;
        model->generate(r, rec);

        QVERIFY(torch::equal(rec.init, sdl::to_tensor(ref->at("distilled.init"))));
        const torch::Tensor want = sdl::to_tensor(ref->at("distilled.steps"));
        QCOMPARE(static_cast<int64_t>(rec.steps.size()), want.size(0));
        for (const auto& e : rec.steps)
            QVERIFY(!e.noise_uncond.defined());  // the guidance is in the embedding, not a second pass
        const double worst = worst_step_error(rec.steps, want);
        qInfo("distilled U-Net, guidance 8.5: worst step error %.3g of scale", worst);
        QVERIFY2(worst <= 1e-5, "step latents differ from diffusers");
        Recorder other;
        r.guidance = 2;
        model->generate(r, other);
        QVERIFY(worst_step_error(other.steps, want) > 1e-3);  // the scale reaches the U-Net
    }
};

QTEST_GUILESS_MAIN(TestLcmPipeline)
#include "test_lcm_pipeline.moc"
