// Every stage view renders the reference data (tests/data/reference.safetensors, computed by
// diffusers on the tiny model) offscreen, and the things a user reads off them are right.
#include "core/io/safetensors.h"
#include "ui/views/attention_view.h"
#include "ui/views/common.h"
#include "ui/views/compare_view.h"
#include "ui/views/embeddings_view.h"
#include "ui/views/generate_view.h"
#include "ui/views/latents_view.h"
#include "ui/views/lora_view.h"
#include "ui/views/progression_view.h"
#include "ui/views/schedule_view.h"
#include "ui/views/tokens_view.h"
#include "ui/views/unet_step_view.h"
#include "ui/views/vae_view.h"
#include "ui/worker/schedules.h"

#include <qcustomplot.h>

#include <QDir>
#include <QFile>
#include <QJsonArray>
#include <QJsonDocument>
#include <QJsonObject>
#include <QLabel>
#include <QPushButton>
#include <QSignalSpy>
#include <QTableWidget>
#include <QTemporaryDir>
#include <QtTest>

#include <limits>

using namespace sdlui;

namespace {

std::shared_ptr<sdl::SafetensorsFile> reference() {
    static auto file = sdl::SafetensorsFile::open(SDLENS_TEST_DATA "/reference.safetensors");
    return file;
}

// An F32 reference tensor; `index` >= 0 takes that entry of the first dimension.
FloatTensor ref(const std::string& key, int index = -1) {
    const sdl::TensorView& v = reference()->at(key);
    FloatTensor t;
    for (auto s : v.shape)
        t.shape << int(s);
    t.values.resize(int(v.numel()));
    std::memcpy(t.values.data(), v.data, v.nbytes);
    return index >= 0 ? t.slice(index) : t;
}

// [3, H, W] in [0, 1] -> image
QImage toImage(const FloatTensor& chw) {
    const int h = chw.dim(1), w = chw.dim(2);
    QImage img(w, h, QImage::Format_RGB888);
    for (int y = 0; y < h; ++y)
        for (int x = 0; x < w; ++x) {
            int c[3];
            for (int k = 0; k < 3; ++k)
                c[k] = qBound(0, int(chw.values[(k * h + y) * w + x] * 255.f + 0.5f), 255);
            img.setPixel(x, y, qRgb(c[0], c[1], c[2]));
        }
    return img;
}

// A view "renders" when grabbing it gives an image that is not one flat colour.
bool rendersSomething(QWidget& w) {
    w.resize(1000, 700);
    w.show();
    QCoreApplication::processEvents();
    const QImage img = w.grab().toImage();
    if (img.isNull())
        return false;
    const QRgb first = img.pixel(0, 0);
    for (int y = 0; y < img.height(); y += 3)
        for (int x = 0; x < img.width(); x += 3)
            if (img.pixel(x, y) != first)
                return true;
    return false;
}

QJsonObject referenceJson() {
    QFile f(SDLENS_TEST_DATA "/reference.json");
    f.open(QIODevice::ReadOnly);
    return QJsonDocument::fromJson(f.readAll()).object();
}

} // namespace

class TestViews : public QObject {
    Q_OBJECT
private slots:
    void tokensMatchReference() {
        TokensView view;
        view.setPrompt("a dog wearing hat");
        QCOMPARE(view.usedTokens(), 6);
        QCOMPARE(view.truncatedTokens(), 0);
        auto* table = view.findChild<QTableWidget*>();
        QVERIFY(table);
        QCOMPARE(table->rowCount(), 77);
        QCOMPARE(table->item(2, 1)->text(), QString("1929"));
        QCOMPARE(table->item(2, 2)->text(), QString("dog·"));  // the word end stays visible
        QCOMPARE(table->item(5, 4)->text(), QString("end of text"));
        QCOMPARE(table->item(6, 3)->text(), QString("0"));
        QVERIFY(rendersSomething(view));
    }

    void tokensFlagTruncation() {
        TokensView view;
        QStringList words;
        for (int i = 0; i < 90; ++i)
            words << "dog";
        view.setPrompt(words.join(' '));
        QCOMPARE(view.usedTokens(), 77);
        QCOMPARE(view.truncatedTokens(), 15);
        auto* table = view.findChild<QTableWidget*>();
        QCOMPARE(table->rowCount(), 77 + 15);
        QVERIFY(table->item(77, 4)->text().startsWith("truncated"));
    }

    void scheduleMatchesDiffusers() {
        const Schedule s = computeSchedule("lms", 50);
        const QJsonArray t = referenceJson()["schedulers"].toObject()["lms.50"].toObject()["timesteps"].toArray();
        const QJsonArray sig = referenceJson()["schedulers"].toObject()["lms.50"].toObject()["sigmas"].toArray();
        QCOMPARE(s.timesteps.size(), 50);
        for (int i = 0; i < 50; ++i) {
            QVERIFY(std::abs(s.timesteps[i] - t[i].toDouble()) < 1e-3);
            QVERIFY(std::abs(s.sigmas[i] - sig[i].toDouble()) < 1e-3);
        }
        const Schedule ddim = computeSchedule("ddim", 50);
        QVERIFY(ddim.sigmasDerived);
        QVERIFY(ddim.sigmas.first() > ddim.sigmas.last());  // noisiest first
    }

    void scheduleViewPlotsAndExports() {
        ScheduleView view;
        view.setScheduler("lms", 50, false);
        view.setCurrentStep(10);
        QCOMPARE(view.plot()->graphCount(), 2);  // sigma and timestep
        QCOMPARE(view.plot()->graph(0)->dataCount(), 50);
        QVERIFY(rendersSomething(view));
        QTemporaryDir dir;
        QString error;
        QVERIFY2(view.exportCsv(dir.filePath("s.csv"), &error), qPrintable(error));
        QFile csv(dir.filePath("s.csv"));
        QVERIFY(csv.open(QIODevice::ReadOnly));
        const QStringList lines = QString::fromUtf8(csv.readAll()).trimmed().split('\n');
        QCOMPARE(lines.size(), 51);
        QVERIFY(lines[1].startsWith("lms,0,999,14.61"));
        QVERIFY(view.exportPng(dir.filePath("s.png")));
        QVERIFY(!QImage(dir.filePath("s.png")).isNull());
    }

    void latentChannelsUseTheirRange() {
        const FloatTensor mean = ref("vae.mean", 0);  // [4, 16, 16]
        ChannelStrip strip;
        strip.setLatents(mean);
        const QImage c0 = strip.channel(0);
        QCOMPARE(c0.size(), QSize(16, 16));
        int lo = 255, hi = 0;
        for (int y = 0; y < 16; ++y)
            for (int x = 0; x < 16; ++x) {
                lo = std::min(lo, qGray(c0.pixel(x, y)));
                hi = std::max(hi, qGray(c0.pixel(x, y)));
            }
        QCOMPARE(lo, 0);
        QCOMPARE(hi, 255);

        LatentsView view;
        view.setEncodedImage(toImage(ref("vae.image", 0)), mean);
        QVERIFY(rendersSomething(view));
    }

    void embeddingsHeatMapAndComparison() {
        EmbeddingResult r;
        r.prompt = "a dog wearing hat";
        r.tokens = QStringList{"<|startoftext|>", "a</w>", "dog</w>", "wearing</w>", "hat</w>"};
        for (int i = r.tokens.size(); i < 77; ++i)
            r.tokens << "<|endoftext|>";
        for (int i = 0; i < 77; ++i)
            r.mask << (i < 6 ? 1 : 0);
        r.layers << ref("te.penultimate_hidden_state", 0) << ref("te.last_hidden_state", 0);
        r.comparePrompt = "another prompt";
        r.compareLayers << ref("te.penultimate_hidden_state", 1) << ref("te.last_hidden_state", 1);
        EmbeddingsView view;
        view.setResult(r);
        const FloatTensor& last = r.layers[1];
        const QString text = view.readout(2, 5);
        QVERIFY2(text.contains("dog·") && text.contains("dim 5") &&
                     text.contains(QString::number(last.values[2 * 32 + 5], 'f', 4)),
                 qPrintable(text));
        QVERIFY(view.readout(77, 0).isEmpty());
        auto plots = view.findChildren<QCustomPlot*>();
        QCOMPARE(plots.size(), 3);
        QVERIFY(rendersSomething(view));
        QVERIFY(plots[2]->isVisible());  // the cosine plot, shown with a second prompt
    }

    void generateViewStepsThroughAndExports() {
        GenerateView view;
        GenerateSettings s;
        s.prompt = "a dog wearing hat";
        s.steps = 8;
        s.width = s.height = 128;
        view.beginRun(s);
        RunRecord run;
        run.settings = s;
        const FloatTensor steps = ref("e2e.lms.steps");  // [8, 4, 16, 16]
        for (int i = 0; i < 8; ++i) {
            StepRecord r;
            r.index = i;
            r.total = 8;
            r.timestep = 999 - i * 100;
            r.sigma = 14.6 / (i + 1);
            r.latents = r.noisePred = r.predX0 = steps.slice(i);
            r.preview = QImage(16, 16, QImage::Format_RGB888);
            r.preview.fill(QColor(i * 30, 80, 120));
            view.addStep(r);
            run.steps << r;
        }
        run.image = toImage(ref("e2e.lms.image", 0));
        run.timesteps = {999, 899, 799, 699, 599, 499, 399, 299};
        QSignalSpy decode(&view, &GenerateView::decodeRequested);
        view.finishRun(run);
        QCOMPARE(view.currentStep(), 7);
        view.setCurrentStep(3);
        QVERIFY(decode.wait(2000));  // a settled scrub asks the worker to decode that step's x0
        QCOMPARE(decode.first().first().toInt(), 3);
        view.setDecoded(3, run.image);
        QVERIFY(rendersSomething(view));
        QTemporaryDir dir;
        QString error;
        QVERIFY2(view.exportSequence(dir.path(), &error), qPrintable(error));
        QCOMPARE(QDir(dir.path()).entryList({"*.png"}).size(), 9);  // 8 steps + final
        QCOMPARE(QImage(dir.filePath("x0_001.png")).size(), QSize(128, 128));
    }

    void attentionViewShowsEachTokensMap() {
        // Two steps of synthetic maps on a 16x16 grid: every token gets 1/77 everywhere except "dog"
        // (position 2), which takes a share from the start token in the top-left quadrant.
        AttentionView view;
        GenerateSettings s;
        s.prompt = "a dog";
        s.width = s.height = 128;
        view.beginRun(s);
        QStringList tokens = {"<|startoftext|>", "a</w>", "dog</w>"};
        while (tokens.size() < 77)
            tokens << "<|endoftext|>";
        view.setTokens(tokens);
        auto maps = [](int h, float boost) {
            FloatTensor t;
            t.shape = {77, h, h};
            t.values.fill(1.f / 77, 77 * h * h);
            for (int y = 0; y < h / 2; ++y)
                for (int x = 0; x < h / 2; ++x) {
                    t.values[2 * h * h + y * h + x] += boost;
                    t.values[0 * h * h + y * h + x] -= boost;
                }
            return t;
        };
        for (int i = 0; i < 2; ++i) {
            StepRecord r;
            r.index = i;
            r.total = 2;
            r.attention = maps(16, 0.2f * (i + 1));
            r.attentionLevels = {maps(16, 0.1f), maps(8, 0.3f)};
            r.preview = QImage(16, 16, QImage::Format_RGB888);
            r.preview.fill(Qt::gray);
            view.addStep(r);
        }
        view.resize(1000, 700);
        auto* table = view.findChild<QTableWidget*>();
        QCOMPARE(table->rowCount(), 4);  // start, "a", "dog", end: padding hidden
        view.selectToken(2);
        FloatTensor m = view.currentMap();  // the last step
        QCOMPARE(m.shape, (QVector<int>{16, 16}));
        QCOMPARE(m.values[0], 1.f / 77 + 0.4f);
        QCOMPARE(m.values[15 * 16 + 15], 1.f / 77);
        QCOMPARE(table->item(2, 2)->text(), QString("%1 %").arg(100.0 * (1.0 / 77 + 0.4 / 4), 0, 'f', 1));
        view.setAllSteps(true);
        QVERIFY(std::abs(view.currentMap().values[0] - (1.f / 77 + 0.3f)) < 1e-6);
        view.setLevel(2);
        QCOMPARE(view.currentMap().shape, (QVector<int>{8, 8}));
        const QImage overlay = view.overlay();
        QCOMPARE(overlay.size(), QSize(128, 128));
        // The hot quadrant is brighter than the cold one.
        QVERIFY(qGray(overlay.pixel(10, 10)) > qGray(overlay.pixel(118, 118)));
        view.selectToken(0);
        QCOMPARE(view.selectedToken(), 0);
        QVERIFY(rendersSomething(view));
    }

    void compareViewShowsRunsAndDifference() {
        CompareView view;
        view.setVary("guidance");
        view.setGuidanceValues("1, 3,7.5 ,15");
        GenerateSettings base;
        base.prompt = "a dog";
        QCOMPARE(view.values(base), (QStringList{"1", "3", "7.5", "15"}));
        view.setVary("steps");
        base.steps = 8;
        QCOMPARE(view.values(base).first(), QString("8"));
        view.setVary("guidance");
        ComparisonRecord rec;
        rec.vary = "guidance";
        const FloatTensor steps = ref("e2e.lms.steps");  // [8, 4, 16, 16]
        for (int i = 0; i < 2; ++i) {
            ComparisonRun run;
            run.label = QString("guidance %1").arg(i ? 7.5 : 1);
            run.settings = base;
            run.image = toImage(ref("e2e.lms.image", 0));
            for (int k = 0; k < 8; ++k) {
                QImage p(16, 16, QImage::Format_RGB888);
                p.fill(QColor(20 * k, 40 * i, 90));
                run.previews << p;
                run.latentDifference << (i ? 0.1 * k : 0.0);
                run.stepDifference << steps.slice(k).slice(0);
            }
            if (i)
                run.image.invertPixels();
            rec.runs << run;
        }
        view.resize(1000, 700);
        view.setResult(rec);
        QCOMPARE(view.result().runs.size(), 2);
        view.setProgressPosition(50);
        auto* plot = view.findChild<QCustomPlot*>();
        QCOMPARE(plot->graphCount(), 1);
        QCOMPARE(plot->graph(0)->dataCount(), 8);
        view.setProgressPosition(100);
        QVERIFY(rendersSomething(view));
    }

    void vaeRoundTripShowsMetrics() {
        RoundTripResult r;
        r.original = toImage(ref("vae.image", 0));
        r.reconstruction = toImage(ref("vae.decoded_mean", 0));
        r.latents = ref("vae.mean", 0);
        r.difference.shape = {128, 128};
        for (int i = 0; i < 128 * 128; ++i)
            r.difference.values << float(i % 128) / 1280.f;
        r.psnr = 12.5;
        r.ssim = 0.25;
        r.maxError = 200;
        r.compression = 48;
        VaeView view;
        view.setResult(r);
        QVERIFY(rendersSomething(view));
        QString all;
        for (auto* l : view.findChildren<QLabel*>())
            all += l->text();
        QVERIFY(all.contains("PSNR"));
        QVERIFY(all.contains("48×"));
    }

    void vaeComparisonShowsEveryVae() {
        VaeComparison c;
        c.reference = toImage(ref("vae.image", 0));
        const QStringList labels = {"model's VAE", "vae-ft-mse", "other-vae"};
        for (int i = 0; i < labels.size(); ++i) {
            VaeOutcome v;
            v.label = labels[i];
            v.path = i ? "/vaes/" + labels[i] : QString();
            v.image = toImage(ref("vae.decoded_mean", 0));
            v.difference.shape = {128, 128};
            for (int k = 0; k < 128 * 128; ++k)
                v.difference.values << float((k + i * 37) % 128) / 1280.f;
            v.psnr = 20 + i;
            v.ssim = 0.5 + 0.1 * i;
            v.maxError = 100 + i;
            v.channelMean = {0.1, -0.2, 0.3, -0.4};
            v.channelStd = {1.0, 0.9, 0.8, 0.7};
            c.vaes << v;
        }
        c.vaes[2].warnings << "trained for SD 2.x";
        VaeView view;
        QSignalSpy compare(&view, &VaeView::compareRequested);
        view.setOtherVaes({"/vaes/vae-ft-mse", "/vaes/other-vae", "/vaes/third", "/vaes/fourth"});
        QCOMPARE(view.otherVaes().size(), VaeView::kMaxOtherVaes);
        view.setComparison(c);
        QVERIFY(rendersSomething(view));

        auto* table = view.findChild<QTableWidget*>();
        QVERIFY(table);
        QCOMPARE(table->rowCount(), 3);
        QCOMPARE(table->item(1, 0)->text(), QString("vae-ft-mse"));
        QCOMPARE(table->item(1, 1)->text(), QString("21.00"));
        QCOMPARE(table->item(2, 2)->text(), QString("0.7000"));
        QVERIFY(table->item(0, 5)->text().contains("-0.200"));
        int images = 0;
        for (auto* v : view.findChildren<ImageView*>())
            images += v->image().isNull() ? 0 : 1;
        QCOMPARE(images, 1 + 2 * 3);  // the original, then each reconstruction and its difference
        QString all;
        for (auto* l : view.findChildren<QLabel*>())
            all += l->text();
        QVERIFY(all.contains("trained for SD 2.x"));

        // Decoding the last generation: the first VAE is the reference, not a measurement.
        c.fromLatents = true;
        c.vaes[0].psnr = std::numeric_limits<double>::infinity();
        view.setComparison(c);
        QCOMPARE(table->item(0, 1)->text(), QString("reference"));
        QVERIFY(compare.isEmpty());
    }

    void progressionAndUNetStepRender() {
        ProgressionResult p;
        p.scheduler = "lms";
        p.steps = 50;
        for (int i = 0; i < 6; ++i) {
            p.atSteps << std::min(49, i * 10);
            p.timesteps << 999 - i * 200;
            p.images << toImage(ref("vae.image", 0));
        }
        ProgressionView pv;
        pv.setResult(p);
        QVERIFY(rendersSomething(pv));

        ProbeResult r;
        r.step = 40;
        r.steps = 50;
        r.noisy = ref("unet.sample", 0);
        r.noisePred = ref("unet.out_t981", 0);
        r.noisyDecoded = r.naiveDecoded = r.predX0Decoded = toImage(ref("vae.decoded_mean", 0));
        UNetStepView uv;
        uv.setResult(r);
        QVERIFY(rendersSomething(uv));
    }

    void pngParametersAreA1111Style() {
        GenerateSettings s;
        s.prompt = "a dog";
        s.negativePrompt = "blurry";
        s.steps = 20;
        s.guidance = 7.5;
        s.seed = 42;
        s.scheduler = "euler_a";
        s.width = 512;
        s.height = 768;
        s.clipSkip = 2;
        QCOMPARE(s.a1111Parameters(), QString("a dog\nNegative prompt: blurry\nSteps: 20, Sampler: Euler a, CFG scale: "
                                              "7.5, Seed: 42, Size: 512x768, Clip skip: 2"));
        // The VAE and the LoRAs as sdlens-cli generate writes them; several LoRAs quoted.
        s.model = "/models/sd15";
        s.vae = "vae-ft-mse";
        s.loras = {{"/loras/ink-style.safetensors", 0.8}};
        QCOMPARE(s.a1111Parameters(), QString("a dog\nNegative prompt: blurry\nSteps: 20, Sampler: Euler a, CFG scale: "
                                              "7.5, Seed: 42, Size: 512x768, Model: sd15, VAE: vae-ft-mse, "
                                              "Lora: ink-style:0.8, Clip skip: 2"));
        s.loras << LoraChoice{"/loras/detail.safetensors", -1};
        QVERIFY(s.a1111Parameters().contains(", Lora: \"ink-style:0.8, detail:-1\", Clip skip: 2"));
    }

    void tokensMarkTextualInversionVectors() {
        TokensView view;
        view.setPrompt("a photo of redfox on grass");
        QCOMPARE(view.embeddingPositions(), 0);
        view.setEmbeddings({TextualInversion{"/emb/redfox.safetensors", "redfox", 2, "kohya (emb_params)"}});
        QCOMPARE(view.embeddingPositions(), 2);
        QCOMPARE(view.usedTokens(), 2 + 3 + 2 + 2);  // start, a photo of, 2 vectors, on grass, end
        auto* table = view.findChild<QTableWidget*>();
        QCOMPARE(table->item(4, 2)->text(), QString("<redfox:0>"));
        QCOMPARE(table->item(5, 4)->text(), QString("textual inversion “redfox”, vector 2 of 2"));
        QVERIFY(table->item(6, 4)->text().isEmpty());  // "on"
        QString summary;
        for (auto* l : view.findChildren<QLabel*>())
            summary += l->text();
        QVERIFY(summary.contains("2 positions</b> hold textual-inversion vectors (redfox)"));
        view.setEmbeddings({});
        QCOMPARE(view.embeddingPositions(), 0);
        QVERIFY(rendersSomething(view));
    }

    void loraViewGroupsLayersByLevel() {
        auto layer = [](const char* network, const char* module, const char* level, double change) {
            return LoraLayer{network, module, level, change};
        };
        LoraSummary ink;
        ink.name = "ink";
        ink.format = "kohya";
        ink.rank = 4;
        ink.alpha = 2;
        ink.strength = 0.8;
        ink.layers = {layer("text_encoder", "text_model.encoder.layers.0.self_attn.q_proj", "", 0.02),
                      layer("unet", "down_blocks.0.attentions.0.proj_in", "down 0", 0.1),
                      layer("unet", "down_blocks.0.attentions.1.proj_in", "down 0", 0.3),
                      layer("unet", "mid_block.attentions.0.proj_out", "mid", 0.05),
                      layer("unet", "up_blocks.3.attentions.2.proj_out", "up 3", 0.2)};
        LoraSummary conv = ink;
        conv.name = "conv";
        conv.layers = {layer("unet", "conv_in", "", 0.5), layer("unet", "up_blocks.1.resnets.0.conv1", "up 1", 0.4)};
        LoraView view;
        view.setLoras({ink});
        const QStringList levels = {"text encoder", "down 0", "down 1", "down 2", "down 3",
                                    "mid",          "up 0",   "up 1",   "up 2",   "up 3"};
        QCOMPARE(view.groups(), levels);
        const auto mean = view.perGroup(ink, LoraView::Measure::Mean);
        QCOMPARE(mean[0], 0.02);
        QVERIFY(std::abs(mean[1] - 0.2) < 1e-12);
        QCOMPARE(mean[2], 0.0);
        QCOMPARE(mean[5], 0.05);
        QCOMPARE(view.perGroup(ink, LoraView::Measure::Largest)[1], 0.3);
        QCOMPARE(view.perGroup(ink, LoraView::Measure::Layers)[1], 2.0);

        view.setLoras({ink, conv});  // conv_in sits outside the blocks: a group of its own
        QCOMPARE(view.groups().size(), levels.size() + 1);
        QCOMPARE(view.groups().last(), QString("U-Net, outside the blocks"));
        QCOMPARE(view.perGroup(conv, LoraView::Measure::Mean).last(), 0.5);
        auto* table = view.findChild<QTableWidget*>();
        QCOMPARE(table->rowCount(), 7);
        QCOMPARE(table->item(0, 3)->data(Qt::DisplayRole).toDouble(), 0.5);  // largest first
        auto* plot = view.findChild<QCustomPlot*>();
        QCOMPARE(plot->plottableCount(), 2);  // one bar series per LoRA
        view.setMeasure(LoraView::Measure::Layers);
        QVERIFY(rendersSomething(view));
        view.setLoras({});
        QCOMPARE(table->rowCount(), 0);
        QVERIFY(rendersSomething(view));
    }

    void compareViewVariesLoraStrength() {
        CompareView view;
        view.setVary("lora");
        QCOMPARE(view.vary(), QString("lora"));
        view.setLoraStrengths("0, 0.5 ,1");
        QCOMPARE(view.values(GenerateSettings()), (QStringList{"0", "0.5", "1"}));
        ComparisonRecord rec;
        rec.vary = "lora";
        for (double strength : {0.0, 1.0}) {
            ComparisonRun run;
            run.label = QString("lora %1").arg(strength);
            run.settings.loras = {{"/loras/ink.safetensors", strength}};
            run.image = toImage(ref("e2e.lms.image", 0));
            run.previews << run.image;
            run.latentDifference << strength * 0.1;
            run.stepDifference << ref("e2e.lms.steps").slice(0).slice(0);
            rec.runs << run;
        }
        view.setResult(rec);
        QString all;
        for (auto* l : view.findChildren<QLabel*>())
            all += l->text();
        QVERIFY2(all.contains("LoRA ink at each strength"), qPrintable(all));
        QVERIFY(rendersSomething(view));
    }

    void attentionViewShowsMapsWithAndWithoutLoras() {
        auto run = [](float boost) {
            RunRecord r;
            r.settings.prompt = "a dog";
            r.settings.width = r.settings.height = 64;
            r.condTokens = QStringList{"<|startoftext|>", "a</w>", "dog</w>"};
            while (r.condTokens.size() < 77)
                r.condTokens << "<|endoftext|>";
            StepRecord s;
            s.attention.shape = {77, 8, 8};
            s.attention.values.fill(1.f / 77, 77 * 64);
            s.attention.values[2 * 64] += boost;  // "dog", top-left
            s.preview = QImage(8, 8, QImage::Format_RGB888);
            s.preview.fill(Qt::gray);
            r.steps << s;
            r.image = QImage(64, 64, QImage::Format_RGB888);
            r.image.fill(Qt::gray);
            return r;
        };
        AttentionView view;
        QSignalSpy asked(&view, &AttentionView::withoutLorasRequested);
        RunRecord with = run(0.5f);
        with.settings.loras = {{"/loras/ink.safetensors", 0.8}};
        view.beginRun(with.settings);
        view.finishRun(with);
        view.selectToken(2);
        auto* button = view.findChild<QPushButton*>();
        QVERIFY(button && button->isEnabled());
        button->click();
        QCOMPARE(asked.size(), 1);
        QCOMPARE(asked.first().first().value<GenerateSettings>().loras.size(), 1);
        QVERIFY(!button->isEnabled());
        view.setBaselineProgress(1, 1);
        view.setBaseline(run(0.1f));
        QVERIFY(view.hasBaseline());
        QCOMPARE(view.currentMap().values[0], 1.f / 77 + 0.5f);
        QCOMPARE(view.baselineMap().values[0], 1.f / 77 + 0.1f);
        int shown = 0;
        for (auto* v : view.findChildren<ImageView*>())
            shown += v->isVisibleTo(&view) && !v->image().isNull() ? 1 : 0;
        QCOMPARE(shown, 2);
        QVERIFY(rendersSomething(view));
        // A run without LoRAs has nothing to leave out.
        view.beginRun(run(0.5f).settings);
        view.finishRun(run(0.5f));
        QVERIFY(!view.hasBaseline());
        QVERIFY(!button->isEnabled());
    }
};

QTEST_MAIN(TestViews)
#include "test_views.moc"
