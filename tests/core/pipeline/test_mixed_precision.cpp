// The pipeline with its networks in different precisions (what the measurement may choose): each
// converts its input at its boundary, and the images stay within bf16's tested error of fp32's.
#include "core/pipeline/pipeline.h"

#include <QtTest>

#include <cmath>

namespace {

const std::string kData = SDLENS_TEST_DATA;

sdl::RuntimeOptions mixed(const std::string& unet, const std::string& vae_encode, const std::string& vae_decode) {
    sdl::RuntimeOptions o;
    o.dtype = "fp32";
    o.threads = 2;
    o.unet_dtype = unet;
    o.vae_encode_dtype = vae_encode;
    o.vae_decode_dtype = vae_decode;
    return o;
}

sdl::GenerateRequest request() {
    sdl::GenerateRequest r;
    r.prompt = "a dog wearing hat";
    // test_pipeline's bf16 request (8 steps at 128x128): on fewer steps and pixels the tiny random
    // model turns bf16's rounding into image differences that vary from one kernel to another.
    r.steps = 8;
    r.width = r.height = 128;
    r.seed = 7;
    return r;
}

// The bound bf16ImagesStayCloseToFp32 (test_pipeline) holds the all-bf16 pipeline to.
void expect_close(const torch::Tensor& image, const torch::Tensor& reference, const char* what) {
    const double mean = (image - reference).abs().mean().item<double>();
    const double psnr = 10 * std::log10(1 / (image - reference).pow(2).mean().item<double>());
    qInfo("%s vs fp32: mean abs %.2f/255, PSNR %.1f dB", what, mean * 255, psnr);
    QVERIFY(mean <= 4.0 / 255);
    QVERIFY(psnr >= 33);
}

} // namespace

class TestMixedPrecision : public QObject {
    Q_OBJECT
    std::unique_ptr<sdl::StableDiffusion> fp32_;
    torch::Tensor reference_;

private slots:
    void initTestCase() {
        fp32_ = sdl::StableDiffusion::load(kData + "/tiny-sd", {"cpu", "fp32", 2});
        sdl::PipelineObserver obs;
        reference_ = fp32_->generate(request(), obs);
    }

    void unetBf16VaeFp32() {
        auto sd = sdl::StableDiffusion::load(kData + "/tiny-sd", mixed("bf16", "", ""));
        const auto& info = sd->info();
        QCOMPARE(QString::fromStdString(info.dtype), QString("bf16"));
        QCOMPARE(QString::fromStdString(info.precision.dtypes()), QString("U-Net bf16 · VAE encode fp32 · VAE decode fp32"));
        QCOMPARE(QString::fromStdString(info.precision.summary()),
                 QString("U-Net bf16 (set by the caller), VAE encode fp32 (--dtype), VAE decode fp32 (--dtype)"));
        sdl::PipelineObserver obs;
        const auto image = sd->generate(request(), obs);
        QCOMPARE(image.scalar_type(), torch::kFloat32);
        expect_close(image, reference_, "U-Net bf16, VAE fp32");
        // The VAE alone is fp32's bit for bit.
        const auto latents = torch::randn({1, 4, 16, 16});
        QVERIFY(sd->decode_latents(latents).equal(fp32_->decode_latents(latents)));
    }

    void unetFp32VaeBf16() {
        auto sd = sdl::StableDiffusion::load(kData + "/tiny-sd", mixed("", "bf16", "bf16"));
        QCOMPARE(QString::fromStdString(sd->info().dtype), QString("fp32"));
        sdl::PipelineObserver obs;
        expect_close(sd->generate(request(), obs), reference_, "U-Net fp32, VAE bf16");
        const auto sample = torch::randn({2, 4, 16, 16});
        const auto context = torch::randn({2, 77, sd->info().text_hidden});
        QVERIFY(sd->predict_noise(sample, 500, context).equal(fp32_->predict_noise(sample, 500, context)));
    }

    // img2img crosses every boundary: image -> encoder -> U-Net (fp32, so only the VAE's sides differ
    // from the reference) -> decoder.
    void vaeSidesApartInImg2img() {
        auto r = request();
        r.width = r.height = 64;  // the U-Net runs in fp32 here: a small image is enough
        // A fixed, smooth picture: uniform noise (what torch::rand gave) is the VAE's worst case, and
        // a different one each run moved the bf16 encoder's image error between 0.2/255 and 4.3/255.
        const auto x = torch::linspace(-1, 1, 64).view({1, 1, 1, 64}).expand({1, 1, 64, 64});
        const auto y = torch::linspace(-1, 1, 64).view({1, 1, 64, 1}).expand({1, 1, 64, 64});
        r.init_image = torch::cat({x, y, x * y}, 1);
        r.strength = 0.5;
        sdl::PipelineObserver obs;
        const auto reference = fp32_->generate(r, obs);
        for (const auto& [encode, decode] : {std::pair{"bf16", "fp32"}, std::pair{"fp32", "bf16"}}) {
            auto sd = sdl::StableDiffusion::load(kData + "/tiny-sd", mixed("", encode, decode));
            const auto image = sd->generate(r, obs);
            expect_close(image, reference, (std::string("VAE encode ") + encode + ", decode " + decode).c_str());
            // A VAE set again keeps each side's precision: the same image bit for bit.
            sd->set_vae(kData + "/tiny-sd");
            QVERIFY(sd->generate(r, obs).equal(image));
        }
    }
};

QTEST_GUILESS_MAIN(TestMixedPrecision)
#include "test_mixed_precision.moc"
