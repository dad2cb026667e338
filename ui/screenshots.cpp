#include "ui/screenshots.h"

#include "core/io/safetensors.h"
#include "ui/lora_panel.h"
#include "ui/main_window.h"
#include "ui/model_picker.h"
#include "ui/views/attention_view.h"
#include "ui/views/compare_view.h"
#include "ui/views/embeddings_view.h"
#include "ui/views/generate_view.h"
#include "ui/views/lora_view.h"
#include "ui/views/schedule_view.h"
#include "ui/views/vae_view.h"
#include "ui/worker/pipeline_controller.h"
#include "ui/worker/pipeline_worker.h"

#include <QCheckBox>
#include <QDir>
#include <QSpinBox>
#include <QEventLoop>
#include <QTemporaryDir>
#include <QTimer>
#include <QtGlobal>

#include <algorithm>
#include <cstdio>
#include <exception>
#include <random>

namespace sdlui {

namespace {
// Runs `action`, then the event loop until `sender` emits `signal` or a failure is reported.
template <typename Sender, typename Signal, typename Action>
bool waitFor(Sender* sender, Signal signal, PipelineWorker* worker, int timeoutMs, Action action) {
    QEventLoop loop;
    QTimer timer;
    timer.setSingleShot(true);
    QObject::connect(sender, signal, &loop, [&] { loop.exit(0); });
    QObject::connect(worker, &PipelineWorker::failed, &loop, [&](const QString& op, const QString& msg) {
        std::fprintf(stderr, "screenshots: %s failed: %s\n", qPrintable(op), qPrintable(msg));
        loop.exit(1);
    });
    QObject::connect(worker, &PipelineWorker::modelFailed, &loop, [&](const QString& path, const QString& msg) {
        std::fprintf(stderr, "screenshots: could not open %s: %s\n", qPrintable(path), qPrintable(msg));
        loop.exit(1);
    });
    QObject::connect(worker, &PipelineWorker::vaeFailed, &loop, [&](const QString& path, const QString& msg) {
        std::fprintf(stderr, "screenshots: could not use the VAE %s: %s\n", qPrintable(path), qPrintable(msg));
        loop.exit(1);
    });
    QObject::connect(&timer, &QTimer::timeout, &loop, [&] {
        std::fprintf(stderr, "screenshots: no result after %d s\n", timeoutMs / 1000);
        loop.exit(2);
    });
    timer.start(timeoutMs);
    action();
    return loop.exec() == 0;
}

void settle(int ms) {
    QEventLoop loop;
    QTimer::singleShot(ms, &loop, &QEventLoop::quit);
    loop.exec();
}

bool endsWith(const std::string& s, const std::string& tail) {
    return s.size() >= tail.size() && s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
}

// A rank-4 kohya LoRA with random matrices for a diffusers model folder, so the LoRA screenshots need
// nothing but the demo model: every linear of the U-Net's transformer blocks and the text encoder's
// attention, each change about a quarter of its weight's size on the demo model's weights.
bool writeDemoLora(const QString& model, const QString& path) {
    constexpr int64_t kRank = 4;
    std::mt19937 random(12);
    std::normal_distribution<float> normal(0.f, 0.15f);
    std::vector<std::vector<float>> values;  // each buffer stays where it is when the outer vector grows
    std::vector<sdl::TensorBlob> blobs;
    auto add = [&](const std::string& name, const std::vector<int64_t>& shape, bool isAlpha) {
        int64_t n = 1;
        for (int64_t d : shape)
            n *= d;
        values.emplace_back(size_t(n));
        for (float& v : values.back())
            v = isAlpha ? float(kRank) : normal(random);
        blobs.push_back({name, sdl::DType::F32, shape, values.back().data(), size_t(n) * sizeof(float)});
    };
    const struct {
        const char* file;
        const char* prefix;
        const char* within;
    } networks[] = {{"unet/diffusion_pytorch_model.safetensors", "lora_unet_", ".transformer_blocks."},
                    {"text_encoder/model.safetensors", "lora_te_", ".self_attn."}};
    try {
        for (const auto& n : networks) {
            const auto f = sdl::SafetensorsFile::open(QDir(model).filePath(n.file).toStdString());
            for (const auto& [key, v] : f->tensors()) {
                if (!endsWith(key, ".weight") || v.shape.size() != 2 || key.find(n.within) == std::string::npos)
                    continue;
                std::string base = key.substr(0, key.size() - 7);
                std::replace(base.begin(), base.end(), '.', '_');
                base = n.prefix + base;
                add(base + ".lora_down.weight", {kRank, v.shape[1]}, false);
                add(base + ".lora_up.weight", {v.shape[0], kRank}, false);
                add(base + ".alpha", {}, true);
            }
        }
        sdl::write_safetensors(path.toStdString(), blobs);
        return true;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "screenshots: cannot make a LoRA for %s: %s\n", qPrintable(model), e.what());
        return false;
    }
}

// What the shots show beyond the model's own settings: the demo model opens at its size, steps and
// guidance with "a red circle"; any other model keeps the astronaut.
struct ShotScript {
    QString comparePrompt;
    int token;  // the prompt's noun, whose cross-attention is shown
    QString scheduler;
    int steps, compareSteps, size;
    QString guidances;
    int amplify;  // the VAE comparison's difference images: random VAEs miss by far more than a trained one
};

ShotScript shotScript(bool demo) {
    if (demo)
        return {"a blue circle", 3 /* "circle</w>" */, "dpmpp_2m", 20, 20, 128, "1, 5, 10", 10};
    return {"a photograph of an astronaut riding a camel", 8 /* "horse</w>" */, "lms", 20, 10, 256, "1, 3, 7.5, 15", 1};
}

} // namespace

int renderScreenshots(const QString& dir, const QString& model, const QStringList& vaes, const QString& lora) {
    if (!QDir().mkpath(dir)) {
        std::fprintf(stderr, "screenshots: cannot create %s\n", qPrintable(dir));
        return 1;
    }
    MainWindow::Options options;
    options.persistSettings = false;
    options.model = model;
    MainWindow window(options);
    window.resize(1440, 900);
    // The demo model, opened when no model is given, swaps it for a prompt it was trained on.
    window.setPrompt(MainWindow::defaultPrompt());
    window.show();
    PipelineWorker* w = window.controller()->worker();
    constexpr int kTimeout = 300000;

    if (!waitFor(&window, &MainWindow::modelReady, w, kTimeout, [] {}))
        return 1;
    const ShotScript script = shotScript(ModelPicker::isDemoModel(window.currentSettings().model));
    // Set once the model is open: explicit run settings win over the demo's own, whose guidance stays.
    window.setRunSettings(script.scheduler, script.steps, script.size, script.size, 42);
    auto shoot = [&](MainWindow::Stage stage, const char* name) {
        window.showStage(stage);
        settle(200);
        const QString path = QDir(dir).filePath(name);
        if (!window.grab().save(path)) {
            std::fprintf(stderr, "screenshots: cannot write %s\n", qPrintable(path));
            return false;
        }
        std::printf("%s\n", qPrintable(path));
        return true;
    };

    bool ok = waitFor(w, &PipelineWorker::roundTripReady, w, kTimeout, [&] { window.showStage(MainWindow::Vae); }) &&
              shoot(MainWindow::Vae, "8-vae-round-trip.png") && shoot(MainWindow::Latents, "3-latents.png") &&
              waitFor(w, &PipelineWorker::progressionReady, w, kTimeout,
                      [&] { window.showStage(MainWindow::Progression); }) &&
              shoot(MainWindow::Progression, "5-noise-progression.png") &&
              waitFor(w, &PipelineWorker::probeReady, w, kTimeout, [&] { window.showStage(MainWindow::UNetStep); }) &&
              shoot(MainWindow::UNetStep, "6-unet-step.png") &&
              waitFor(w, &PipelineWorker::embeddingsReady, w, kTimeout, [&] {
                  window.embeddingsView()->setComparePrompt(script.comparePrompt);
                  window.showStage(MainWindow::Embeddings);
                  window.controller()->computeEmbeddings(window.currentSettings().prompt,
                                                         window.embeddingsView()->comparePrompt());
              }) &&
              shoot(MainWindow::Embeddings, "2-embeddings.png") && shoot(MainWindow::Tokens, "1-tokens.png") &&
              waitFor(w, &PipelineWorker::runFinished, w, kTimeout, [&] { window.generate(); });
    if (ok) {
        // Scrub to the middle of the run and let the VAE decode that step's x0.
        const int mid = window.generateView()->run().steps.size() / 2;
        ok = waitFor(w, &PipelineWorker::latentsDecoded, w, kTimeout,
                     [&] { window.generateView()->setCurrentStep(mid); }) &&
             shoot(MainWindow::Generate, "7-generate-step-through.png");
    }
    if (ok) {
        for (QCheckBox* box : window.scheduleView()->findChildren<QCheckBox*>())
            if (box->text() == "euler" || box->text() == "ddim")
                box->setChecked(true);
        ok = shoot(MainWindow::Schedule, "4-noise-schedule.png");
    }
    if (ok) {
        window.attentionView()->selectToken(script.token);
        window.attentionView()->setAllSteps(true);
        ok = shoot(MainWindow::Attention, "9-cross-attention.png");
    }
    if (ok) {
        window.compareView()->setVary("guidance");
        window.compareView()->setGuidanceValues(script.guidances);
        window.setRunSettings(script.scheduler, script.compareSteps, script.size, script.size, 42);
        ok = waitFor(w, &PipelineWorker::comparisonReady, w, 2 * kTimeout, [&] { window.compare(); }) &&
             shoot(MainWindow::Compare, "10-compare-guidance.png");
    }
    if (ok) {
        // A VAE is read from a model path too (its vae/ or first_stage_model.*): without a list, the
        // model's own VAE read from its files stands in for another one.
        const QStringList others = vaes.isEmpty() ? QStringList{window.currentSettings().model}
                                                  : vaes.mid(0, VaeView::kMaxOtherVaes);
        ok = waitFor(w, &PipelineWorker::roundTripReady, w, kTimeout,
                     [&] { window.controller()->setVae(others.first()); }) &&
             waitFor(w, &PipelineWorker::vaeComparisonReady, w, kTimeout, [&] {
                 window.showStage(MainWindow::Vae);
                 window.vaeView()->setOtherVaes(others);
                 for (QSpinBox* amplify : window.vaeView()->findChildren<QSpinBox*>())
                     amplify->setValue(script.amplify);
                 window.vaeView()->requestComparison();
             }) &&
             shoot(MainWindow::Vae, "11-vae-compare.png");
    }
    QTemporaryDir made;
    const QString loraPath = lora.isEmpty() ? made.filePath("demo-lora.safetensors") : lora;
    if (ok && lora.isEmpty())
        ok = writeDemoLora(window.currentSettings().model, loraPath);
    if (ok) {
        window.compareView()->setVary("lora");
        window.compareView()->setLoraStrengths("0, 0.5, 1");
        ok = waitFor(w, &PipelineWorker::lorasChanged, w, kTimeout, [&] { window.loraPanel()->addLora(loraPath); }) &&
             waitFor(w, &PipelineWorker::comparisonReady, w, 2 * kTimeout, [&] { window.compare(); }) &&
             shoot(MainWindow::Compare, "12-lora-compare.png") && shoot(MainWindow::Lora, "13-lora-layers.png") &&
             waitFor(w, &PipelineWorker::runFinished, w, kTimeout, [&] { window.generate(); }) &&
             waitFor(w, &PipelineWorker::baselineReady, w, kTimeout, [&] {
                 window.showStage(MainWindow::Attention);
                 window.attentionView()->selectToken(script.token);
                 window.attentionView()->requestWithoutLoras();
             }) &&
             shoot(MainWindow::Attention, "14-lora-attention.png");
    }
    window.close();
    return ok ? 0 : 1;
}

} // namespace sdlui
