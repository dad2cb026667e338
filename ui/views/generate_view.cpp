#include "ui/views/generate_view.h"

#include "ui/views/common.h"

#include <qcustomplot.h>

#include <QDir>
#include <QFileDialog>
#include <QGridLayout>
#include <QLabel>
#include <QMessageBox>
#include <QPushButton>
#include <QSlider>
#include <QTimer>
#include <QToolButton>
#include <QVBoxLayout>

namespace sdlui {

GenerateView::GenerateView(QWidget* parent) : QWidget(parent) {
    auto* layout = new QVBoxLayout(this);
    status_ = new QLabel("Type a prompt and press Generate (Ctrl+Enter).");
    status_->setWordWrap(true);
    layout->addWidget(status_);

    auto* grid = new QGridLayout;
    main_ = new ImageView;
    main_->setMinimumSize(256, 256);
    grid->addWidget(main_, 0, 0, 3, 1);
    noisy_ = new ImageView;
    noisy_->setPixelated(true);
    grid->addWidget(noisy_, 0, 1);
    plot_ = new QCustomPlot;
    plot_->setMinimumHeight(120);
    plot_->xAxis->setLabel("step");
    plot_->yAxis->setLabel("sigma");
    plot_->addGraph();
    plot_->graph(0)->setPen(QPen(QColor(31, 119, 180), 2));
    marker_ = new QCPItemStraightLine(plot_);
    marker_->setPen(QPen(QColor(200, 30, 30), 1.5, Qt::DashLine));
    marker_->setVisible(false);
    grid->addWidget(plot_, 1, 1, 2, 1);
    grid->setColumnStretch(0, 3);
    grid->setColumnStretch(1, 2);
    layout->addLayout(grid, 3);

    latentStrip_ = new ChannelStrip("Noisy latents after this step", 2);
    noiseStrip_ = new ChannelStrip("Guided noise prediction", 2);
    x0Strip_ = new ChannelStrip("Predicted x0 (clean latents)", 2);
    auto* strips = new QHBoxLayout;
    strips->addWidget(latentStrip_);
    strips->addWidget(noiseStrip_);
    strips->addWidget(x0Strip_);
    layout->addLayout(strips, 2);

    auto* timeline = new QHBoxLayout;
    play_ = new QToolButton;
    play_->setText("▶");
    play_->setToolTip("Play through the steps");
    play_->setCheckable(true);
    timeline->addWidget(play_);
    slider_ = new QSlider(Qt::Horizontal);
    slider_->setRange(0, 0);
    timeline->addWidget(slider_, 1);
    stepLabel_ = new QLabel;
    stepLabel_->setMinimumWidth(260);
    timeline->addWidget(stepLabel_);
    export_ = new QPushButton("Export sequence…");
    timeline->addWidget(export_);
    layout->addLayout(timeline);

    playTimer_ = new QTimer(this);
    playTimer_->setInterval(150);
    decodeTimer_ = new QTimer(this);
    decodeTimer_->setSingleShot(true);
    decodeTimer_->setInterval(150);  // a scrub settles before the VAE is asked
    connect(decodeTimer_, &QTimer::timeout, this, &GenerateView::requestDecode);
    connect(slider_, &QSlider::valueChanged, this, &GenerateView::showStep);
    connect(play_, &QToolButton::toggled, this, [this](bool on) {
        play_->setText(on ? "❚❚" : "▶");
        if (on && slider_->value() == slider_->maximum())
            slider_->setValue(0);
        on ? playTimer_->start() : playTimer_->stop();
        if (!on)
            decodeTimer_->start();
    });
    connect(playTimer_, &QTimer::timeout, this, [this] {
        if (slider_->value() >= slider_->maximum())
            play_->setChecked(false);
        else
            slider_->setValue(slider_->value() + 1);
    });
    connect(export_, &QPushButton::clicked, this, [this] {
        const QString dir = QFileDialog::getExistingDirectory(this, "Export the step sequence to");
        QString error;
        if (!dir.isEmpty() && !exportSequence(dir, &error))
            QMessageBox::warning(this, "Export failed", error);
    });
    slider_->setEnabled(false);
    play_->setEnabled(false);
    export_->setEnabled(false);
}

void GenerateView::beginRun(const GenerateSettings& settings) {
    play_->setChecked(false);
    run_ = RunRecord();
    run_.settings = settings;
    running_ = true;
    decoded_.clear();
    pending_.clear();
    slider_->setEnabled(false);
    play_->setEnabled(false);
    export_->setEnabled(false);
    main_->setCaption("live preview (latent approximation of predicted x0)");
    status_->setText(QString("Generating “%1” — %2 steps of %3, guidance %4, seed %5, %6×%7.")
                         .arg(settings.prompt.toHtmlEscaped()).arg(settings.steps).arg(settings.scheduler)
                         .arg(settings.guidance).arg(settings.seed).arg(settings.width).arg(settings.height));
}

void GenerateView::setSchedule(const QVector<double>& timesteps, const QVector<double>& sigmas) {
    run_.timesteps = timesteps;
    run_.sigmas = sigmas;
    QVector<double> x, y;
    const bool hasSigmas = !sigmas.isEmpty();
    const QVector<double>& values = hasSigmas ? sigmas : timesteps;
    for (int i = 0; i < std::min(values.size(), timesteps.size()); ++i) {
        x << i;
        y << values[i];
    }
    plot_->yAxis->setLabel(hasSigmas ? "sigma" : "timestep");
    plot_->graph(0)->setData(x, y, true);
    plot_->rescaleAxes();
    plot_->replot();
}

void GenerateView::addStep(const StepRecord& step) {
    run_.steps.append(step);
    slider_->setRange(0, run_.steps.size() - 1);
    const QSignalBlocker block(slider_);
    slider_->setValue(step.index);
    showStep(run_.steps.size() - 1);
}

void GenerateView::finishRun(const RunRecord& run) {
    running_ = false;
    run_ = run;
    decoded_.clear();
    pending_.clear();
    setSchedule(run.timesteps, run.sigmas);
    const int n = run_.steps.size();
    slider_->setRange(0, std::max(0, n - 1));
    slider_->setEnabled(n > 0);
    play_->setEnabled(n > 0);
    export_->setEnabled(n > 0);
    // The last step's x0 is what the VAE turned into the final image.
    if (n > 0 && !run.image.isNull())
        decoded_[n - 1] = run.image;
    status_->setText(run.fromTrace
                         ? QString("Opened a saved run: “%1”, %2 steps. Drag the timeline to step through it.")
                               .arg(run.settings.prompt.toHtmlEscaped()).arg(n)
                         : QString("Done in %1 s (%2 it/s). Drag the timeline or press play to step through all "
                                   "%3 steps.")
                               .arg(run.seconds, 0, 'f', 1)
                               .arg(run.seconds > 0 ? n / run.seconds : 0.0, 0, 'f', 2).arg(n));
    const QSignalBlocker block(slider_);
    slider_->setValue(std::max(0, n - 1));
    showStep(std::max(0, n - 1));
}

void GenerateView::runStopped(const QString& why) {
    running_ = false;
    const int n = run_.steps.size();
    slider_->setEnabled(n > 0);
    play_->setEnabled(n > 0);
    export_->setEnabled(n > 0);
    status_->setText(why + QString(" %1 step%2 kept: step through them below.").arg(n).arg(n == 1 ? "" : "s"));
}

void GenerateView::setDecoded(int step, const QImage& image) {
    pending_.remove(step);
    decoded_[step] = image;
    if (step == slider_->value())
        showStep(step);
}

void GenerateView::setDecodingAvailable(bool available) { decodingAvailable_ = available; }

int GenerateView::currentStep() const { return run_.steps.isEmpty() ? -1 : slider_->value(); }

void GenerateView::setCurrentStep(int step) { slider_->setValue(step); }

void GenerateView::showStep(int i) {
    if (i < 0 || i >= run_.steps.size())
        return;
    const StepRecord& s = run_.steps[i];
    stepLabel_->setText(QString("step %1 / %2 · t = %3 · σ = %4")
                            .arg(i + 1).arg(s.total).arg(s.timestep, 0, 'f', 1).arg(s.sigma, 0, 'f', 3));
    const bool haveDecoded = decoded_.contains(i);
    main_->setImage(haveDecoded ? decoded_[i] : s.preview);
    main_->setPixelated(!haveDecoded);
    main_->setCaption(haveDecoded ? (i == run_.steps.size() - 1 && !running_ ? "final image (VAE decode)"
                                                                             : "predicted x0, decoded by the VAE")
                                  : (running_ ? "live preview (latent approximation of predicted x0)"
                                              : "latent preview of predicted x0 (decoding…)"));
    noisy_->setCaption("noisy latents (latent preview)");
    latentStrip_->setLatents(s.latents);
    noiseStrip_->setLatents(s.noisePred);
    x0Strip_->setLatents(s.predX0);
    marker_->setVisible(true);
    marker_->point1->setCoords(i, 0);
    marker_->point2->setCoords(i, 1);
    plot_->replot(QCustomPlot::rpQueuedReplot);
    // The noisy latents have no preview of their own; the first three channels stand in as RGB.
    if (s.latents.dim(0) == 4) {
        const int h = s.latents.dim(1), w = s.latents.dim(2);
        QImage img(w, h, QImage::Format_RGB888);
        const auto r = s.latents.range();
        const float span = r.second > r.first ? r.second - r.first : 1.f;
        for (int y = 0; y < h; ++y)
            for (int x = 0; x < w; ++x) {
                int c[3];
                for (int k = 0; k < 3; ++k)
                    c[k] = int(255.f * (s.latents.values[(k * h + y) * w + x] - r.first) / span);
                img.setPixel(x, y, qRgb(c[0], c[1], c[2]));
            }
        noisy_->setImage(img);
        noisy_->setCaption("noisy latents, channels 0–2 as RGB");
    }
    emit currentStepChanged(s);
    if (!running_ && !haveDecoded && !play_->isChecked())
        decodeTimer_->start();
}

void GenerateView::requestDecode() {
    const int i = slider_->value();
    if (!decodingAvailable_ || running_ || i < 0 || i >= run_.steps.size() || decoded_.contains(i) ||
        pending_.contains(i) || run_.steps[i].predX0.isEmpty())
        return;
    pending_.insert(i);
    emit decodeRequested(i, run_.steps[i].predX0);
}

bool GenerateView::exportSequence(const QString& dir, QString* error) const {
    if (run_.steps.isEmpty()) {
        *error = "There are no steps to export yet.";
        return false;
    }
    QDir d(dir);
    if (!d.exists() && !d.mkpath(".")) {
        *error = "Could not create " + dir;
        return false;
    }
    const QSize size(run_.settings.width, run_.settings.height);
    for (int i = 0; i < run_.steps.size(); ++i) {
        QImage img = decoded_.value(i, run_.steps[i].preview);
        if (img.isNull())
            continue;
        if (img.size() != size && size.isValid())
            img = img.scaled(size, Qt::IgnoreAspectRatio, Qt::SmoothTransformation);
        const QString path = d.filePath(QString("x0_%1.png").arg(i + 1, 3, 10, QChar('0')));
        if (!img.save(path)) {
            *error = "Could not write " + path;
            return false;
        }
    }
    if (!run_.image.isNull() && !run_.image.save(d.filePath("final.png"))) {
        *error = "Could not write " + d.filePath("final.png");
        return false;
    }
    return true;
}

} // namespace sdlui
