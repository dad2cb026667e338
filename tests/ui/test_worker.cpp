// The pipeline worker on its own thread, driven the way the window drives it, on the tiny
// reference model: a full generation, every stage request, cancel, closing mid-run, traces, LoRAs
// and textual-inversion files, and how long the UI thread is ever kept from its event loop.
#include "core/io/tensor_io.h"
#include "fixtures/lora_fixtures.h"
#include "ui/lora_panel.h"
#include "ui/main_window.h"
#include "ui/model_picker.h"
#include "ui/views/compare_view.h"
#include "ui/worker/pipeline_controller.h"
#include "ui/worker/pipeline_worker.h"

#include <QDirIterator>
#include <QElapsedTimer>
#include <QFile>
#include <QLabel>
#include <QStandardPaths>
#include <QStatusBar>
#include <QTemporaryDir>
#include <QtTest>

#include <cmath>
#include <memory>

using namespace sdlui;

// QSignalSpy records a worker signal on the worker's thread, possibly before wait() is called
// (which then waits for a second one); polling the count cannot miss it.
#define WAIT_FOR(spy, n, ms) QTRY_VERIFY_WITH_TIMEOUT((spy).size() >= (n), ms)

namespace {
const QString kTiny = SDLENS_TEST_DATA "/tiny-sd";

// The UI thread's longest gap between ticks of a 10 ms timer, from construction until stop().
struct StallMeter {
    QElapsedTimer clock;
    qint64 last = 0, worst = 0;
    QTimer tick;
    StallMeter() {
        tick.setInterval(10);
        QObject::connect(&tick, &QTimer::timeout, [this] {
            const qint64 now = clock.elapsed();
            worst = std::max(worst, now - last);
            last = now;
        });
        clock.start();
        tick.start();
    }
    void stop() { tick.stop(); }
};

GenerateSettings tinySettings(int steps) {
    GenerateSettings s;
    s.prompt = "a dog wearing hat";
    s.steps = steps;
    s.width = s.height = 128;
    s.seed = 42;
    return s;
}

// A load reports the model, then the LoRAs and the embeddings applied after it. Waiting for the last
// report keeps a test's own spies from catching the load's (a slow build, such as ASan's, showed it).
void loadTiny(PipelineController& c) {
    QSignalSpy settled(c.worker(), &PipelineWorker::textualInversionsChanged);
    QSignalSpy failed(c.worker(), &PipelineWorker::modelFailed);
    c.loadModel(kTiny);
    QTRY_VERIFY_WITH_TIMEOUT(!settled.isEmpty() || !failed.isEmpty(), 60000);
    QVERIFY2(failed.isEmpty(), failed.isEmpty() ? "" : qPrintable(failed.first().at(1).toString()));
}

// The whole window on the tiny model, shown, once its model is loaded.
void openTinyWindow(std::unique_ptr<MainWindow>& window) {
    MainWindow::Options options;
    options.persistSettings = false;
    options.model = kTiny;
    window = std::make_unique<MainWindow>(options);
    window->show();
    QSignalSpy ready(window.get(), &MainWindow::modelReady);
    WAIT_FOR(ready, 1, 60000);
}

// A kohya LoRA on tiny-sd's attention layers and text encoder, a kohya textual-inversion file
// ("redfox", two vectors) and a file that is neither, in dir.
struct LoraFiles {
    QString lora, embedding, broken;
    explicit LoraFiles(const QTemporaryDir& dir)
        : lora(dir.filePath("ink.safetensors")), embedding(dir.filePath("redfox.safetensors")),
          broken(dir.filePath("broken.safetensors")) {
        using namespace lora_fixtures;
        write_lora(lora.toStdString(), only(tiny_layers(), {Kind::Attention, Kind::Text}), Spelling::Kohya);
        sdl::save_tensors(embedding.toStdString(), {{"emb_params", torch::randn({2, 32})}});
        QFile f(broken);
        f.open(QIODevice::WriteOnly);
        f.write("not a safetensors file");
    }
};

bool copyTree(const QString& from, const QString& to) {
    QDirIterator it(from, QDir::Files, QDirIterator::Subdirectories);
    while (it.hasNext()) {
        const QString file = it.next();
        const QString target = to + "/" + QDir(from).relativeFilePath(file);
        if (!QDir().mkpath(QFileInfo(target).path()) || !QFile::copy(file, target))
            return false;
    }
    return true;
}

bool allFinite(const FloatTensor& t) {
    for (float v : t.values)
        if (!std::isfinite(v))
            return false;
    return !t.isEmpty();
}
} // namespace

class TestWorker : public QObject {
    Q_OBJECT
private slots:
    void generateOnTinyModel() {
        PipelineController c;
        loadTiny(c);
        QSignalSpy steps(c.worker(), &PipelineWorker::stepDone);
        QSignalSpy finished(c.worker(), &PipelineWorker::runFinished);
        QSignalSpy embeddings(c.worker(), &PipelineWorker::textEmbeddingsReady);
        QSignalSpy failed(c.worker(), &PipelineWorker::failed);

        StallMeter meter;
        c.generate(tinySettings(8));
        QTRY_VERIFY_WITH_TIMEOUT(!finished.isEmpty() || !failed.isEmpty(), 120000);
        QVERIFY2(failed.isEmpty(), failed.isEmpty() ? "" : qPrintable(failed.first().at(1).toString()));
        meter.stop();
        qInfo("UI thread: longest gap between 10 ms timer ticks during a tiny 8-step generation: %lld ms "
              "(run took %lld ms)",
              meter.worst, meter.clock.elapsed());
        QVERIFY(meter.worst < 250);

        QCOMPARE(steps.size(), 8);
        QCOMPARE(embeddings.size(), 1);
        const auto run = finished.first().first().value<RunRecord>();
        QCOMPARE(run.steps.size(), 8);
        QCOMPARE(run.image.size(), QSize(128, 128));
        QCOMPARE(run.textEmbeddings.shape, (QVector<int>{2, 77, 32}));
        QCOMPARE(run.init.shape, (QVector<int>{4, 16, 16}));
        QCOMPARE(run.condIds.size(), 77);
        QCOMPARE(run.condIds[2], qint64(1929));  // "dog"
        for (const auto& s : run.steps) {
            QVERIFY(allFinite(s.latents));
            QVERIFY(allFinite(s.predX0));
            QCOMPARE(s.preview.size(), QSize(16, 16));
            QCOMPARE(s.attention.shape, (QVector<int>{77, 16, 16}));
            QCOMPARE(s.attentionLevels.size(), 4);  // 16, 8, 4 and 2 squared
            QCOMPARE(s.attentionLevels[1].shape, (QVector<int>{77, 8, 8}));
        }
        QCOMPARE(run.condTokens.size(), 77);
        QCOMPARE(run.condTokens[2], QString("dog</w>"));
        QCOMPARE(run.steps.last().index, 7);
        QVERIFY(run.timesteps.size() >= 8);
    }

    void everyStageOnTinyModel() {
        PipelineController c;
        loadTiny(c);
        PipelineWorker* w = c.worker();
        QSignalSpy failed(w, &PipelineWorker::failed);

        QSignalSpy emb(w, &PipelineWorker::embeddingsReady);
        c.computeEmbeddings("a dog wearing hat", "a cat wearing hat");
        WAIT_FOR(emb, 1, 30000);
        const auto e = emb.first().first().value<EmbeddingResult>();
        QCOMPARE(e.layers.size(), 6);  // embeddings output + 5 layers
        QCOMPARE(e.layers.last().shape, (QVector<int>{77, 32}));
        QCOMPARE(e.compareLayers.size(), 6);
        QCOMPARE(e.tokens[2], QString("dog</w>"));

        // Before any image the latent stages say what they need instead of failing silently.
        c.noiseProgression("lms", 50, 1);
        QTRY_COMPARE_WITH_TIMEOUT(failed.size(), 1, 30000);
        QVERIFY(failed.first().at(1).toString().contains("VAE round trip"));

        QSignalSpy rt(w, &PipelineWorker::roundTripReady);
        QImage img(100, 70, QImage::Format_RGB888);
        img.fill(QColor(200, 120, 40));
        c.roundTrip(img);
        WAIT_FOR(rt, 1, 30000);
        const auto r = rt.first().first().value<RoundTripResult>();
        QCOMPARE(r.original.size(), QSize(96, 64));  // cropped to multiples of 8, and said so
        QVERIFY(r.adjustment.contains("multiples of 8"));
        QCOMPARE(r.latents.shape, (QVector<int>{4, 8, 12}));
        QCOMPARE(r.compression, 48.0);
        QVERIFY(std::isfinite(r.psnr) && r.ssim <= 1.0 && r.maxError >= 0);

        QSignalSpy prog(w, &PipelineWorker::progressionReady);
        c.noiseProgression("lms", 50, 1);
        WAIT_FOR(prog, 1, 30000);
        const auto p = prog.first().first().value<ProgressionResult>();
        QCOMPARE(p.atSteps, (QVector<int>{0, 10, 20, 30, 40, 49}));
        QCOMPARE(p.images.size(), 6);
        QVERIFY(p.timesteps.first() > p.timesteps.last());

        QSignalSpy probe(w, &PipelineWorker::probeReady);
        c.unetProbe(40, 50, "", "lms", 1.0, 1);
        WAIT_FOR(probe, 1, 30000);
        const auto pr = probe.first().first().value<ProbeResult>();
        QCOMPARE(pr.noisePred.shape, (QVector<int>{4, 8, 12}));
        QCOMPARE(pr.predX0Decoded.size(), QSize(96, 64));

        QSignalSpy dec(w, &PipelineWorker::latentsDecoded);
        c.decodeLatents(7, r.latents);
        WAIT_FOR(dec, 1, 30000);
        QCOMPARE(dec.first().at(0).toInt(), 7);
        QCOMPARE(dec.first().at(1).value<QImage>().size(), QSize(96, 64));
        QCOMPARE(failed.size(), 1);
    }

    void cancelMidRun() {
        PipelineController c;
        loadTiny(c);
        QSignalSpy steps(c.worker(), &PipelineWorker::stepDone);
        QSignalSpy cancelled(c.worker(), &PipelineWorker::runCancelled);
        QSignalSpy finished(c.worker(), &PipelineWorker::runFinished);
        c.generate(tinySettings(200));
        WAIT_FOR(steps, 1, 60000);
        c.cancel();
        WAIT_FOR(cancelled, 1, 30000);
        QVERIFY(finished.isEmpty());
        QVERIFY(steps.size() < 200);
        // The worker takes the next request normally.
        c.generate(tinySettings(3));
        WAIT_FOR(finished, 1, 60000);
        QCOMPARE(finished.first().first().value<RunRecord>().steps.size(), 3);
    }

    void closeWindowDuringRun() {
        std::unique_ptr<MainWindow> window;
        openTinyWindow(window);
        window->setRunSettings("euler", 200, 128, 128, 1);
        window->setPrompt("a dog wearing hat");
        QSignalSpy steps(window->controller()->worker(), &PipelineWorker::stepDone);
        window->generate();
        QVERIFY(window->isRunning());
        WAIT_FOR(steps, 1, 60000);
        QElapsedTimer t;
        t.start();
        window->close();
        window.reset();  // cancels, lets the current U-Net call finish, joins the thread
        qInfo("closing mid-run took %lld ms", t.elapsed());
        QVERIFY(t.elapsed() < 5000);
    }

    // The same measurement with the whole window receiving every step (previews, channel strips,
    // schedule marker, progress): what a user would feel.
    void windowStaysResponsiveDuringGeneration() {
        std::unique_ptr<MainWindow> opened;
        openTinyWindow(opened);
        MainWindow& window = *opened;
        window.setRunSettings("lms", 12, 128, 128, 3);
        window.setPrompt("a dog wearing hat");
        QSignalSpy finished(window.controller()->worker(), &PipelineWorker::runFinished);
        StallMeter meter;
        window.generate();
        WAIT_FOR(finished, 1, 120000);
        QTest::qWait(300);  // the final image and the last step's views are drawn after the signal
        meter.stop();
        qInfo("UI thread with the full window: longest gap between 10 ms timer ticks during a 12-step "
              "128x128 tiny generation: %lld ms (run took %lld ms)",
              meter.worst, meter.clock.elapsed());
        QVERIFY(meter.worst < 250);
    }

    void traceRoundTripWithoutModel() {
        QTemporaryDir dir;
        const QString path = dir.filePath("run.safetensors");
        RunRecord run;
        {
            PipelineController c;
            loadTiny(c);
            QSignalSpy finished(c.worker(), &PipelineWorker::runFinished);
            c.generate(tinySettings(4));
            WAIT_FOR(finished, 1, 60000);
            run = finished.first().first().value<RunRecord>();
            QSignalSpy saved(c.worker(), &PipelineWorker::traceSaved);
            c.saveTrace(path, run);
            WAIT_FOR(saved, 1, 30000);
        }
        PipelineController fresh;  // no model loaded
        QSignalSpy opened(fresh.worker(), &PipelineWorker::traceOpened);
        fresh.openTrace(path);
        WAIT_FOR(opened, 1, 30000);
        const auto back = opened.first().first().value<RunRecord>();
        QVERIFY(back.fromTrace);
        QCOMPARE(back.settings.prompt, run.settings.prompt);
        QCOMPARE(back.settings.seed, run.settings.seed);
        QCOMPARE(back.steps.size(), 4);
        QCOMPARE(back.steps[2].latents.values, run.steps[2].latents.values);
        QCOMPARE(back.steps[2].preview.size(), QSize(16, 16));
        QCOMPARE(back.image.size(), QSize(128, 128));
        QCOMPARE(back.condIds, run.condIds);
        QCOMPARE(back.condTokens, run.condTokens);  // named by the bundled vocabulary without a model
        QCOMPARE(back.steps[2].attention.values, run.steps[2].attention.values);
    }

    void compareOnTinyModel() {
        PipelineController c;
        loadTiny(c);
        QSignalSpy ready(c.worker(), &PipelineWorker::comparisonReady);
        QSignalSpy progress(c.worker(), &PipelineWorker::comparisonProgress);
        QSignalSpy failed(c.worker(), &PipelineWorker::failed);
        c.compare(tinySettings(4), "guidance", {"1", "7.5"});
        QTRY_VERIFY_WITH_TIMEOUT(!ready.isEmpty() || !failed.isEmpty(), 120000);
        QVERIFY2(failed.isEmpty(), failed.isEmpty() ? "" : qPrintable(failed.first().at(1).toString()));
        QCOMPARE(progress.size(), 8);
        const auto r = ready.first().first().value<ComparisonRecord>();
        QCOMPARE(r.vary, QString("guidance"));
        QCOMPARE(r.runs.size(), 2);
        QCOMPARE(r.runs[1].settings.guidance, 7.5);
        for (const auto& run : r.runs) {
            QCOMPARE(run.previews.size(), 4);
            QCOMPARE(run.stepDifference.size(), 4);
            QCOMPARE(run.stepDifference[0].shape, (QVector<int>{16, 16}));
            QCOMPARE(run.image.size(), QSize(128, 128));
        }
        for (double d : r.runs[0].latentDifference)
            QCOMPARE(d, 0.0);
        QVERIFY(r.runs[1].latentDifference.last() > 0);
        QVERIFY(r.runs[1].imageDifference > 0);

        c.compare(tinySettings(4), "scheduler", {"lms", "no-such-sampler"});
        WAIT_FOR(failed, 1, 30000);
        QCOMPARE(failed.first().at(0).toString(), QString("Comparing"));
        QVERIFY(failed.first().at(1).toString().contains("no-such-sampler"));
    }

    void vaeComparisonOnTinyModel() {
        PipelineController c;
        loadTiny(c);
        PipelineWorker* w = c.worker();
        QSignalSpy ready(w, &PipelineWorker::vaeComparisonReady);
        QSignalSpy failed(w, &PipelineWorker::failed);
        QImage img(100, 70, QImage::Format_RGB888);
        img.fill(QColor(200, 120, 40));
        // The model's own VAE and the same weights read again from its folder: two VAEs, one answer.
        const QStringList vaes = {QString(), kTiny + "/vae"};
        c.compareVaes(img, vaes);
        QTRY_VERIFY_WITH_TIMEOUT(!ready.isEmpty() || !failed.isEmpty(), 60000);
        QVERIFY2(failed.isEmpty(), failed.isEmpty() ? "" : qPrintable(failed.first().at(1).toString()));
        const auto r = ready.first().first().value<VaeComparison>();
        QVERIFY(!r.fromLatents);
        QCOMPARE(r.reference.size(), QSize(96, 64));
        QVERIFY(r.adjustment.contains("multiples of 8"));
        QCOMPARE(r.vaes.size(), 2);
        QVERIFY(r.vaes[0].path.isEmpty());
        QCOMPARE(r.vaes[1].path, kTiny + "/vae");
        for (const auto& v : r.vaes) {
            QCOMPARE(v.image.size(), QSize(96, 64));
            QCOMPARE(v.difference.shape, (QVector<int>{64, 96}));
            QCOMPARE(v.channelMean.size(), 4);
            QCOMPARE(v.channelStd.size(), 4);
            QVERIFY(std::isfinite(v.psnr) && v.ssim <= 1.0 && v.maxError >= 0);
        }
        QVERIFY(std::abs(r.vaes[1].psnr - r.vaes[0].psnr) < 1e-6);
        for (int ch = 0; ch < 4; ++ch)
            QVERIFY(std::abs(r.vaes[1].channelMean[ch] - r.vaes[0].channelMean[ch]) < 1e-6);

        // A generation's final latents decoded by each: measured against the first VAE's decode.
        QSignalSpy finished(w, &PipelineWorker::runFinished);
        c.generate(tinySettings(3));
        WAIT_FOR(finished, 1, 60000);
        const auto run = finished.first().first().value<RunRecord>();
        c.decodeWithVaes(run.steps.last().latents, vaes);
        WAIT_FOR(ready, 2, 60000);
        const auto d = ready.at(1).first().value<VaeComparison>();
        QVERIFY(d.fromLatents);
        QCOMPARE(d.vaes.size(), 2);
        QCOMPARE(d.reference.size(), QSize(128, 128));
        QVERIFY(std::isinf(d.vaes[0].psnr));
        QVERIFY(d.vaes[1].maxError < 1.0);
        QVERIFY(d.vaes[0].channelMean.isEmpty());
        QVERIFY(failed.isEmpty());
    }

    void setVaeSwapsAndReportsFailures() {
        PipelineController c;
        loadTiny(c);
        PipelineWorker* w = c.worker();
        QSignalSpy changed(w, &PipelineWorker::vaeChanged);
        QSignalSpy vaeFailed(w, &PipelineWorker::vaeFailed);
        c.setVae(SDLENS_TEST_DATA "/no-such-vae.safetensors");
        WAIT_FOR(vaeFailed, 1, 30000);
        QCOMPARE(vaeFailed.first().at(0).toString(), QString(SDLENS_TEST_DATA "/no-such-vae.safetensors"));
        QVERIFY(!vaeFailed.first().at(1).toString().isEmpty());
        QVERIFY(changed.isEmpty());

        c.setVae(kTiny + "/vae");
        WAIT_FOR(changed, 1, 30000);
        const auto s = changed.first().first().value<ModelSummary>();
        QCOMPARE(s.path, kTiny);
        QCOMPARE(s.vaePath, kTiny + "/vae");
        QVERIFY(!s.vae.isEmpty());

        // The model keeps working with the swapped VAE, and "" brings its own back.
        QSignalSpy rt(w, &PipelineWorker::roundTripReady);
        QImage img(64, 64, QImage::Format_RGB888);
        img.fill(Qt::darkCyan);
        c.roundTrip(img);
        WAIT_FOR(rt, 1, 30000);
        c.setVae(QString());
        WAIT_FOR(changed, 2, 30000);
        QVERIFY(changed.at(1).first().value<ModelSummary>().vaePath.isEmpty());
        QCOMPARE(vaeFailed.size(), 1);
    }

    void missingRememberedVaeKeepsTheModel() {
        PipelineController c;
        QSignalSpy loaded(c.worker(), &PipelineWorker::modelLoaded);
        QSignalSpy vaeFailed(c.worker(), &PipelineWorker::vaeFailed);
        c.loadModel(kTiny, "cpu", "auto", SDLENS_TEST_DATA "/no-such-vae");
        WAIT_FOR(vaeFailed, 1, 60000);
        QCOMPARE(loaded.size(), 1);
        QVERIFY(loaded.first().first().value<ModelSummary>().vaePath.isEmpty());
    }

    // The status bar names each network's precision, and why in its tooltip (one source: ModelInfo).
    void statusBarSaysEachNetworksPrecision() {
        std::unique_ptr<MainWindow> window;
        openTinyWindow(window);
        const auto labels = window->statusBar()->findChildren<QLabel*>();
        const auto precision = std::find_if(labels.begin(), labels.end(),
                                            [](const QLabel* l) { return l->toolTip().startsWith("Precision: "); });
        QVERIFY(precision != labels.end());
        const QString text = (*precision)->text(), tip = (*precision)->toolTip();
        qInfo("%s | %s", qPrintable(text), qPrintable(tip));
        QVERIFY(text.startsWith("cpu · "));
        QVERIFY2(tip.contains("VAE decode") || tip.contains("for every network"), qPrintable(tip));
    }

    void windowShowsAVaeFailureAndKeepsRunning() {
        std::unique_ptr<MainWindow> opened;
        openTinyWindow(opened);
        MainWindow& window = *opened;
        QSignalSpy vaeFailed(window.controller()->worker(), &PipelineWorker::vaeFailed);
        window.controller()->setVae(SDLENS_TEST_DATA "/no-such-vae.safetensors");
        WAIT_FOR(vaeFailed, 1, 30000);
        QTRY_VERIFY_WITH_TIMEOUT(window.bannerText().contains("Could not use the VAE"), 5000);
        window.setRunSettings("lms", 2, 128, 128, 1);
        QSignalSpy finished(window.controller()->worker(), &PipelineWorker::runFinished);
        window.generate();
        WAIT_FOR(finished, 1, 60000);
    }

    void lorasAndEmbeddingsOnTinyModel() {
        QTemporaryDir dir;
        const LoraFiles files(dir);
        PipelineController c;
        loadTiny(c);
        PipelineWorker* w = c.worker();
        QSignalSpy changed(w, &PipelineWorker::lorasChanged);
        QSignalSpy loraFailed(w, &PipelineWorker::loraFailed);
        QSignalSpy finished(w, &PipelineWorker::runFinished);
        QSignalSpy failed(w, &PipelineWorker::failed);

        c.generate(tinySettings(3));
        WAIT_FOR(finished, 1, 60000);
        const RunRecord plain = finished.at(0).first().value<RunRecord>();
        QVERIFY(plain.settings.loras.isEmpty());

        c.setLoras({{files.lora, 0.7}});
        WAIT_FOR(changed, 1, 60000);
        const auto applied = changed.first().first().value<QVector<LoraSummary>>();
        QCOMPARE(applied.size(), 1);
        QCOMPARE(applied[0].name, QString("ink"));
        QCOMPARE(applied[0].strength, 0.7);
        QCOMPARE(applied[0].rank, qint64(4));
        QSet<QString> levels;
        int text = 0;
        for (const LoraLayer& l : applied[0].layers) {
            QVERIFY(l.relativeChange > 0);
            if (l.network == "text_encoder")
                ++text;
            else
                levels << l.level;
        }
        QCOMPARE(text, 5 * 6);  // five layers, q k v out fc1 fc2
        QCOMPARE(levels, (QSet<QString>{"down 0", "down 1", "down 2", "mid", "up 1", "up 2", "up 3"}));

        c.generate(tinySettings(3));
        WAIT_FOR(finished, 2, 60000);
        const RunRecord with = finished.at(1).first().value<RunRecord>();
        QCOMPARE(with.settings.loras.size(), 1);
        QVERIFY(with.settings.a1111Parameters().contains(", Lora: ink:0.7"));
        QVERIFY(with.steps.last().latents.values != plain.steps.last().latents.values);
        // A saved run keeps its LoRAs, so a PNG saved from the reopened run still names them.
        QSignalSpy saved(w, &PipelineWorker::traceSaved);
        QSignalSpy opened(w, &PipelineWorker::traceOpened);
        c.saveTrace(dir.filePath("run.safetensors"), with);
        WAIT_FOR(saved, 1, 30000);
        c.openTrace(dir.filePath("run.safetensors"));
        WAIT_FOR(opened, 1, 30000);
        QCOMPARE(opened.first().first().value<RunRecord>().settings.loras.size(), 1);
        QCOMPARE(opened.first().first().value<RunRecord>().settings.loras.first().strength, 0.7);

        // The same run without the LoRA, for the attention view: the plain run exactly, and the LoRA
        // stays applied.
        QSignalSpy baseline(w, &PipelineWorker::baselineReady);
        QSignalSpy baselineProgress(w, &PipelineWorker::baselineProgress);
        c.generateWithoutLoras(with.settings);
        WAIT_FOR(baseline, 1, 60000);
        const RunRecord without = baseline.first().first().value<RunRecord>();
        QCOMPARE(baselineProgress.size(), 3);
        QVERIFY(without.settings.loras.isEmpty());
        QCOMPARE(without.steps.size(), 3);
        QCOMPARE(without.steps.last().latents.values, plain.steps.last().latents.values);
        QCOMPARE(without.steps.last().attention.shape, (QVector<int>{77, 16, 16}));
        QCOMPARE(finished.size(), 2);  // not announced as a generation
        c.generate(tinySettings(3));
        WAIT_FOR(finished, 3, 60000);
        QCOMPARE(finished.at(2).first().value<RunRecord>().steps.last().latents.values,
                 with.steps.last().latents.values);

        // LoRA strength as the compared setting: the strengths in turn, the LoRA as it was afterwards.
        QSignalSpy compared(w, &PipelineWorker::comparisonReady);
        c.compare(tinySettings(3), "lora", {"0", "0.7"});
        WAIT_FOR(compared, 1, 120000);
        const auto record = compared.first().first().value<ComparisonRecord>();
        QCOMPARE(record.runs.size(), 2);
        QCOMPARE(record.runs[0].settings.loras.first().strength, 0.0);
        QCOMPARE(record.runs[1].settings.loras.first().strength, 0.7);
        QVERIFY(record.runs[1].latentDifference.last() > 0);

        // A bad file among good ones costs only itself.
        c.setLoras({{files.lora, 1.0}, {files.broken, 1.0}});
        WAIT_FOR(changed, 2, 60000);
        QCOMPARE(loraFailed.size(), 1);
        QCOMPARE(loraFailed.first().at(0).toString(), files.broken);
        QVERIFY(!loraFailed.first().at(1).toString().isEmpty());
        const auto kept = changed.at(1).first().value<QVector<LoraSummary>>();
        QCOMPARE(kept.size(), 1);
        QCOMPARE(kept[0].strength, 1.0);

        // Removing them all gives the base weights back, bit for bit.
        c.setLoras({});
        WAIT_FOR(changed, 3, 60000);
        QVERIFY(changed.at(2).first().value<QVector<LoraSummary>>().isEmpty());
        c.generate(tinySettings(3));
        WAIT_FOR(finished, 4, 60000);
        QCOMPARE(finished.at(3).first().value<RunRecord>().steps.last().latents.values,
                 plain.steps.last().latents.values);

        // Textual inversion: the trigger reads as its vectors; a bad file is left out.
        QSignalSpy loaded(w, &PipelineWorker::textualInversionsChanged);
        QSignalSpy embeddingFailed(w, &PipelineWorker::textualInversionFailed);
        c.setEmbeddings({files.embedding, files.broken});
        WAIT_FOR(loaded, 1, 30000);
        QCOMPARE(embeddingFailed.size(), 1);
        QCOMPARE(embeddingFailed.first().at(0).toString(), files.broken);
        const auto inversions = loaded.first().first().value<QVector<TextualInversion>>();
        QCOMPARE(inversions.size(), 1);
        QCOMPARE(inversions[0].trigger, QString("redfox"));
        QCOMPARE(inversions[0].vectors, 2);
        QSignalSpy emb(w, &PipelineWorker::embeddingsReady);
        c.computeEmbeddings("a photo of redfox");
        WAIT_FOR(emb, 1, 30000);
        const auto tokens = emb.first().first().value<EmbeddingResult>().tokens;
        QCOMPARE(tokens.mid(4, 2), (QStringList{"<redfox:0>", "<redfox:1>"}));
        c.setEmbeddings({});
        WAIT_FOR(loaded, 2, 30000);
        QVERIFY(loaded.at(1).first().value<QVector<TextualInversion>>().isEmpty());
        QVERIFY2(failed.isEmpty(), failed.isEmpty() ? "" : qPrintable(failed.first().at(1).toString()));
    }

    // The window with a LoRA list remembered for the model: the load applies it, a bad file is a
    // message and leaves the list, the model keeps working; comparing LoRA strengths needs exactly one.
    void windowAppliesLorasAndKeepsRunningAfterABadOne() {
        QTemporaryDir dir;
        const LoraFiles files(dir);
        MainWindow::Options options;
        options.persistSettings = false;
        options.model = kTiny;
        MainWindow window(options);
        window.show();
        PipelineWorker* w = window.controller()->worker();
        QSignalSpy ready(&window, &MainWindow::modelReady);
        QSignalSpy changed(w, &PipelineWorker::lorasChanged);
        WAIT_FOR(ready, 1, 60000);
        WAIT_FOR(changed, 1, 30000);  // the (empty) list remembered for the model

        window.compareView()->setVary("lora");
        window.compare();
        QVERIFY(window.bannerText().contains("exactly one LoRA"));
        QVERIFY(!window.isRunning());

        window.loraPanel()->addLora(files.broken);
        QTRY_VERIFY_WITH_TIMEOUT(window.bannerText().contains("Could not apply the LoRA broken.safetensors"), 30000);
        QVERIFY(window.loraPanel()->enabledLoras().isEmpty());
        window.loraPanel()->addLora(files.lora, 0.5);
        QTRY_COMPARE_WITH_TIMEOUT(changed.last().first().value<QVector<LoraSummary>>().size(), 1, 30000);
        window.setRunSettings("lms", 2, 128, 128, 1);
        QSignalSpy finished(w, &PipelineWorker::runFinished);
        window.generate();
        WAIT_FOR(finished, 1, 60000);
        QCOMPARE(finished.first().first().value<RunRecord>().settings.loras.size(), 1);

        // Opening the model again applies the LoRA remembered for it.
        const int before = int(changed.size());
        window.openModel(kTiny);
        WAIT_FOR(changed, before + 1, 60000);
        QCOMPARE(changed.last().first().value<QVector<LoraSummary>>().size(), 1);
        QCOMPARE(changed.last().first().value<QVector<LoraSummary>>().first().strength, 0.5);
    }

    void demoModelOpensWithItsSettingsAndTheUsersComeBack() {
        // The demo is whatever lies at demoModelPath(): tiny-sd copied there with a sdlens_demo.json,
        // under Qt's test paths.
        QStandardPaths::setTestModeEnabled(true);
        const QString demo = ModelPicker::demoModelPath();
        QDir(demo).removeRecursively();
        QVERIFY(copyTree(kTiny, demo));
        QFile marker(QDir(demo).filePath("sdlens_demo.json"));
        QVERIFY(marker.open(QIODevice::WriteOnly));
        marker.write(R"({"vocabulary": "of squares and circles", "training": {}})");
        marker.close();
        MainWindow::Options options;
        options.persistSettings = false;
        options.model = kTiny;
        MainWindow window(options);
        window.show();
        QSignalSpy ready(&window, &MainWindow::modelReady);
        const auto run = [&] {
            const GenerateSettings s = window.currentSettings();
            return QStringList{QString::number(s.width), QString::number(s.height), QString::number(s.steps),
                               s.scheduler, QString::number(s.guidance)};
        };
        const QStringList user{"512", "512", "50", "lms", "7.5"};
        WAIT_FOR(ready, 1, 60000);
        QCOMPARE(run(), user);  // a user's model keeps the user's settings
        QVERIFY(!window.bannerText().contains("demo model"));
        window.setPrompt(MainWindow::defaultPrompt());
        window.openModel(demo);
        WAIT_FOR(ready, 2, 60000);
        QCOMPARE(ready.last().first().value<ModelSummary>().nativeSize, 128);  // sample_size 16
        QCOMPARE(run(), (QStringList{"128", "128", "20", "dpmpp_2m", "5"}));
        QCOMPARE(window.currentSettings().prompt, QString("a red circle"));
        for (const char* says : {"demo model", "toy world", "It knows the prompts of squares and circles.",
                                 "a red circle", "File ▸ Open model folder…", "File ▸ Open model file…"})
            QVERIFY2(window.bannerText().contains(QString::fromUtf8(says)), says);
        window.openModel(kTiny);
        WAIT_FOR(ready, 3, 60000);
        QCOMPARE(run(), user);
        QVERIFY(!window.bannerText().contains("demo model"));
        // A prompt of the user's own is kept.
        window.setPrompt("a green square");
        window.openModel(demo);
        WAIT_FOR(ready, 4, 60000);
        QCOMPARE(window.currentSettings().prompt, QString("a green square"));
        QDir(demo).removeRecursively();
        QStandardPaths::setTestModeEnabled(false);
    }

    void badModelIsAMessage() {
        PipelineController c;
        QSignalSpy failed(c.worker(), &PipelineWorker::modelFailed);
        c.loadModel(SDLENS_TEST_DATA "/no-such-model");
        WAIT_FOR(failed, 1, 30000);
        QVERIFY(!failed.first().at(1).toString().isEmpty());
        QSignalSpy opFailed(c.worker(), &PipelineWorker::failed);
        c.generate(tinySettings(2));
        WAIT_FOR(opFailed, 1, 30000);
        QVERIFY(opFailed.first().at(1).toString().contains("No model"));
    }
};

QTEST_MAIN(TestWorker)
#include "test_worker.moc"
