// Swapping VAEs: a pipeline with another VAE decodes with it and keeps its own scaling factor, a bad
// VAE leaves the pipeline as it was; comparisons across VAEs (round trips and one generation's final
// latents) measure each against the right reference.
#include "core/models/load.h"
#include "core/pipeline/compare.h"
#include "core/pipeline/image_metrics.h"
#include "core/pipeline/vae_compare.h"
#include "core/util/error.h"
#include "fixtures/vae_fixtures.h"

#include <QTemporaryDir>
#include <QtTest>

#include <cmath>

namespace {

const std::string kData = SDLENS_TEST_DATA;

sdl::GenerateRequest small_request() {
    sdl::GenerateRequest r;
    r.prompt = "a red fox";
    r.steps = 3;
    r.width = r.height = 64;
    r.seed = 5;
    return r;
}

struct Quiet : sdl::ComparisonObserver {
    std::vector<std::string> labels, messages;
    torch::Tensor last_latents;
    void on_run(int, const std::string& label) override { labels.push_back(label); }
    void on_step(const sdl::StepEvent& e) override { last_latents = e.latents.to(torch::kFloat32).clone(); }
    void on_message(const std::string& m) override { messages.push_back(m); }
};

double max_abs(const torch::Tensor& a, const torch::Tensor& b) {
    return (a.to(torch::kDouble) - b.to(torch::kDouble)).abs().max().item<double>();
}

// A small image with structure, [1, 3, 64, 64] in [-1, 1].
torch::Tensor test_image() {
    auto y = torch::linspace(-1, 1, 64).view({1, 1, 64, 1}).expand({1, 1, 64, 64});
    auto x = torch::linspace(-1, 1, 64).view({1, 1, 1, 64}).expand({1, 1, 64, 64});
    return torch::cat({x, y, (x * y * 3).sin()}, 1).contiguous();
}

} // namespace

class TestVaeCompare : public QObject {
    Q_OBJECT
    QTemporaryDir tmp_;
    std::string original_vae_;  // the tiny model's VAE as a standalone file in the original names
    std::unique_ptr<sdl::StableDiffusion> sd_;

private slots:
    void initTestCase() {
        original_vae_ = tmp_.filePath("vae-ft.safetensors").toStdString();
        vae_fixtures::write_original_vae(original_vae_, "");
        sd_ = sdl::StableDiffusion::load(kData + "/tiny-sd", {"cpu", "fp32", 2});
    }

    void loadWithAnotherVae() {
        sdl::RuntimeOptions o{"cpu", "fp32", 2};
        o.vae = original_vae_;
        auto swapped = sdl::StableDiffusion::load(kData + "/tiny-sd", o);
        QCOMPARE(QString::fromStdString(swapped->info().vae), QString("vae-ft.safetensors"));
        QCOMPARE(QString::fromStdString(swapped->info().vae_spelling), QString("original (CompVis)"));
        QCOMPARE(swapped->info().scaling_factor, 0.18215);
        sdl::PipelineObserver none;
        const auto a = sd_->generate(small_request(), none);
        const auto b = swapped->generate(small_request(), none);
        // The same weights in another layout: the same image.
        QVERIFY(max_abs(a, b) <= 1e-6);
    }

    void setVaeAndBack() {
        QVERIFY(sd_->set_vae(original_vae_).empty());
        QCOMPARE(QString::fromStdString(sd_->info().vae_path), QString::fromStdString(original_vae_));
        sd_->set_vae("");
        QVERIFY(sd_->info().vae.empty());
        QCOMPARE(QString::fromStdString(sd_->info().vae_spelling), QString("diffusers"));
    }

    void badVaeKeepsTheCurrentOne() {
        const auto before = sd_->decode_latents(torch::zeros({1, 4, 8, 8}));
        QVERIFY_EXCEPTION_THROWN(sd_->set_vae(kData + "/tiny-sd/unet/diffusion_pytorch_model.safetensors"), sdl::Error);
        QVERIFY(sd_->info().vae.empty());
        QVERIFY(sd_->decode_latents(torch::zeros({1, 4, 8, 8})).equal(before));
    }

    void roundTripsAcrossVaes() {
        const auto vaes = sdl::load_vaes_for(*sd_, {"", original_vae_});
        QCOMPARE(vaes.size(), size_t(2));
        const auto image = test_image();
        const auto results = sdl::compare_vae_round_trips(vaes, image);
        QCOMPARE(results.size(), size_t(2));
        QCOMPARE(QString::fromStdString(results[0].label), QString("model's VAE"));
        // The pipeline's own round trip gives the first result.
        const auto encoded = sd_->encode_image(image);
        const auto decoded = sd_->decode_latents(encoded.latents)[0];
        QVERIFY(max_abs(results[0].latents, encoded.latents[0]) <= 1e-6);
        QVERIFY(max_abs(results[0].image, decoded) <= 1e-6);
        const auto reference = (image[0] / 2 + 0.5).clamp(0, 1);
        QVERIFY(std::abs(results[0].psnr - sdl::psnr(reference, decoded)) <= 1e-6);
        QVERIFY(std::abs(results[0].max_error - (reference - decoded).abs().max().item<double>() * 255) <= 1e-4);
        for (int c = 0; c < 4; ++c) {
            QVERIFY(std::abs(results[0].channel_mean[c] - encoded.latents[0][c].mean().item<double>()) <= 1e-6);
            QVERIFY(std::abs(results[0].channel_std[c] - encoded.latents[0][c].std().item<double>()) <= 1e-6);
        }
        QCOMPARE(results[0].difference.sizes().vec(), (std::vector<int64_t>{64, 64}));
        // Same weights, other layout: the same numbers.
        QVERIFY(max_abs(results[1].image, results[0].image) <= 1e-6);
        QVERIFY(std::abs(results[1].ssim - results[0].ssim) <= 1e-6);
    }

    void decodingOneGenerationWithEachVae() {
        const auto vaes = sdl::load_vaes_for(*sd_, {"", original_vae_});
        const auto latents = torch::randn({1, 4, 8, 8}, at::detail::createCPUGenerator(3)) * 0.8;
        const auto results = sdl::decode_with_vaes(vaes, latents);
        QVERIFY(std::isinf(results[0].psnr));
        QCOMPARE(results[0].mean_error, 0.0);
        QVERIFY(max_abs(results[0].image, sd_->decode_latents(latents)[0]) <= 1e-6);
        QVERIFY(results[1].mean_error <= 1e-6);
        QVERIFY(results[0].latents.defined() == false);
    }

    void compareVaryVae() {
        const auto c = sdl::make_comparison(small_request(), "vae", {"model", original_vae_});
        QCOMPARE(c.vaes, (std::vector<std::string>{"", original_vae_}));
        QCOMPARE(QString::fromStdString(c.labels[1]), QString("vae vae-ft.safetensors"));
        Quiet observer;
        const auto result = sdl::run_comparison(*sd_, c, observer);
        // One generation: its final latents, decoded by each VAE.
        QCOMPARE(observer.labels.size(), size_t(1));
        QCOMPARE(result.images.size(), size_t(2));
        sdl::PipelineObserver none;
        QVERIFY(max_abs(result.images[0], sd_->generate(small_request(), none)[0]) <= 1e-6);
        QVERIFY(max_abs(result.images[0], sd_->decode_latents(observer.last_latents)[0]) <= 1e-6);
        QCOMPARE(result.latent_difference[1], std::vector<double>(3, 0.0));
        QVERIFY(result.image_difference[1] <= 1e-6);
        QVERIFY_EXCEPTION_THROWN(sdl::make_comparison(small_request(), "vae", {"model", " "}), sdl::UsageError);
        const auto missing = sdl::make_comparison(small_request(), "vae", {"model", kData + "/absent.safetensors"});
        QVERIFY_EXCEPTION_THROWN(sdl::run_comparison(*sd_, missing, observer), sdl::Error);
    }
};

QTEST_GUILESS_MAIN(TestVaeCompare)
#include "test_vae_compare.moc"
