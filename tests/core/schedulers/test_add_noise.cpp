// add_noise and the CPU generator against tests/data/reference.safetensors (diffusers, float32).
#include "core/io/safetensors.h"
#include "core/io/tensor_io.h"
#include "core/schedulers/scheduler.h"

#include <ATen/CPUGeneratorImpl.h>
#include <QtTest>

class TestAddNoise : public QObject {
    Q_OBJECT
    std::shared_ptr<sdl::SafetensorsFile> ref_;
    torch::Tensor get(const std::string& key) { return sdl::to_tensor(ref_->at(key)); }

private slots:
    void initTestCase() { ref_ = sdl::SafetensorsFile::open(SDLENS_TEST_DATA "/reference.safetensors"); }

    void lmsNoiseProgression() {
        // The article's noise progression: LMS with 50 steps, add_noise at timesteps[K].
        const auto lms = sdl::make_scheduler("lms", sdl::default_scheduler_config("lms"));
        lms->set_timesteps(50);
        const torch::Tensor latents = get("addnoise.latents"), noise = get("addnoise.noise");
        for (int k : {0, 10, 20, 30, 40, 49}) {
            const torch::Tensor want = get("addnoise.lms_step" + std::to_string(k));
            const torch::Tensor got = lms->add_noise(latents, noise, lms->timesteps()[k].item<double>());
            const double err = (got - want).abs().max().item<double>();
            qInfo("lms_step%d: max abs error %.3g (scale %.3g)", k, err, want.abs().max().item<double>());
            QVERIFY(err <= 1e-5 * std::max(1.0, want.abs().max().item<double>()));
        }
    }

    void cpuGeneratorMatchesPyTorch() {
        // torch.randn(shape, generator=torch.Generator("cpu").manual_seed(seed)), bit for bit.
        const torch::Tensor got = torch::randn({1, 4, 64, 64}, at::make_generator<at::CPUGeneratorImpl>(42));
        QVERIFY(torch::equal(got, get("rng.cpu_seed42_1x4x64x64")));
        const torch::Tensor init = torch::randn({1, 4, 16, 16}, at::make_generator<at::CPUGeneratorImpl>(1234));
        QVERIFY(torch::equal(init, get("e2e.euler_a.init")));
    }
};

QTEST_GUILESS_MAIN(TestAddNoise)
#include "test_add_noise.moc"
