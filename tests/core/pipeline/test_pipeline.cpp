// End-to-end parity with diffusers' StableDiffusionPipeline on the tiny reference model:
// every scheduler, every step's latents, the final image; seeds, the trace file, single file = folder.
#include "core/io/safetensors.h"
#include "core/io/tensor_io.h"
#include "core/models/onednn_conv.h"
#include "core/pipeline/pipeline.h"
#include "core/pipeline/trace.h"
#include "core/util/error.h"
#include "fixtures/expect_error.h"


#include <QTemporaryDir>
#include <QtTest>

#include <cmath>

namespace {

const std::string kData = SDLENS_TEST_DATA;

struct Recorder : sdl::PipelineObserver {
    std::vector<torch::Tensor> latents, x0, noise, attention;
    std::vector<std::vector<torch::Tensor>> levels;
    torch::Tensor init, embeddings;
    int cancel_after = -1;
    void on_initial_latents(const torch::Tensor& t) override { init = t; }
    void on_text_embeddings(const torch::Tensor& e) override { embeddings = e; }
    void on_step(const sdl::StepEvent& e) override {
        latents.push_back(e.latents.cpu());
        x0.push_back(e.pred_x0.cpu());
        noise.push_back(e.noise_pred.cpu());
        if (e.attention.defined())
            attention.push_back(e.attention);
        if (!e.attention_levels.empty())
            levels.push_back(e.attention_levels);
    }
    bool cancel_requested() const override {
        return cancel_after >= 0 && static_cast<int>(latents.size()) >= cancel_after;
    }
};

double max_abs(const torch::Tensor& a, const torch::Tensor& b) {
    return (a.to(torch::kFloat64) - b.to(torch::kFloat64)).abs().max().item<double>();
}

} // namespace

class TestPipeline : public QObject {
    Q_OBJECT
    std::shared_ptr<sdl::SafetensorsFile> ref_;
    std::unique_ptr<sdl::StableDiffusion> folder_;

    torch::Tensor ref(const std::string& key) { return sdl::to_tensor(ref_->at(key)); }

    sdl::GenerateRequest e2e_request(const std::string& scheduler) {
        sdl::GenerateRequest r;
        r.prompt = "a dog wearing hat";
        r.steps = 8;
        r.guidance = 7.5;
        r.width = r.height = 128;
        r.scheduler = scheduler;
        if (scheduler == "euler_a")
            r.seed = 1234;
        else
            r.init_latents = ref("e2e." + scheduler + ".init");
        return r;
    }

private slots:
    void initTestCase() {
        ref_ = sdl::SafetensorsFile::open(kData + "/reference.safetensors");
        folder_ = sdl::StableDiffusion::load(kData + "/tiny-sd", {"cpu", "fp32", 2});
    }

    void endToEnd_data() {
        QTest::addColumn<QString>("scheduler");
        for (const char* s : {"lms", "pndm", "ddim", "euler", "euler_a", "dpmpp_2m"})
            QTest::newRow(s) << QString(s);
    }
    void endToEnd() {
        QFETCH(QString, scheduler);
        const std::string name = scheduler.toStdString();
        Recorder rec;
        const auto image = folder_->generate(e2e_request(name), rec);

        const auto steps = ref("e2e." + name + ".steps");
        QCOMPARE(static_cast<int64_t>(rec.latents.size()), steps.size(0));
        double worst = 0;
        for (size_t i = 0; i < rec.latents.size(); ++i) {
            const auto expected = steps[static_cast<int64_t>(i)];
            const double scale = expected.abs().max().item<double>();
            worst = std::max(worst, max_abs(rec.latents[i][0], expected) / scale);
        }
        const double image_err = max_abs(image, ref("e2e." + name + ".image"));
        qInfo("%s: worst step error %.3g of scale, image max abs error %.3g", name.c_str(), worst, image_err);
        QVERIFY2(worst <= 1e-3, "step latents differ from diffusers");
        QVERIFY2(image_err <= 2e-3, "final image differs from diffusers");
        if (name == "euler_a")
            QVERIFY(max_abs(rec.init, ref("e2e.euler_a.init")) == 0.0);
    }

    void attentionMapsArePerTokenDistributions() {
        auto r = e2e_request("lms");
        r.steps = 2;
        r.record_attention = true;
        Recorder rec;
        const auto with_maps = folder_->generate(r, rec);
        QCOMPARE(static_cast<int>(rec.attention.size()), 2);
        const auto& a = rec.attention[0];
        QCOMPARE(a.sizes(), (at::IntArrayRef{77, 16, 16}));
        // Every layer's softmax sums to 1 over the tokens; bilinear upsampling and averaging keep that.
        QVERIFY((a.sum(0) - 1).abs().max().item<double>() < 1e-5);
        QVERIFY(a.min().item<double>() >= 0);
        // Levels finest first (16, 8, 4, 2 at 128x128); the overall map weighs each by its layer count
        // (2+3, 2+3, 2+3 and the mid block's 1 of the 16 layers).
        QCOMPARE(static_cast<int>(rec.levels.size()), 2);
        const auto& levels = rec.levels[0];
        QCOMPARE(static_cast<int>(levels.size()), 4);
        const int64_t sizes[] = {16, 8, 4, 2};
        const double layers[] = {5, 5, 5, 1};
        auto weighted = torch::zeros_like(a);
        for (size_t i = 0; i < levels.size(); ++i) {
            QCOMPARE(levels[i].sizes(), (at::IntArrayRef{77, sizes[i], sizes[i]}));
            QVERIFY((levels[i].sum(0) - 1).abs().max().item<double>() < 1e-5);
            weighted += layers[i] / 16 * torch::nn::functional::interpolate(
                levels[i].unsqueeze(0), torch::nn::functional::InterpolateFuncOptions()
                                            .size(std::vector<int64_t>{16, 16})
                                            .mode(torch::kBilinear)
                                            .align_corners(false))[0];
        }
        QVERIFY(max_abs(weighted, a) < 1e-5);
        Recorder plain;
        r.record_attention = false;
        QCOMPARE(max_abs(folder_->generate(r, plain), with_maps), 0.0);
        QVERIFY(plain.attention.empty() && plain.levels.empty());
    }

    // bf16 is the CPU default where the CPU has bf16 instructions; this is the error that choice accepts.
    void bf16ImagesStayCloseToFp32() {
        auto bf16 = sdl::StableDiffusion::load(kData + "/tiny-sd", {"cpu", "bf16", 2});
        auto r = e2e_request("lms");
        Recorder a, b;
        const auto reference = folder_->generate(r, a);
        const auto image = bf16->generate(r, b);
        const double mean = (image - reference).abs().mean().item<double>();
        const double mse = (image - reference).pow(2).mean().item<double>();
        const double psnr = 10 * std::log10(1 / mse);
        qInfo("bf16 vs fp32 image: mean abs %.2f/255, PSNR %.1f dB", mean * 255, psnr);
        QVERIFY(mean <= 4.0 / 255);
        QVERIFY(psnr >= 33);
    }

    void seedsMatchTorchCpuGenerator() {
        const auto mine = sdl::seeded_randn({1, 4, 64, 64}, 42);
        QCOMPARE(max_abs(mine, ref("rng.cpu_seed42_1x4x64x64")), 0.0);
    }

    void singleFileGivesTheSameImage() {
        auto single = sdl::StableDiffusion::load(kData + "/tiny-sd.single-file.safetensors", {"cpu", "fp32", 2});
        Recorder a, b;
        auto r = e2e_request("lms");
        r.steps = 3;
        const auto ia = folder_->generate(r, a);
        const auto ib = single->generate(r, b);
        QCOMPARE(max_abs(ia, ib), 0.0);
        QCOMPARE(single->info().layout, std::string("single-file"));
    }

    // RuntimeOptions::channels_last: the same steps and image, and the same decode after a VAE swap.
    void channelsLastGivesTheSameImage() {
        sdl::RuntimeOptions o{"cpu", "fp32", 2};
        o.channels_last = true;
        auto nhwc = sdl::StableDiffusion::load(kData + "/tiny-sd", o);
        QVERIFY(nhwc->info().channels_last);
        auto r = e2e_request("dpmpp_2m");
        Recorder a, b;
        const auto ia = folder_->generate(r, a);
        const auto ib = nhwc->generate(r, b);
        QVERIFY(ib.is_contiguous());
        double worst = 0;
        for (size_t i = 0; i < a.latents.size(); ++i)
            worst = std::max(worst, max_abs(a.latents[i], b.latents[i]) / a.latents[i].abs().max().item<double>());
        const double image = max_abs(ia, ib);
        qInfo("channels-last vs NCHW: worst step latent %.3g of scale, image %.3g", worst, image);
        QVERIFY(worst <= 1e-4);
        QVERIFY(image <= 1e-4);

        nhwc->set_vae(kData + "/tiny-sd.single-file.safetensors");
        QVERIFY(max_abs(nhwc->decode_latents(a.latents.back()), folder_->decode_latents(a.latents.back())) <= 1e-4);
        QVERIFY(nhwc->generate(r, b).sizes() == ia.sizes());
    }

    // bf16 in NHWC (--memory-format channels-last, and the oneDNN convolutions, which hand on NHWC
    // activations) against LibTorch's own NCHW path: within bf16's own drift on both LibTorches. Before
    // SD Lens' GroupNorm kernel, 1.13's channels-last bf16 group_norm put these images 26/255 away.
    void channelsLastInBf16() {
        sdl::RuntimeOptions o{"cpu", "bf16", 2};
        o.channels_last = true;
        auto nhwc = sdl::StableDiffusion::load(kData + "/tiny-sd", o);
        auto model = sdl::StableDiffusion::load(kData + "/tiny-sd", {"cpu", "bf16", 2});
        auto r = e2e_request("lms");
        Recorder a, b, c;
        const auto channels_last = nhwc->generate(r, a);
        const auto onednn = model->generate(r, b);
        const sdl::CpuConv saved = sdl::cpu_conv();
        sdl::set_cpu_conv(sdl::CpuConv::aten);
        const auto nchw = model->generate(r, c);
        sdl::set_cpu_conv(saved);
        for (const auto& [name, image] : {std::pair{"channels-last", channels_last}, std::pair{"onednn", onednn}}) {
            const double mean = (image - nchw).abs().mean().item<double>();
            qInfo("bf16 %s vs LibTorch's bf16 NCHW image: mean abs %.2f/255", name, mean * 255);
            QVERIFY(mean <= 4.0 / 255);
        }
    }

    // A NaN in the latents: refused at the step it appears, or with deferred_nan_check (no host
    // sync per step) after the last step, with the same message.
    void nanInTheLatentsIsReported() {
        auto r = e2e_request("ddim");
        r.steps = 3;
        r.init_latents = torch::full_like(r.init_latents, std::nan(""));
        Recorder at_once;
        sdl_test::expect_error([&] { folder_->generate(r, at_once); }, {"numerical failure", "denoising loop"});
        QCOMPARE(static_cast<int>(at_once.latents.size()), 0);
        sdl::RuntimeOptions o{"cpu", "fp32", 2};
        o.deferred_nan_check = true;
        auto deferred = sdl::StableDiffusion::load(kData + "/tiny-sd", o);
        Recorder after;
        sdl_test::expect_error([&] { deferred->generate(r, after); }, {"numerical failure", "denoising loop"});
        QCOMPARE(static_cast<int>(after.latents.size()), 3);
        r.init_latents = ref("e2e.ddim.init");
        Recorder a, b;
        QCOMPARE(max_abs(folder_->generate(r, a), deferred->generate(r, b)), 0.0);
    }

    void countUsesConsecutiveSeeds() {
        sdl::GenerateRequest r;
        r.prompt = "a cat";
        r.steps = 2;
        r.width = r.height = 64;
        r.scheduler = "euler_a";
        r.seed = 7;
        r.count = 2;
        Recorder rec;
        const auto both = folder_->generate(r, rec);
        QCOMPARE(both.size(0), int64_t(2));
        r.count = 1;
        r.seed = 8;
        Recorder rec2;
        const auto second = folder_->generate(r, rec2);
        QCOMPARE(max_abs(both[1], second[0]), 0.0);
    }

    void cancelStopsBeforeTheNextUNetCall() {
        Recorder rec;
        rec.cancel_after = 2;
        auto r = e2e_request("ddim");
        QVERIFY_THROWS_EXCEPTION(sdl::Cancelled, folder_->generate(r, rec));
        QCOMPARE(static_cast<int>(rec.latents.size()), 2);
    }

    void rejectsBadSizesAndSteps() {
        Recorder rec;
        auto r = e2e_request("lms");
        r.width = 100;
        QVERIFY_THROWS_EXCEPTION(sdl::UsageError, folder_->generate(r, rec));
        r = e2e_request("lms");
        r.steps = 0;
        QVERIFY_THROWS_EXCEPTION(sdl::UsageError, folder_->generate(r, rec));
        r = e2e_request("lms");
        r.scheduler = "nope";
        QVERIFY_THROWS_EXCEPTION(sdl::Error, folder_->generate(r, rec));
    }

    void img2imgRunsTheRemainingSteps() {
        sdl::GenerateRequest r;
        r.prompt = "a dog wearing hat";
        r.steps = 10;
        r.strength = 0.5;
        r.width = r.height = 128;
        r.scheduler = "ddim";
        r.seed = 3;
        r.init_image = ref("vae.image");
        Recorder rec;
        const auto image = folder_->generate(r, rec);
        QCOMPARE(static_cast<int>(rec.latents.size()), 5);
        QCOMPARE(image.sizes(), (at::IntArrayRef{1, 3, 128, 128}));
    }

    void noiseProgressionMatchesAddNoise() {
        const auto latents = ref("addnoise.latents");
        const auto noise = ref("addnoise.noise");
        const auto out = folder_->noise_progression(latents, noise, "lms", 50, {0, 10, 20, 30, 40, 49});
        const int ks[] = {0, 10, 20, 30, 40, 49};
        for (size_t i = 0; i < out.size(); ++i)
            QVERIFY(max_abs(out[i], ref("addnoise.lms_step" + std::to_string(ks[i]))) <= 1e-4);
    }

    void unetStepProbeIsConsistent() {
        const auto latents = ref("addnoise.latents");
        const auto noise = ref("addnoise.noise");
        const auto p = folder_->unet_step_probe(latents, noise, "", "lms", 50, 40);
        QVERIFY(max_abs(p.noisy_latents, ref("addnoise.lms_step40")) <= 1e-4);
        QVERIFY(max_abs(p.naive_x0, p.noisy_latents - p.noise_pred) == 0.0);
        // LMS's x0 estimate for epsilon prediction: x_t - sigma * eps.
        QVERIFY(max_abs(p.pred_x0, p.noisy_latents - p.sigma * p.noise_pred) <= 1e-4);
    }

    void traceRoundTrip() {
        QTemporaryDir dir;
        sdl::Trace t;
        t.init = torch::randn({1, 4, 8, 8});
        t.steps = torch::randn({3, 4, 8, 8});
        t.timesteps = torch::tensor({999.0, 500.0, 1.0}, torch::kFloat64);
        t.settings = {{"prompt", "a dog"}, {"seed", "1"}};
        const std::string path = dir.filePath("run.safetensors").toStdString();
        sdl::write_trace(path, t);
        const auto back = sdl::read_trace(path);
        QCOMPARE(max_abs(back.steps, t.steps), 0.0);
        QCOMPARE(back.settings.at("prompt"), std::string("a dog"));
        QVERIFY(!back.image.defined());
        QVERIFY_THROWS_EXCEPTION(sdl::Error, sdl::read_trace(kData + "/reference.safetensors"));
    }

    void latentPreviewIsAnImage() {
        const auto p = sdl::latent_preview(torch::randn({2, 4, 16, 16}));
        QCOMPARE(p.sizes(), (at::IntArrayRef{2, 3, 16, 16}));
        QVERIFY(p.min().item<float>() >= 0.0f && p.max().item<float>() <= 1.0f);
    }
};

QTEST_GUILESS_MAIN(TestPipeline)
#include "test_pipeline.moc"
