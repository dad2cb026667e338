// Comparisons: what make_comparison refuses, how steps of different-length runs are paired, and runs on
// the tiny model (run 0 is exactly a plain generate; the others drift from it).
#include "core/pipeline/compare.h"
#include "core/util/error.h"

#include <QtTest>

namespace {

const std::string kData = SDLENS_TEST_DATA;

struct Recorder : sdl::ComparisonObserver {
    std::vector<std::string> labels;
    std::vector<int> steps_per_run;
    std::vector<std::vector<torch::Tensor>> latents;  // [run][step]
    int images = 0;
    int cancel_after_steps = -1;
    void on_run(int index, const std::string& label) override {
        QCOMPARE(index, static_cast<int>(labels.size()));
        labels.push_back(label);
        steps_per_run.push_back(0);
        latents.emplace_back();
    }
    void on_step(const sdl::StepEvent& e) override {
        ++steps_per_run.back();
        latents.back().push_back(e.latents.to(torch::kFloat64));
    }
    void on_image(const torch::Tensor&) override { ++images; }
    bool cancel_requested() const override {
        int steps = 0;
        for (int n : steps_per_run)
            steps += n;
        return cancel_after_steps >= 0 && steps >= cancel_after_steps;
    }
};

sdl::GenerateRequest small_request() {
    sdl::GenerateRequest r;
    r.prompt = "a dog wearing hat";
    r.steps = 3;
    r.width = r.height = 64;
    r.seed = 11;
    return r;
}

// The UsageError's message, or "" when make_comparison accepted.
std::string refusal(const std::string& vary, const std::vector<std::string>& values) {
    try {
        sdl::make_comparison(small_request(), vary, values);
    } catch (const sdl::UsageError& e) {
        return e.what();
    }
    return {};
}

} // namespace

class TestCompare : public QObject {
    Q_OBJECT
    std::unique_ptr<sdl::StableDiffusion> sd_;

private slots:
    void initTestCase() { sd_ = sdl::StableDiffusion::load(kData + "/tiny-sd", {"cpu", "fp32", 2}); }

    void refusesWhatCannotBeCompared_data() {
        QTest::addColumn<QString>("vary");
        QTest::addColumn<QStringList>("values");
        QTest::addColumn<QString>("mention");
        QTest::newRow("unknown vary") << "seed" << QStringList{"1", "2"} << "seed";
        QTest::newRow("one value") << "guidance" << QStringList{"7.5"} << "two";
        QTest::newRow("guidance not a number") << "guidance" << QStringList{"1", "abc"} << "abc";
        QTest::newRow("guidance negative") << "guidance" << QStringList{"-1", "7.5"} << "-1";
        QTest::newRow("guidance nan") << "guidance" << QStringList{"nan", "7.5"} << "nan";
        QTest::newRow("steps 0") << "steps" << QStringList{"4", "0"} << "'0'";
        QTest::newRow("steps fractional") << "steps" << QStringList{"4", "2.5"} << "2.5";
        QTest::newRow("steps beyond training") << "steps" << QStringList{"4", "1001"} << "1001";
        QTest::newRow("unknown scheduler") << "scheduler" << QStringList{"lms", "warp"} << "warp";
    }
    void refusesWhatCannotBeCompared() {
        QFETCH(QString, vary);
        QFETCH(QStringList, values);
        QFETCH(QString, mention);
        std::vector<std::string> v;
        for (const auto& s : values)
            v.push_back(s.toStdString());
        const std::string why = refusal(vary.toStdString(), v);
        QVERIFY2(why.find(mention.toStdString()) != std::string::npos, why.c_str());
    }

    void buildsOneRequestPerValue() {
        auto base = small_request();
        base.count = 3;
        const auto g = sdl::make_comparison(base, "guidance", {"0", "1", " 7.5", "15"});
        QCOMPARE(g.requests.size(), size_t(4));
        QCOMPARE(g.labels[2], std::string("guidance 7.5"));
        QCOMPARE(g.requests[2].guidance, 7.5);
        for (const auto& r : g.requests) {
            QCOMPARE(r.count, 1);
            QCOMPARE(r.seed, base.seed);
            QCOMPARE(r.prompt, base.prompt);
        }
        const auto p = sdl::make_comparison(base, "prompt", {"a cat", ""});
        QCOMPARE(p.labels[0], std::string("prompt 1: a cat"));
        QCOMPARE(p.requests[1].prompt, std::string());
        const auto s = sdl::make_comparison(base, "scheduler", {"euler_a", "ddim"});
        QCOMPARE(s.labels[0], std::string("scheduler euler_a"));
        QCOMPARE(s.requests[1].scheduler, std::string("ddim"));
        QCOMPARE(sdl::make_comparison(base, "steps", {"10", "20"}).labels[1], std::string("steps 20"));
    }

    void matchingStepPairsEqualProgress() {
        for (int k = 0; k < 7; ++k)
            QCOMPARE(sdl::matching_step(k, 7, 7), k);
        QCOMPARE(sdl::matching_step(0, 10, 20), 1);
        QCOMPARE(sdl::matching_step(4, 10, 20), 9);
        QCOMPARE(sdl::matching_step(9, 10, 20), 19);
        QCOMPARE(sdl::matching_step(0, 20, 10), 0);
        QCOMPARE(sdl::matching_step(1, 20, 10), 0);
        QCOMPARE(sdl::matching_step(3, 20, 10), 1);
        QCOMPARE(sdl::matching_step(19, 20, 10), 9);
        QCOMPARE(sdl::matching_step(0, 1, 50), 49);
        QCOMPARE(sdl::matching_step(49, 50, 1), 0);
        QVERIFY_THROWS_EXCEPTION(sdl::Error, sdl::matching_step(4, 4, 8));
    }

    void guidanceStripDriftsFromTheFirstRun() {
        const auto c = sdl::make_comparison(small_request(), "guidance", {"1", "7.5"});
        Recorder rec;
        const auto res = sdl::run_comparison(*sd_, c, rec);
        QCOMPARE(rec.labels, c.labels);
        QCOMPARE(rec.steps_per_run, (std::vector<int>{3, 3}));
        QCOMPARE(rec.images, 2);
        QCOMPARE(res.images.size(), size_t(2));
        QCOMPARE(res.images[0].sizes(), (at::IntArrayRef{3, 64, 64}));
        QCOMPARE(res.seconds.size(), size_t(2));
        QCOMPARE(res.image_difference[0], 0.0);
        QCOMPARE(res.latent_difference[0], (std::vector<double>{0, 0, 0}));
        QVERIFY(res.image_difference[1] > 0);
        QCOMPARE(res.latent_difference[1].size(), size_t(3));
        for (double d : res.latent_difference[1])
            QVERIFY(d > 0);

        sdl::PipelineObserver plain;
        const auto alone = sd_->generate(c.requests[0], plain);
        QVERIFY(torch::equal(alone[0], res.images[0]));
    }

    void stepsComparisonKeepsEachRunsLength() {
        const auto c = sdl::make_comparison(small_request(), "steps", {"4", "8"});
        Recorder rec;
        const auto res = sdl::run_comparison(*sd_, c, rec);
        QCOMPARE(res.latent_difference[0].size(), size_t(4));
        QCOMPARE(res.latent_difference[1].size(), size_t(8));
        // Each of the 8 steps meets the 4-step run at the same progress: 0 and 1 meet 0, 6 and 7 meet 3.
        for (auto [k, k0] : {std::pair{0, 0}, {1, 0}, {2, 1}, {6, 3}, {7, 3}}) {
            const double expected = (rec.latents[1][k] - rec.latents[0][k0]).abs().mean().item<double>();
            QVERIFY(std::abs(res.latent_difference[1][k] - expected) <= 1e-9 * expected);
            const auto& map = res.difference_maps[1][k];
            QCOMPARE(map.sizes(), rec.latents[1][k].sizes().slice(2));  // [1, 4, h, w] -> [h, w]
            QVERIFY(std::abs(map.mean().item<double>() - expected) <= 1e-6 * expected);
        }
        QCOMPARE(res.difference_maps[0].size(), size_t(4));
        QCOMPARE(res.difference_maps[0][3].abs().max().item<double>(), 0.0);
    }

    void cancelStopsTheComparison() {
        const auto c = sdl::make_comparison(small_request(), "scheduler", {"euler", "euler_a"});
        Recorder rec;
        rec.cancel_after_steps = 4;
        QVERIFY_THROWS_EXCEPTION(sdl::Cancelled, sdl::run_comparison(*sd_, c, rec));
        QCOMPARE(rec.steps_per_run, (std::vector<int>{3, 1}));
    }
};

QTEST_GUILESS_MAIN(TestCompare)
#include "test_compare.moc"
