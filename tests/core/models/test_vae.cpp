#include "core/models/autoencoder_kl.h"
#include "core/models/layers.h"
#include "core/models/load.h"
#include "fixtures/vae_fixtures.h"
#include "model_test_util.h"

#include <QTemporaryDir>
#include <QtTest>

using namespace sdl_test;

class TestVae : public QObject {
    Q_OBJECT

    static sdl::AutoencoderKL load(bool single_file, torch::Dtype dtype) {
        return sdl::load_vae(tiny(single_file).vae, dtype, torch::kCPU);
    }

    static void parity(bool single_file) { parity(load(single_file, torch::kFloat), single_file ? "single file" : "folder"); }

    static void parity(sdl::AutoencoderKL m, const std::string& what) {
        torch::NoGradGuard g;
        const auto d = m->encode(reference("vae.image"));
        const double mean = max_abs(d.mean, reference("vae.mean"));
        const double logvar = max_abs(d.logvar, reference("vae.logvar"));
        const double decoded = max_abs(m->decode(reference("vae.mean")), reference("vae.decoded_mean"));
        qInfo("%s: mean %.3g, logvar %.3g, decoded_mean %.3g", what.c_str(), mean, logvar, decoded);
        QVERIFY(mean <= 1e-4);
        QVERIFY(logvar <= 1e-4);
        QVERIFY(decoded <= 1e-4);
    }

private slots:
    void parityFromFolder() { parity(false); }
    void parityFromSingleFile() { parity(true); }

    // Every layout a user may swap in gives diffusers' numbers in fp32.
    void parityOfEveryVaeLayout() {
        QTemporaryDir tmp;
        const auto path = [&](const char* name) { return tmp.filePath(name).toStdString(); };
        vae_fixtures::copy_model(path("old"), vae_fixtures::to_2022_names(false));
        vae_fixtures::copy_model(path("old-conv"), vae_fixtures::to_2022_names(true),
                                 "diffusion_pytorch_model.fp16.safetensors");
        vae_fixtures::write_original_vae(path("vae-ft.safetensors"), "");
        vae_fixtures::write_original_vae(path("prefixed.safetensors"), "first_stage_model.");
        parity(sdl::load_vae_for(path("old"), "", torch::kFloat, torch::kCPU).vae, "2022 names, folder");
        parity(sdl::load_vae_for(path("old-conv"), "", torch::kFloat, torch::kCPU).vae, "2022 names, 1x1, fp16 variant");
        for (const char* f : {"vae-ft.safetensors", "prefixed.safetensors"}) {
            auto v = sdl::load_vae_for(data_path("tiny-sd"), path(f), torch::kFloat, torch::kCPU);
            QCOMPARE(v.scaling_factor, 0.18215);
            QCOMPARE(QString::fromStdString(v.label), QString(f));
            parity(v.vae, f);
        }
        parity(sdl::load_vae_for("", data_path("tiny-sd/vae"), torch::kFloat, torch::kCPU).vae, "VAE folder");
    }

    // The latents are the U-Net's: whatever decodes them divides by the model's factor.
    void swappedVaeKeepsTheModelsScalingFactor() {
        QTemporaryDir tmp;
        const std::string d = tmp.filePath("vae").toStdString();
        vae_fixtures::copy_vae_folder(d, {{"scaling_factor", 0.13025}});
        auto v = sdl::load_vae_for(data_path("tiny-sd"), d, torch::kFloat, torch::kCPU);
        QCOMPARE(v.scaling_factor, 0.18215);
        QCOMPARE(v.vae->scaling_factor(), 0.18215);
        QCOMPARE(v.warnings.size(), size_t(1));
    }

    void misshapenVaeIsNamed() {
        QTemporaryDir tmp;
        const std::string f = tmp.filePath("bad.safetensors").toStdString();
        vae_fixtures::rewrite(data_path("tiny-sd/vae/diffusion_pytorch_model.safetensors"), f,
                              [](const sdl::TensorView& v) {
                                  auto shape = v.shape;
                                  if (v.name == "decoder.conv_out.bias")
                                      shape = {1, 3};
                                  return vae_fixtures::Renamed{v.name, shape};
                              });
        expect_error([&] { sdl::load_vae_for(data_path("tiny-sd"), f, torch::kFloat, torch::kCPU); },
                     {"decoder.conv_out.bias", "misshapen"});
    }

    void scalingFactorFromConfig() { QCOMPARE(load(false, torch::kFloat)->scaling_factor(), 0.18215); }

    // bf16 on CPU: relative errors of ~1e-2 through 30 conv layers; the bound is on this scale.
    void bfloat16WithinBound() {
        torch::NoGradGuard g;
        auto m = load(false, torch::kBFloat16);
        const auto d = m->encode(reference("vae.image").to(torch::kBFloat16));
        const auto dec = m->decode(reference("vae.mean").to(torch::kBFloat16));
        const double mean = max_abs(d.mean, reference("vae.mean"));
        const double mean_scale = reference("vae.mean").abs().max().item<double>();
        const double decoded = max_abs(dec, reference("vae.decoded_mean"));
        const double scale = reference("vae.decoded_mean").abs().max().item<double>();
        qInfo("bf16: mean %.3g (scale %.3g), decoded_mean %.3g (scale %.3g)", mean, mean_scale, decoded, scale);
        QVERIFY(mean <= 0.05 * mean_scale);
        QVERIFY(decoded <= 0.05 * scale);
    }

    void sampleUsesTheGenerator() {
        torch::NoGradGuard g;
        auto m = load(false, torch::kFloat);
        const auto d = m->encode(reference("vae.image"));
        const auto s = d.sample(at::detail::createCPUGenerator(42));
        const auto noise = torch::randn(d.mean.sizes(), at::detail::createCPUGenerator(42));
        QVERIFY(max_abs(s, d.mean + torch::exp(0.5 * d.logvar) * noise) <= 1e-6);
    }

    // NHWC through the encoder, the decoder (its attention included) and the tiled decode.
    void channelsLastSameNumbers() {
        torch::NoGradGuard g;
        auto m = load(false, torch::kFloat);
        sdl::use_channels_last(*m);
        parity(m, "channels-last");
        const auto z = reference("vae.mean");
        const double tiled = max_abs(m->decode_tiled(z, {8, 2}), load(false, torch::kFloat)->decode_tiled(z, {8, 2}));
        qInfo("channels-last: tiled decode %.3g against NCHW", tiled);
        QVERIFY(tiled <= 1e-4);
    }

    void tiledDecodeBlendsTiles() {
        torch::NoGradGuard g;
        auto m = load(false, torch::kFloat);
        const auto z = reference("vae.mean");
        QVERIFY(m->decode_tiled(z, {16, 4}).equal(m->decode(z)));  // one tile: plain decode
        const auto tiled = m->decode_tiled(z, {8, 2});              // 3x3 tiles with overlaps
        QCOMPARE(tiled.sizes(), m->decode(z).sizes());
        QVERIFY(torch::isfinite(tiled).all().item<bool>());
        const double err = max_abs(tiled, reference("vae.decoded_mean"));
        const double scale = reference("vae.decoded_mean").abs().max().item<double>();
        qInfo("tiled (8, overlap 2) vs full decode: %.3g (scale %.3g)", err, scale);
        QVERIFY(err < scale);
        expect_error([&] { m->decode_tiled(z, {8, 8}); }, {"overlap 8"});
    }

    void checkedDecodeKeepsFiniteResults() {
        torch::NoGradGuard g;
        auto m = load(false, torch::kFloat);
        const auto r = sdl::decode_checked(m, reference("vae.mean"));
        QVERIFY(!r.redone_in_fp32);
        QVERIFY(max_abs(r.image, reference("vae.decoded_mean")) <= 1e-4);
    }

    // Each side runs in its own dtype, converting its input: the fp32 side gives fp32's numbers bit for bit.
    void sidesHoldTheirOwnDtypes() {
        torch::NoGradGuard g;
        auto fp32 = load(false, torch::kFloat);
        auto mixed = sdl::load_vae(tiny(false).vae, torch::kBFloat16, torch::kFloat, torch::kCPU);
        QCOMPARE(mixed->encoder_dtype(), torch::kBFloat16);
        QCOMPARE(mixed->decoder_dtype(), torch::kFloat);
        const auto d = mixed->encode(reference("vae.image"));
        QCOMPARE(d.mean.scalar_type(), torch::kBFloat16);
        QVERIFY(max_abs(d.mean, reference("vae.mean")) <= 0.05 * reference("vae.mean").abs().max().item<double>());
        QVERIFY(mixed->decode(reference("vae.mean")).equal(fp32->decode(reference("vae.mean"))));
        mixed->set_dtypes(torch::kFloat, torch::kBFloat16);
        QCOMPARE(mixed->decode_tiled(reference("vae.mean"), {8, 2}).scalar_type(), torch::kBFloat16);
    }

    void badInputsNamed() {
        auto m = load(false, torch::kFloat);
        expect_error([&] { m->encode(torch::zeros({1, 3, 100, 100})); }, {"multiples of 8", "100"});
        expect_error([&] { m->decode(torch::zeros({1, 3, 16, 16})); }, {"latents", "4"});
    }

    void badConfigNamed() {
        auto j = tiny(false).vae.config;
        j["down_block_types"][1] = "Foo";
        const auto c = sdl::AutoencoderKLConfig::from_json(j);
        expect_error([&] { sdl::AutoencoderKL m(c); }, {"unknown down_block_type 'Foo'", "DownEncoderBlock2D"});
        j = tiny(false).vae.config;
        j["norm_num_groups"] = 24;
        expect_error([&] { sdl::AutoencoderKLConfig::from_json(j); }, {"block_out_channels 32", "norm_num_groups 24"});
        j = tiny(false).vae.config;
        j["up_block_types"] = nlohmann::json::array({"UpDecoderBlock2D"});
        expect_error([&] { sdl::AutoencoderKLConfig::from_json(j); }, {"up_block_types", "1 entries", "expected 4"});
        j = tiny(false).vae.config;
        j["scaling_factor"] = 0;
        expect_error([&] { sdl::AutoencoderKLConfig::from_json(j); }, {"scaling_factor", "0"});
    }

    void sd15NamesAndShapes() {
        sdl::AutoencoderKL m(sdl::AutoencoderKLConfig::from_json(sd15()["vae_config"]));
        compare_names_and_shapes(*m, sd15()["vae"]);
    }
};

QTEST_GUILESS_MAIN(TestVae)
#include "test_vae.moc"
