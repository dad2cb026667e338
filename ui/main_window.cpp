#include "ui/main_window.h"

#include "core/io/safetensors.h"
#include "ui/lora_panel.h"
#include "ui/model_picker.h"
#include "ui/sample_image.h"
#include "ui/settings_panel.h"
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
#include "ui/worker/pipeline_controller.h"
#include "ui/worker/pipeline_worker.h"

#include <QAction>
#include <QApplication>
#include <QCloseEvent>
#include <QDockWidget>
#include <QFile>
#include <QFileDialog>
#include <QFileInfo>
#include <QHBoxLayout>
#include <QImageReader>
#include <QImageWriter>
#include <QLabel>
#include <QLineEdit>
#include <QListWidget>
#include <QMenuBar>
#include <QMimeData>
#include <QPlainTextEdit>
#include <QProgressBar>
#include <QPushButton>
#include <QScrollArea>
#include <QSettings>
#include <QShortcut>
#include <QSplitter>
#include <QStackedWidget>
#include <QStatusBar>
#include <QTimer>
#include <QVBoxLayout>

#include <unistd.h>

namespace sdlui {

namespace {
const char* kStageNames[] = {"1  Tokens",        "2  Embeddings",       "3  Latents",
                             "4  Noise schedule", "5  Noise progression", "6  One U-Net step",
                             "7  Generate & step through", "8  VAE round trip", "9  Cross-attention",
                             "10 Compare",        "11 LoRA layers"};

// A trace and a model checkpoint are both .safetensors; a trace has the run's step tensors.
bool isTraceFile(const QString& path) {
    try {
        const auto f = sdl::SafetensorsFile::open(path.toStdString());
        return f->contains("steps") && f->contains("timesteps") && f->contains("init");
    } catch (const std::exception&) {
        return false;
    }
}

const char* const kDemoPrompt = "a red circle";

} // namespace

QString MainWindow::defaultPrompt() { return "a photograph of an astronaut riding a horse"; }

MainWindow::MainWindow(const Options& options, QWidget* parent)
    : QMainWindow(parent), options_(options), controller_(new PipelineController) {
    setWindowTitle("SD Lens");
    setAcceptDrops(true);
    resize(1440, 920);

    auto* central = new QWidget;
    auto* outer = new QVBoxLayout(central);
    outer->setContentsMargins(6, 6, 6, 0);
    outer->addWidget(buildPromptBar());
    modelBanner_ = new Banner;
    errorBanner_ = new Banner;
    outer->addWidget(modelBanner_);
    outer->addWidget(errorBanner_);

    auto* split = new QSplitter;
    navigator_ = new QListWidget;
    for (const char* name : kStageNames)
        navigator_->addItem(name);
    navigator_->setMaximumWidth(230);
    split->addWidget(navigator_);
    stack_ = new QStackedWidget;
    tokensView_ = new TokensView;
    embeddingsView_ = new EmbeddingsView;
    latentsView_ = new LatentsView;
    scheduleView_ = new ScheduleView;
    progressionView_ = new ProgressionView;
    unetView_ = new UNetStepView;
    generateView_ = new GenerateView;
    vaeView_ = new VaeView;
    attentionView_ = new AttentionView;
    compareView_ = new CompareView;
    loraView_ = new LoraView;
    for (QWidget* w : std::initializer_list<QWidget*>{tokensView_, embeddingsView_, latentsView_, scheduleView_,
                                                      progressionView_, unetView_, generateView_, vaeView_,
                                                      attentionView_, compareView_, loraView_})
        stack_->addWidget(w);
    split->addWidget(stack_);
    split->setStretchFactor(1, 1);
    outer->addWidget(split, 1);
    setCentralWidget(central);

    auto* dock = new QDockWidget("Settings");
    dock->setObjectName("settingsDock");
    auto* dockContent = new QWidget;
    auto* dockLayout = new QVBoxLayout(dockContent);
    modelPicker_ = new ModelPicker(options_.persistSettings);
    settingsPanel_ = new SettingsPanel(options_.persistSettings);
    loraPanel_ = new LoraPanel(options_.persistSettings);
    dockLayout->addWidget(modelPicker_);
    dockLayout->addWidget(settingsPanel_);
    dockLayout->addWidget(loraPanel_);
    dockLayout->addStretch(1);
    // With several LoRAs the dock is taller than a laptop screen.
    auto* dockScroll = new QScrollArea;
    dockScroll->setWidgetResizable(true);
    dockScroll->setFrameShape(QFrame::NoFrame);
    dockScroll->setHorizontalScrollBarPolicy(Qt::ScrollBarAlwaysOff);
    dockScroll->setWidget(dockContent);
    dock->setWidget(dockScroll);
    dock->setFeatures(QDockWidget::DockWidgetMovable | QDockWidget::DockWidgetFloatable);
    addDockWidget(Qt::RightDockWidgetArea, dock);

    buildMenus();
    buildStatusBar();

    embedTimer_ = new QTimer(this);
    embedTimer_->setSingleShot(true);
    embedTimer_->setInterval(400);  // encode once typing pauses, not on every key
    connect(embedTimer_, &QTimer::timeout, this, [this] {
        if (modelLoaded_ && stack_->currentIndex() == Embeddings)
            controller_->computeEmbeddings(prompt_->toPlainText(), embeddingsView_->comparePrompt());
    });
    connect(navigator_, &QListWidget::currentRowChanged, this, [this](int row) {
        stack_->setCurrentIndex(row);
        stageShown(row);
    });
    connect(prompt_, &QPlainTextEdit::textChanged, this, [this] {
        const QString text = prompt_->toPlainText();
        tokensView_->setPrompt(text);
        embeddingsView_->setPrompt(text);
        embeddingsStale_ = true;
        embedTimer_->start();
    });
    connect(embeddingsView_, &EmbeddingsView::computeRequested, this, [this](const QString& p, const QString& c) {
        controller_->computeEmbeddings(p, c);
    });
    connect(vaeView_, &VaeView::roundTripRequested, this, [this](const QImage& img, const QString&) {
        roundTripPending_ = true;
        controller_->roundTrip(img);
    });
    connect(vaeView_, &VaeView::compareRequested, this, [this](const QImage& img, const QStringList& vaes) {
        controller_->compareVaes(img, vaes);
    });
    connect(vaeView_, &VaeView::decodeWithVaesRequested, this, [this](const QStringList& vaes) {
        if (lastRun_.steps.isEmpty()) {
            vaeView_->comparisonFailed();
            return showError("Nothing to decode yet", "Generate an image first.");
        }
        controller_->decodeWithVaes(lastRun_.steps.last().latents, vaes);
    });
    connect(progressionView_, &ProgressionView::runRequested, this, [this] {
        ensureImage();
        const auto s = currentSettings();
        controller_->noiseProgression(s.scheduler, s.steps, s.seed);
    });
    connect(unetView_, &UNetStepView::runRequested, this, [this](int step, const QString& prompt, double g) {
        ensureImage();
        const auto s = currentSettings();
        controller_->unetProbe(step, s.steps, prompt, s.scheduler, g, s.seed);
    });
    connect(generateView_, &GenerateView::decodeRequested, this, [this](int step, const FloatTensor& x0) {
        controller_->decodeLatents(step, x0);
    });
    connect(generateView_, &GenerateView::currentStepChanged, this, [this](const StepRecord& s) {
        scheduleView_->setCurrentStep(s.index);
        latentsView_->setStep(s);
        attentionView_->setCurrentStep(s.index);
    });
    connect(modelPicker_, &ModelPicker::openRequested, this, &MainWindow::openModel);
    connect(modelPicker_, &ModelPicker::failed, this, &MainWindow::showError);
    connect(modelPicker_, &ModelPicker::creatingDemo, this, [this](const QString& path) {
        statusBusy_->setText("Creating the demo model…");
        modelBanner_->show(Banner::Kind::Info, "Creating SD Lens' demo model (trained weights, a few MB) in " +
                                                   path.toHtmlEscaped() + " …");
    });
    connect(modelPicker_, &ModelPicker::demoFinished, statusBusy_, &QLabel::clear);
    connect(settingsPanel_, &SettingsPanel::changed, this, &MainWindow::settingsChanged);
    connect(settingsPanel_, &SettingsPanel::runtimeChanged, this, &MainWindow::reloadModel);
    connect(settingsPanel_, &SettingsPanel::vaeChosen, this, [this](const QString& path) {
        if (!modelLoaded_) {
            settingsPanel_->showVae(modelPath_, settingsPanel_->vaeInUse());
            return showError("No model yet", "A VAE replaces the VAE of a loaded model: open a model first.");
        }
        errorBanner_->hide();
        controller_->setVae(path);
    });
    connect(compareView_, &CompareView::compareRequested, this, &MainWindow::compare);
    connect(compareView_, &CompareView::cancelRequested, this, &MainWindow::cancel);
    connectWorker();
    connectLoras();

    loadSettings();
    vaeView_->setRecentVaes(settingsPanel_->recentVaes());
    tokensView_->setPrompt(prompt_->toPlainText());
    embeddingsView_->setPrompt(prompt_->toPlainText());
    settingsChanged();
    if (navigator_->currentRow() < 0)
        navigator_->setCurrentRow(Generate);

    auto* memoryTimer = new QTimer(this);
    connect(memoryTimer, &QTimer::timeout, this, &MainWindow::updateMemory);
    memoryTimer->start(1000);
    updateMemory();

    QTimer::singleShot(0, this, [this] { modelPicker_->start(options_.model); });
}

MainWindow::~MainWindow() {
    // Stop and join the worker before the widgets its queued results would go to disappear.
    delete controller_;
}

QWidget* MainWindow::buildPromptBar() {
    auto* bar = new QWidget;
    auto* layout = new QHBoxLayout(bar);
    layout->setContentsMargins(0, 0, 0, 0);
    auto* fields = new QVBoxLayout;
    prompt_ = new QPlainTextEdit;
    prompt_->setPlaceholderText("Prompt, e.g. a photograph of an astronaut riding a horse");
    prompt_->setFixedHeight(prompt_->fontMetrics().lineSpacing() * 3 + 12);
    prompt_->setTabChangesFocus(true);
    fields->addWidget(prompt_);
    negative_ = new QLineEdit;
    negative_->setPlaceholderText("Negative prompt (empty: unconditional)");
    fields->addWidget(negative_);
    layout->addLayout(fields, 1);
    auto* buttons = new QVBoxLayout;
    generateButton_ = new QPushButton("Generate");
    generateButton_->setToolTip("Ctrl+Enter");
    generateButton_->setDefault(true);
    generateButton_->setMinimumHeight(40);
    cancelButton_ = new QPushButton("Cancel");
    cancelButton_->setEnabled(false);
    cancelButton_->setToolTip("Esc — stops before the next U-Net call");
    buttons->addWidget(generateButton_);
    buttons->addWidget(cancelButton_);
    layout->addLayout(buttons);
    connect(generateButton_, &QPushButton::clicked, this, &MainWindow::generate);
    connect(cancelButton_, &QPushButton::clicked, this, &MainWindow::cancel);
    for (const auto& key : {QKeySequence(Qt::CTRL | Qt::Key_Return), QKeySequence(Qt::CTRL | Qt::Key_Enter)})
        connect(new QShortcut(key, this), &QShortcut::activated, this, &MainWindow::generate);
    connect(new QShortcut(QKeySequence(Qt::Key_Escape), this), &QShortcut::activated, this, &MainWindow::cancel);
    return bar;
}

void MainWindow::buildMenus() {
    QMenu* file = menuBar()->addMenu("&File");
    modelPicker_->addMenuActions(file);
    file->addSeparator();
    file->addAction("Open &image for the VAE…", this, [this] {
        showStage(Vae);
        vaeView_->chooseImage();
    });
    file->addAction("Open &run (trace)…", this, [this] {
        const QString path = QFileDialog::getOpenFileName(this, "Open a saved run", QString(),
                                                          "SD Lens traces (*.safetensors)");
        if (!path.isEmpty())
            openTrace(path);
    });
    file->addSeparator();
    file->addAction("&Save image…", QKeySequence::Save, this, &MainWindow::saveImage);
    file->addAction("Save r&un (trace)…", this, &MainWindow::saveRun);
    file->addSeparator();
    file->addAction("&Quit", QKeySequence::Quit, this, &QWidget::close);

    QMenu* view = menuBar()->addMenu("&Stages");
    for (int i = 0; i < StageCount; ++i)
        view->addAction(QString(kStageNames[i]).simplified(), QKeySequence(Qt::CTRL | (Qt::Key_0 + (i + 1) % 10)),
                        this, [this, i] { showStage(Stage(i)); });
}

void MainWindow::buildStatusBar() {
    statusModel_ = new QLabel("no model");
    statusDevice_ = new QLabel;
    statusMemory_ = new QLabel;
    statusBusy_ = new QLabel;
    progress_ = new QProgressBar;
    progress_->setMaximumWidth(220);
    progress_->setTextVisible(true);
    progress_->setRange(0, 1);
    progress_->setValue(0);
    progress_->setFormat("idle");
    statusRate_ = new QLabel;
    statusBar()->addWidget(statusModel_, 1);
    statusBar()->addWidget(statusBusy_);
    statusBar()->addPermanentWidget(progress_);
    statusBar()->addPermanentWidget(statusRate_);
    statusBar()->addPermanentWidget(statusDevice_);
    statusBar()->addPermanentWidget(statusMemory_);
}

void MainWindow::connectWorker() {
    PipelineWorker* w = controller_->worker();
    connect(w, &PipelineWorker::busyChanged, this, [this](const QString& what) {
        statusBusy_->setText(what.isEmpty() ? QString() : what + "…");
    });
    connect(w, &PipelineWorker::modelLoaded, this, [this](const ModelSummary& s) {
        modelLoaded_ = true;
        modelPath_ = s.path;
        const QString name = QFileInfo(s.path).fileName();
        modelPicker_->setLoaded(s);
        settingsPanel_->showVae(s.path, s.vaePath);
        loraPanel_->setModel(s.path);
        showWarnings(s.warnings);
        statusModel_->setText(QString("%1 (%2) loaded in %3 s").arg(name, s.layout).arg(s.loadSeconds, 0, 'f', 1));
        statusDevice_->setText(s.device + " · " + s.dtypes);
        statusDevice_->setToolTip("Precision: " + s.precision);
        if (ModelPicker::isDemoModel(s.path)) {
            showDemoBanner(s.path);
            // Its native size, 20 steps of DPM++ 2M (a sampler that converges in few steps) and
            // guidance 5: a first picture in seconds.
            settingsPanel_->useDemoSettings(s.nativeSize, 20, "dpmpp_2m", 5.0);
            if (prompt_->toPlainText() == defaultPrompt())
                prompt_->setPlainText(kDemoPrompt);
        } else {
            modelBanner_->hide();
            settingsPanel_->useUserSettings();
        }
        roundTripDone_ = false;
        progressionStale_ = probeStale_ = embeddingsStale_ = true;
        generateView_->setDecodingAvailable(true);
        stageShown(stack_->currentIndex());
        emit modelReady(s);
    });
    connect(w, &PipelineWorker::vaeChanged, this, [this](const ModelSummary& s) {
        settingsPanel_->rememberVae(s.path, s.vaePath);
        vaeView_->setRecentVaes(settingsPanel_->recentVaes());
        modelPicker_->setLoaded(s);
        showWarnings(s.warnings);
        const QString vae = s.vaePath.isEmpty() ? QString("the model's own VAE") : "the VAE " + vaeName(s.vaePath);
        statusBar()->showMessage("Using " + vae, 8000);
        // Every latent view shows what the previous VAE encoded: the image goes through the new one.
        roundTripDone_ = false;
        progressionStale_ = probeStale_ = true;
        if (!vaeView_->result().original.isNull()) {
            roundTripPending_ = true;
            controller_->roundTrip(vaeView_->result().original);
        } else {
            stageShown(stack_->currentIndex());
        }
    });
    connect(w, &PipelineWorker::vaeFailed, this, [this](const QString& path, const QString& message) {
        settingsPanel_->showVae(modelPath_, settingsPanel_->vaeInUse());
        showError("Could not use the VAE " + QFileInfo(path).fileName(), message);
    });
    connect(w, &PipelineWorker::modelFailed, this, [this](const QString& path, const QString& message) {
        modelLoaded_ = false;
        statusModel_->setText("no model");
        modelPicker_->setFailed();
        showError("Could not open the model " + QFileInfo(path).fileName(), message);
    });
    connect(w, &PipelineWorker::failed, this, [this](const QString& op, const QString& message) {
        if (op == "VAE round trip")
            roundTripPending_ = false;
        if (op == "Comparing VAEs")
            vaeView_->comparisonFailed();
        showError(op + " failed", message);
    });
    connect(w, &PipelineWorker::message, this, [this](const QString& text) { statusBar()->showMessage(text, 8000); });
    connect(w, &PipelineWorker::runStarted, this, [this](const GenerateSettings& s) {
        runTimer_.start();
        progress_->setRange(0, s.steps);
        progress_->setValue(0);
        progress_->setFormat("step %v / %m");
        statusRate_->clear();
        generateView_->beginRun(s);
        attentionView_->beginRun(s);
        scheduleView_->setScheduler(s.scheduler, s.steps, s.karras);
    });
    connect(w, &PipelineWorker::timestepsReady, this, [this](const QVector<double>& t, const QVector<double>& s) {
        generateView_->setSchedule(t, s);
        scheduleView_->setRunSchedule(t, s);
        progress_->setRange(0, t.size());
    });
    connect(w, &PipelineWorker::tokensReady, attentionView_, &AttentionView::setTokens);
    connect(w, &PipelineWorker::stepDone, this, [this](const StepRecord& s) {
        generateView_->addStep(s);
        attentionView_->addStep(s);
        progress_->setRange(0, s.total);
        progress_->setValue(s.index + 1);
        const double secs = runTimer_.elapsed() / 1000.0;
        const double rate = secs > 0 ? (s.index + 1) / secs : 0;
        const int eta = rate > 0 ? int((s.total - s.index - 1) / rate + 0.5) : 0;
        statusRate_->setText(QString("%1 it/s · ETA %2:%3").arg(rate, 0, 'f', 2).arg(eta / 60)
                                 .arg(eta % 60, 2, 10, QChar('0')));
    });
    connect(w, &PipelineWorker::runFinished, this, [this](const RunRecord& run) {
        lastRun_ = run;
        vaeView_->setLastGenerationAvailable(true);
        setRunning(false);
        generateView_->finishRun(run);
        attentionView_->finishRun(run);
        latentsView_->setInitialNoise(run.init);
        statusBar()->showMessage(QString("Generated in %1 s").arg(run.seconds, 0, 'f', 1), 8000);
    });
    connect(w, &PipelineWorker::runCancelled, this, [this] {
        setRunning(false);
        generateView_->runStopped("Cancelled.");
        compareView_->setRunning(false);
        attentionView_->baselineStopped("Cancelled.");
        statusBar()->showMessage("Cancelled", 5000);
    });
    connect(w, &PipelineWorker::failed, this, [this](const QString& op, const QString&) {
        if (op == "Generating") {
            setRunning(false);
            generateView_->runStopped("The run failed.");
        }
        if (op == "Comparing") {
            setRunning(false);
            compareView_->setRunning(false);
        }
        if (op == "Generating without LoRAs") {
            setRunning(false);
            attentionView_->baselineStopped("The run without LoRAs failed.");
        }
    });
    connect(w, &PipelineWorker::comparisonProgress, this, [this](int run, int runs, int step, int steps) {
        compareView_->setProgress(run, runs, step, steps);
        progress_->setRange(0, runs * steps);
        progress_->setValue(run * steps + step);
        progress_->setFormat(QString("run %1 / %2").arg(run + 1).arg(runs));
    });
    connect(w, &PipelineWorker::comparisonReady, this, [this](const ComparisonRecord& r) {
        setRunning(false);
        compareView_->setResult(r);
        statusBar()->showMessage(QString("Compared %1 runs").arg(r.runs.size()), 8000);
    });
    connect(w, &PipelineWorker::embeddingsReady, this, [this](const EmbeddingResult& r) {
        embeddingsStale_ = false;
        embeddingsView_->setResult(r);
    });
    connect(w, &PipelineWorker::roundTripReady, this, [this](const RoundTripResult& r) {
        roundTripDone_ = true;
        roundTripPending_ = false;
        progressionStale_ = probeStale_ = true;
        vaeView_->setResult(r);
        latentsView_->setEncodedImage(r.original, r.latents);
        stageShown(stack_->currentIndex());
    });
    connect(w, &PipelineWorker::vaeComparisonReady, vaeView_, &VaeView::setComparison);
    connect(w, &PipelineWorker::progressionReady, this, [this](const ProgressionResult& r) {
        progressionStale_ = false;
        progressionView_->setResult(r);
    });
    connect(w, &PipelineWorker::probeReady, this, [this](const ProbeResult& r) {
        probeStale_ = false;
        unetView_->setResult(r);
    });
    connect(w, &PipelineWorker::latentsDecoded, generateView_, &GenerateView::setDecoded);
    connect(w, &PipelineWorker::traceSaved, this,
            [this](const QString& path) { statusBar()->showMessage("Saved the run to " + path, 8000); });
    connect(w, &PipelineWorker::traceOpened, this, [this](const RunRecord& run) {
        lastRun_ = run;
        vaeView_->setLastGenerationAvailable(!run.steps.isEmpty());
        generateView_->setDecodingAvailable(modelLoaded_);
        generateView_->finishRun(run);
        attentionView_->finishRun(run);
        scheduleView_->setScheduler(run.settings.scheduler, run.settings.steps, run.settings.karras);
        scheduleView_->setRunSchedule(run.timesteps, run.sigmas);
        latentsView_->setInitialNoise(run.init);
        {
            const QSignalBlocker block(prompt_);
            prompt_->setPlainText(run.settings.prompt);
        }
        tokensView_->setPrompt(run.settings.prompt);
        embeddingsView_->setPrompt(run.settings.prompt);
        negative_->setText(run.settings.negativePrompt);
        showStage(Generate);
    });
}

// LoRAs and textual-inversion embeddings change the loaded model in place; the worker reports what
// it applied, and each file it could not use leaves the list with a message.
void MainWindow::connectLoras() {
    PipelineWorker* w = controller_->worker();
    connect(loraPanel_, &LoraPanel::lorasChanged, this, [this](const QVector<LoraChoice>& loras) {
        if (modelLoaded_)
            controller_->setLoras(loras);
    });
    connect(loraPanel_, &LoraPanel::embeddingsChanged, this, [this](const QStringList& paths) {
        if (modelLoaded_)
            controller_->setEmbeddings(paths);
    });
    auto textEncoderChanged = [this] {
        probeStale_ = embeddingsStale_ = true;
        stageShown(stack_->currentIndex());
    };
    connect(w, &PipelineWorker::lorasChanged, this, [this, textEncoderChanged](const QVector<LoraSummary>& applied) {
        loraPanel_->showApplied(applied);
        loraView_->setLoras(applied);
        textEncoderChanged();
    });
    connect(w, &PipelineWorker::textualInversionsChanged, this,
            [this, textEncoderChanged](const QVector<TextualInversion>& loaded) {
                loraPanel_->showLoaded(loaded);
                tokensView_->setEmbeddings(loaded);
                textEncoderChanged();
            });
    connect(w, &PipelineWorker::loraFailed, this, [this](const QString& path, const QString& message) {
        loraPanel_->dropLora(path);
        showError("Could not apply the LoRA " + QFileInfo(path).fileName(), message);
    });
    connect(w, &PipelineWorker::textualInversionFailed, this, [this](const QString& path, const QString& message) {
        loraPanel_->dropEmbedding(path);
        showError("Could not load the embedding " + QFileInfo(path).fileName(), message);
    });
    connect(attentionView_, &AttentionView::withoutLorasRequested, this, [this](const GenerateSettings& s) {
        if (running_ || !modelLoaded_)
            return attentionView_->baselineStopped("Wait for the model and the current run, then try again.");
        errorBanner_->hide();
        setRunning(true);
        controller_->generateWithoutLoras(s);
    });
    connect(w, &PipelineWorker::baselineProgress, attentionView_, &AttentionView::setBaselineProgress);
    connect(w, &PipelineWorker::baselineReady, this, [this](const RunRecord& run) {
        setRunning(false);
        attentionView_->setBaseline(run);
    });
}

void MainWindow::openModel(const QString& path) {
    if (running_)
        setRunning(false);
    errorBanner_->hide();
    modelLoaded_ = false;
    statusModel_->setText("Loading " + QFileInfo(path).fileName() + "…");
    controller_->loadModel(path, settingsPanel_->device(), settingsPanel_->dtype(), settingsPanel_->vaeFor(path),
                           loraPanel_->lorasFor(path), loraPanel_->embeddingsFor(path));
}

void MainWindow::reloadModel() {
    if (!modelPath_.isEmpty())
        openModel(modelPath_);
}

void MainWindow::openTrace(const QString& path) { controller_->openTrace(path); }

QWidget* MainWindow::stageWidget(Stage s) const { return stack_->widget(s); }

void MainWindow::showStage(Stage s) { navigator_->setCurrentRow(s); }

void MainWindow::setPrompt(const QString& prompt, const QString& negative) {
    prompt_->setPlainText(prompt);
    negative_->setText(negative);
}

void MainWindow::setRunSettings(const QString& scheduler, int steps, int width, int height, quint64 seed) {
    settingsPanel_->setRunSettings(scheduler, steps, width, height, seed);
}

GenerateSettings MainWindow::currentSettings() const {
    GenerateSettings s = settingsPanel_->settings();
    s.prompt = prompt_->toPlainText();
    s.negativePrompt = negative_->text();
    s.model = modelPath_;
    return s;
}

QString MainWindow::bannerText() const {
    return (modelBanner_->isVisibleTo(this) ? modelBanner_->text() : QString()) + "\n" +
           (errorBanner_->isVisibleTo(this) ? errorBanner_->text() : QString());
}

void MainWindow::generate() {
    if (running_)
        return;
    if (!modelLoaded_)
        return showError("No model yet", "Wait for the model to load, or open one (File ▸ Open model folder).");
    settingsPanel_->rollSeedUnlessLocked();
    errorBanner_->hide();
    setRunning(true);
    showStage(Generate);
    controller_->generate(currentSettings());
}

void MainWindow::compare() {
    if (running_)
        return;
    if (!modelLoaded_)
        return showError("No model yet", "Wait for the model to load, or open one (File ▸ Open model folder).");
    if (compareView_->vary() == "lora" && loraPanel_->enabledLoras().size() != 1)
        return showError("Comparing LoRA strengths needs exactly one LoRA",
                         QString("Enable one LoRA in the settings (LoRAs); %1 are enabled now. Its strength "
                                 "then varies from run to run.").arg(loraPanel_->enabledLoras().size()));
    errorBanner_->hide();
    setRunning(true);
    compareView_->setRunning(true);
    showStage(Compare);
    const GenerateSettings s = currentSettings();
    controller_->compare(s, compareView_->vary(), compareView_->values(s));
}

void MainWindow::cancel() {
    if (!running_)
        return;
    controller_->cancel();
    statusBusy_->setText("Cancelling…");
}

void MainWindow::setRunning(bool running) {
    running_ = running;
    generateButton_->setEnabled(!running);
    cancelButton_->setEnabled(running);
    if (!running)
        statusRate_->setText(statusRate_->text().section(" · ETA", 0, 0));
}

void MainWindow::settingsChanged() {
    const GenerateSettings s = settingsPanel_->settings();
    scheduleView_->setScheduler(s.scheduler, s.steps, s.karras);
    unetView_->setStepCount(s.steps);
    progressionStale_ = probeStale_ = true;
}

// Views 3, 5, 6 and 8 work on an image's latents; until the user brings one, a drawn picture goes
// through the VAE so they have something to show: one of the demo's own kind when the demo is open.
void MainWindow::ensureImage() {
    if (roundTripDone_ || roundTripPending_ || !modelLoaded_)
        return;
    const int size = std::min(512, roundTo8(std::max(settingsPanel_->width(), 128)));
    if (ModelPicker::isDemoModel(modelPath_))
        vaeView_->openImage(toyWorldSample(size), "a toy-world picture");
    else
        vaeView_->openImage(sampleImage(size), "the sample drawing");
}

void MainWindow::stageShown(int stage) {
    if (!modelLoaded_)
        return;
    switch (stage) {
    case Latents:
    case Vae:
        ensureImage();
        break;
    case Progression:
        ensureImage();
        if (roundTripDone_ && progressionStale_) {
            progressionStale_ = false;
            const auto s = currentSettings();
            controller_->noiseProgression(s.scheduler, s.steps, s.seed);
        }
        break;
    case UNetStep:
        ensureImage();
        if (roundTripDone_ && probeStale_) {
            probeStale_ = false;
            const auto s = currentSettings();
            controller_->unetProbe(unetView_->step(), s.steps, unetView_->prompt(), s.scheduler, unetView_->guidance(),
                                   s.seed);
        }
        break;
    case Embeddings:
        if (embeddingsStale_) {
            embeddingsStale_ = false;
            controller_->computeEmbeddings(prompt_->toPlainText(), embeddingsView_->comparePrompt());
        }
        break;
    default:
        break;
    }
}

void MainWindow::showDemoBanner(const QString& path) {
    const QString vocabulary = ModelPicker::demoVocabulary(path);
    const QString knows =
        vocabulary.isEmpty() ? QString() : "It knows the prompts " + vocabulary.toHtmlEscaped() + ". ";
    modelBanner_->show(Banner::Kind::Info,
                       "<b>This is SD Lens' demo model</b>, small and trained on a toy world: pictures of one "
                       "coloured shape on white. " + knows + "Try <i>" + QString(kDemoPrompt) +
                           "</i>. Every stage shows its real intermediate values. To see a real SD 1.x model "
                           "at work, open one: a diffusers folder such as <i>runwayml/stable-diffusion-v1-5</i> "
                           "(File ▸ Open model folder…), a single-file <i>.safetensors</i> checkpoint (File ▸ Open "
                           "model file…), one already downloaded (File ▸ Models on this computer…), or drop "
                           "either here.");
}

void MainWindow::showWarnings(const QStringList& warnings) {
    QStringList lines;
    for (const QString& w : warnings)
        lines << w.toHtmlEscaped();
    if (!lines.isEmpty())
        errorBanner_->show(Banner::Kind::Warning, "<b>Warning.</b> " + lines.join("<br>"));
}

void MainWindow::showError(const QString& title, const QString& message) {
    errorBanner_->show(Banner::Kind::Error,
                       QString("<b>%1.</b> %2").arg(title.toHtmlEscaped(), message.toHtmlEscaped()));
}

void MainWindow::updateMemory() {
    QFile statm("/proc/self/statm");
    if (!statm.open(QIODevice::ReadOnly))
        return;
    const QList<QByteArray> fields = statm.readAll().split(' ');
    if (fields.size() < 2)
        return;
    const double rss = fields[1].toDouble() * double(sysconf(_SC_PAGESIZE));
    statusMemory_->setText(QString("RSS %1 GiB").arg(rss / (1 << 30), 0, 'f', 2));
}

void MainWindow::saveImage() {
    if (lastRun_.image.isNull())
        return showError("Nothing to save yet", "Generate an image first.");
    const QString path = QFileDialog::getSaveFileName(this, "Save image", "sdlens.png", "PNG (*.png)");
    if (path.isEmpty())
        return;
    QImageWriter writer(path, "png");
    writer.setText("parameters", lastRun_.settings.a1111Parameters());
    if (!writer.write(lastRun_.image))
        showError("Could not save the image", path + ": " + writer.errorString());
    else
        statusBar()->showMessage("Saved " + path, 8000);
}

void MainWindow::saveRun() {
    if (lastRun_.steps.isEmpty())
        return showError("Nothing to save yet", "Generate an image first.");
    const QString path =
        QFileDialog::getSaveFileName(this, "Save the run", "run.safetensors", "SD Lens traces (*.safetensors)");
    if (!path.isEmpty())
        controller_->saveTrace(path, lastRun_);
}

void MainWindow::loadSettings() {
    if (!options_.persistSettings)
        return;
    QSettings s;
    restoreGeometry(s.value("geometry").toByteArray());
    restoreState(s.value("windowState").toByteArray());
    prompt_->setPlainText(s.value("prompt", defaultPrompt()).toString());
    negative_->setText(s.value("negativePrompt").toString());
    settingsPanel_->load(s);
    embeddingsView_->setComparePrompt(s.value("comparePrompt").toString());
    navigator_->setCurrentRow(s.value("stage", int(Generate)).toInt());
}

void MainWindow::saveSettings() {
    if (!options_.persistSettings)
        return;
    QSettings s;
    s.setValue("geometry", saveGeometry());
    s.setValue("windowState", saveState());
    s.setValue("prompt", prompt_->toPlainText());
    s.setValue("negativePrompt", negative_->text());
    settingsPanel_->save(s);
    s.setValue("comparePrompt", embeddingsView_->comparePrompt());
    s.setValue("stage", stack_->currentIndex());
}

void MainWindow::closeEvent(QCloseEvent* e) {
    saveSettings();
    controller_->cancel();  // the worker stops before its next U-Net call; ~MainWindow joins it
    e->accept();
}

void MainWindow::dragEnterEvent(QDragEnterEvent* e) {
    if (e->mimeData()->hasUrls() || e->mimeData()->hasImage())
        e->acceptProposedAction();
}

void MainWindow::dropEvent(QDropEvent* e) {
    const QMimeData* m = e->mimeData();
    e->acceptProposedAction();
    if (m->hasImage() && !m->hasUrls()) {
        showStage(Vae);
        return vaeView_->openImage(qvariant_cast<QImage>(m->imageData()), "dropped image");
    }
    if (!m->hasUrls())
        return;
    const QString path = m->urls().first().toLocalFile();
    const QFileInfo info(path);
    if (info.isDir())
        return openModel(path);
    if (path.endsWith(".safetensors", Qt::CaseInsensitive))
        return isTraceFile(path) ? openTrace(path) : openModel(path);
    QImageReader reader(path);
    reader.setAutoTransform(true);
    const QImage img = reader.read();
    if (img.isNull())
        return showError("Cannot open " + info.fileName(),
                         "Drop a diffusers model folder, a .safetensors model or run, or an image.");
    showStage(Vae);
    vaeView_->openImage(img, info.fileName());
}

} // namespace sdlui
