// demo-eval's measurements on tiny-sd (random weights: only the bookkeeping is checked here, not the
// quality), and the attention ratio and shape-word lookup on inputs whose answer is known.
#include "core/demo/demo_eval.h"
#include "core/util/error.h"
#include "fixtures/expect_error.h"

#include <QtTest>

#include <cmath>

namespace {

const std::string kData = SDLENS_TEST_DATA;

sdl::DemoEvalOptions quick_options() {
    sdl::DemoEvalOptions o;
    o.seeds = 1;
    o.steps = 2;
    o.vae_images = 2;
    o.captions = {0, 5};  // "a red circle", "a green triangle"
    o.keep_images = true;
    return o;
}

} // namespace

class TestDemoEval : public QObject {
    Q_OBJECT
    std::unique_ptr<sdl::StableDiffusion> sd_;

private slots:
    // One thread, as test_demo_trainer: two tests run at once on the suite's 2 cores.
    void initTestCase() { sd_ = sdl::StableDiffusion::load(kData + "/tiny-sd", {"cpu", "fp32", 1}); }

    void shapeWordFromTheTokenizer() {
        for (size_t colour = 0; colour < sdl::toy::kColours.size(); ++colour)
            for (auto shape : sdl::toy::kShapes) {
                const auto [first, last] = sdl::shape_word_tokens(sd_->tokenizer(), static_cast<int>(colour), shape);
                QCOMPARE(first, int64_t(3));  // BOS "a" colour shape
                QCOMPARE(last, int64_t(4));
            }
    }

    void ratioOnAndOffTheShape() {
        auto map = torch::ones({16, 16});
        map.narrow(0, 4, 4).narrow(1, 2, 6).fill_(3);
        auto ink = torch::zeros({128, 128}, torch::kBool);
        ink.narrow(0, 32, 32).narrow(1, 16, 48).fill_(true);
        QCOMPARE(sdl::attention_on_off_ratio(map, ink), 3.0);
        // A cell counts as on the shape when the ink covers more than half of it.
        auto under = ink.clone();
        under.narrow(0, 64, 3).narrow(1, 16, 48).fill_(true);
        QCOMPARE(sdl::attention_on_off_ratio(map, under), 3.0);
        auto over = ink.clone();
        over.narrow(0, 64, 5).narrow(1, 16, 48).fill_(true);
        QCOMPARE(sdl::attention_on_off_ratio(map, over), (24 * 3 + 6 * 1) / 30.0);
        QVERIFY(std::isnan(sdl::attention_on_off_ratio(map, torch::zeros({128, 128}, torch::kBool))));
        QVERIFY(std::isnan(sdl::attention_on_off_ratio(map, torch::ones({128, 128}, torch::kBool))));
        sdl_test::expect_error([&] { sdl::attention_on_off_ratio(map, torch::zeros({100, 100}, torch::kBool)); },
                               {"100x100", "16x16"});
    }

    void measuresATinyModel() {
        const auto o = quick_options();
        int generated = 0, round_trips = 0;
        const auto r = sdl::evaluate_demo(*sd_, o, [&](const std::string& stage, int done, int total) {
            if (stage == "generate") {
                QCOMPARE(done, ++generated);
                QCOMPARE(total, 2);
            } else {
                QCOMPARE(QString::fromStdString(stage), QString("vae"));
                QCOMPARE(done, ++round_trips);
                QCOMPARE(total, 2);
            }
        });
        QCOMPARE(generated, 2);
        QCOMPARE(round_trips, 2);
        QCOMPARE(r.images, 2);
        QCOMPARE(r.captions.size(), size_t(2));
        QCOMPARE(QString::fromStdString(r.captions[0].caption), QString("a red circle"));
        QCOMPARE(QString::fromStdString(r.captions[1].caption), QString("a green triangle"));
        int skipped = 0;
        for (const auto& c : r.captions) {
            QVERIFY(c.colour_right >= 0 && c.colour_right <= 1);
            QVERIFY(c.shape_right >= 0 && c.shape_right <= 1);
            QCOMPARE(std::isnan(c.attention_ratio), c.attention_skipped == o.seeds);
            QVERIFY(std::isnan(c.attention_ratio) || c.attention_ratio > 0);
            QCOMPARE(c.images.size(), size_t(1));
            QCOMPARE(c.images[0].sizes().vec(), (std::vector<int64_t>{3, 128, 128}));
            skipped += c.attention_skipped;
        }
        QCOMPARE(r.attention_skipped, skipped);
        QVERIFY(r.colour_accuracy >= 0 && r.colour_accuracy <= 1);
        QVERIFY(r.shape_accuracy >= 0 && r.shape_accuracy <= 1);
        QCOMPARE(std::isnan(r.attention_ratio_mean), skipped == r.images);
        QVERIFY(std::isnan(r.attention_ratio_min) || r.attention_ratio_min <= r.attention_ratio_mean);
        QVERIFY(std::isfinite(r.vae_psnr_mean) && std::isfinite(r.vae_psnr_min));
        QVERIFY(r.vae_psnr_min <= r.vae_psnr_mean);
        QVERIFY(r.seconds > 0);

        const auto j = sdl::demo_eval_json(r, o);
        QCOMPARE(j.at("captions").size(), size_t(2));
        QCOMPARE(QString::fromStdString(j.at("captions")[1].at("caption").get<std::string>()), QString("a green triangle"));
        for (const char* key : {"colour_right", "shape_right", "attention_ratio"})
            QVERIFY2(j.at("captions")[0].contains(key), key);
        for (const char* key : {"colour_accuracy", "shape_accuracy", "attention_ratio_mean", "attention_ratio_min",
                                "vae_psnr_mean", "vae_psnr_min", "settings", "seconds"})
            QVERIFY2(j.contains(key), key);
        QCOMPARE(j.at("vae_psnr_mean").get<double>(), r.vae_psnr_mean);
        QCOMPARE(QString::fromStdString(j.at("settings").at("scheduler").get<std::string>()), QString("dpmpp_2m"));
        QCOMPARE(j.at("settings").at("steps").get<int>(), 2);
        QVERIFY(j.at("attention_ratio_mean").is_null() == std::isnan(r.attention_ratio_mean));

        const auto sheet = sdl::demo_contact_sheet(r);  // 2 rows, 1 column, 4-pixel gaps
        QCOMPARE(sheet.sizes().vec(), (std::vector<int64_t>{3, 2 * 128 + 3 * 4, 128 + 2 * 4}));
        QVERIFY(torch::equal(sheet.narrow(1, 4 + 128 + 4, 128).narrow(2, 4, 128), r.captions[1].images[0]));

        // The same options measure the same images.
        auto again = o;
        again.captions = {5};
        again.vae_images = 1;
        const auto r2 = sdl::evaluate_demo(*sd_, again);
        QVERIFY(torch::equal(r2.captions[0].images[0], r.captions[1].images[0]));
        QCOMPARE(r2.captions[0].attention_skipped, r.captions[1].attention_skipped);
        QCOMPARE(std::isnan(r2.captions[0].attention_ratio), std::isnan(r.captions[1].attention_ratio));
        if (!std::isnan(r2.captions[0].attention_ratio))
            QCOMPARE(r2.captions[0].attention_ratio, r.captions[1].attention_ratio);
    }

    void refusesBadOptions() {
        auto o = quick_options();
        o.scheduler = "nope";
        sdl_test::expect_error([&] { sdl::evaluate_demo(*sd_, o); }, {"unknown scheduler 'nope'", "dpmpp_2m"});
        o = quick_options();
        o.seeds = 0;
        sdl_test::expect_error([&] { sdl::evaluate_demo(*sd_, o); }, {"--seeds", "at least 1"});
        o = quick_options();
        o.vae_images = 0;
        sdl_test::expect_error([&] { sdl::evaluate_demo(*sd_, o); }, {"--vae-images"});
        o = quick_options();
        o.captions = {12};
        sdl_test::expect_error([&] { sdl::evaluate_demo(*sd_, o); }, {"caption index 12", "0..11"});
        sdl::DemoEvalResult none;
        sdl_test::expect_error([&] { sdl::demo_contact_sheet(none); }, {"keep_images"});
    }
};

QTEST_GUILESS_MAIN(TestDemoEval)
#include "test_demo_eval.moc"
