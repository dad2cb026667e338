#include "ui/views/compare_view.h"

#include "ui/views/common.h"
#include "ui/worker/schedules.h"

#include <QComboBox>
#include <QFileInfo>
#include <QGridLayout>
#include <QHBoxLayout>
#include <QLabel>
#include <QLineEdit>
#include <QPushButton>
#include <QSlider>
#include <QSpinBox>
#include <QStackedWidget>
#include <QVBoxLayout>
#include <qcustomplot.h>

#include <algorithm>
#include <cmath>
#include <iterator>

namespace sdlui {

namespace {
const char* kVary[] = {"prompt", "guidance", "scheduler", "steps", "lora"};
constexpr int kVaryCount = int(std::size(kVary));

QStringList commaSeparated(const QString& text) {
    QStringList out;
    for (const auto& part : text.split(',', Qt::SkipEmptyParts))
        out << part.trimmed();
    return out;
}

// The step of a run of `steps` steps shown at `percent` of the schedule.
int stepAt(int percent, int steps) {
    return std::clamp(int(std::ceil(percent / 100.0 * steps)) - 1, 0, std::max(0, steps - 1));
}

// Mean over RGB of |a - b| per pixel, in [0, 1].
FloatTensor imageDifference(const QImage& a, const QImage& b) {
    FloatTensor out;
    if (a.isNull() || a.size() != b.size())
        return out;
    const QImage x = a.convertToFormat(QImage::Format_RGB32), y = b.convertToFormat(QImage::Format_RGB32);
    out.shape = {x.height(), x.width()};
    out.values.resize(x.width() * x.height());
    for (int r = 0; r < x.height(); ++r) {
        const auto* p = reinterpret_cast<const QRgb*>(x.constScanLine(r));
        const auto* q = reinterpret_cast<const QRgb*>(y.constScanLine(r));
        for (int c = 0; c < x.width(); ++c)
            out.values[r * x.width() + c] = (std::abs(qRed(p[c]) - qRed(q[c])) + std::abs(qGreen(p[c]) - qGreen(q[c])) +
                                             std::abs(qBlue(p[c]) - qBlue(q[c]))) / (3 * 255.f);
    }
    return out;
}
} // namespace

CompareView::CompareView(QWidget* parent) : QWidget(parent) {
    auto* layout = new QVBoxLayout(this);
    auto* bar = new QHBoxLayout;
    bar->addWidget(new QLabel("Vary:"));
    vary_ = new QComboBox;
    vary_->addItems({"Prompt", "Guidance scale", "Scheduler", "Steps", "LoRA strength"});
    bar->addWidget(vary_);
    editors_ = new QStackedWidget;
    secondPrompt_ = new QLineEdit;
    secondPrompt_->setPlaceholderText("Second prompt (the first is the prompt above)");
    guidances_ = new QLineEdit("1, 3, 7.5, 15");
    guidances_->setToolTip("Guidance scales, comma-separated: one run each (1 = no classifier-free guidance)");
    secondScheduler_ = new QComboBox;
    secondScheduler_->addItems(schedulerNames());
    secondScheduler_->setCurrentText("euler_a");
    secondScheduler_->setToolTip("Compared with the scheduler chosen in the settings");
    secondSteps_ = new QSpinBox;
    secondSteps_->setRange(1, 200);
    secondSteps_->setValue(20);
    secondSteps_->setPrefix("vs ");
    secondSteps_->setSuffix(" steps");
    secondSteps_->setToolTip("Compared with the step count in the settings");
    loraStrengths_ = new QLineEdit("0, 0.5, 1");
    loraStrengths_->setToolTip("Strengths of the one LoRA enabled in the settings, comma-separated: one run each "
                               "(0 = the model without it). The latent difference plot shows at which steps it acts.");
    for (QWidget* w : std::initializer_list<QWidget*>{secondPrompt_, guidances_, secondScheduler_, secondSteps_,
                                                      loraStrengths_})
        editors_->addWidget(w);
    bar->addWidget(editors_, 1);
    run_ = new QPushButton("Compare");
    run_->setToolTip("Runs every variant with the seed, size and other settings of the settings panel");
    cancel_ = new QPushButton("Cancel");
    cancel_->setEnabled(false);
    bar->addWidget(run_);
    bar->addWidget(cancel_);
    layout->addLayout(bar);
    status_ = new QLabel("Same seed, one setting changed: the runs side by side at every step, and how far apart "
                         "their latents are.");
    status_->setWordWrap(true);
    layout->addWidget(status_);

    auto* pos = new QHBoxLayout;
    pos->addWidget(new QLabel("Progress:"));
    position_ = new QSlider(Qt::Horizontal);
    position_->setRange(0, 100);
    position_->setValue(100);
    position_->setToolTip("How far through the schedule (runs with different step counts are matched by progress)");
    pos->addWidget(position_, 1);
    positionLabel_ = new QLabel("final");
    positionLabel_->setMinimumWidth(60);
    pos->addWidget(positionLabel_);
    pos->addWidget(new QLabel("Difference of:"));
    diffOf_ = new QComboBox;
    diffOf_->setToolTip("Which run the difference image compares with the first");
    diffOf_->setSizeAdjustPolicy(QComboBox::AdjustToContents);
    pos->addWidget(diffOf_);
    layout->addLayout(pos);

    grid_ = new QGridLayout;
    // Parented at once: it only joins the grid once a comparison has two runs.
    difference_ = new ImageView(this);
    difference_->hide();
    layout->addLayout(grid_, 3);

    plot_ = new QCustomPlot;
    plot_->setMinimumHeight(160);
    plot_->xAxis->setLabel("Progress through the schedule (%)");
    plot_->yAxis->setLabel("mean |Δ latents| vs the first run");
    plot_->xAxis->setRange(0, 100);
    plot_->legend->setVisible(true);
    plot_->legend->setFont(QFont(font().family(), 8));
    marker_ = new QCPItemStraightLine(plot_);
    marker_->setPen(QPen(QColor(200, 30, 30), 1.5, Qt::DashLine));
    layout->addWidget(plot_, 2);

    connect(vary_, &QComboBox::currentIndexChanged, editors_, &QStackedWidget::setCurrentIndex);
    connect(run_, &QPushButton::clicked, this, &CompareView::compareRequested);
    connect(secondPrompt_, &QLineEdit::returnPressed, this, &CompareView::compareRequested);
    connect(guidances_, &QLineEdit::returnPressed, this, &CompareView::compareRequested);
    connect(loraStrengths_, &QLineEdit::returnPressed, this, &CompareView::compareRequested);
    connect(cancel_, &QPushButton::clicked, this, &CompareView::cancelRequested);
    connect(position_, &QSlider::valueChanged, this, &CompareView::showAt);
    connect(diffOf_, &QComboBox::currentIndexChanged, this, [this] { showAt(position_->value()); });
}

QString CompareView::vary() const { return kVary[std::max(0, vary_->currentIndex())]; }

void CompareView::setVary(const QString& vary) {
    for (int i = 0; i < kVaryCount; ++i)
        if (vary == kVary[i])
            vary_->setCurrentIndex(i);
}

QStringList CompareView::values(const GenerateSettings& base) const {
    const QString v = vary();
    if (v == "prompt")
        return {base.prompt, secondPrompt_->text()};
    if (v == "scheduler")
        return {base.scheduler, secondScheduler_->currentText()};
    if (v == "steps")
        return {QString::number(base.steps), QString::number(secondSteps_->value())};
    if (v == "lora")
        return commaSeparated(loraStrengths_->text());
    return commaSeparated(guidances_->text());
}

void CompareView::setSecondPrompt(const QString& prompt) { secondPrompt_->setText(prompt); }

void CompareView::setGuidanceValues(const QString& text) { guidances_->setText(text); }

void CompareView::setLoraStrengths(const QString& text) { loraStrengths_->setText(text); }

void CompareView::setRunning(bool running) {
    run_->setEnabled(!running);
    cancel_->setEnabled(running);
    if (running)
        status_->setText("Starting…");
}

void CompareView::setProgress(int run, int runs, int step, int steps) {
    status_->setText(QString("Run %1 of %2 · step %3 / %4").arg(run + 1).arg(runs).arg(step).arg(steps));
}

void CompareView::setResult(const ComparisonRecord& record) {
    record_ = record;
    for (auto* v : images_) {
        grid_->removeWidget(v);
        delete v;
    }
    images_.clear();
    grid_->removeWidget(difference_);
    const int n = int(record.runs.size());
    const int cells = n + (n > 1 ? 1 : 0);  // the runs, then their difference
    const int columns = cells > 5 ? 3 : cells;
    for (int i = 0; i < n; ++i) {
        auto* v = new ImageView;
        images_ << v;
        grid_->addWidget(v, i / columns, i % columns);
    }
    if (n > 1)
        grid_->addWidget(difference_, n / columns, n % columns);
    difference_->setVisible(n > 1);
    {
        const QSignalBlocker block(diffOf_);
        diffOf_->clear();
        for (int i = 1; i < n; ++i)
            diffOf_->addItem(record.runs[i].label);
        diffOf_->setCurrentIndex(diffOf_->count() - 1);
    }
    plot_->clearGraphs();
    double top = 0;
    static const QColor colors[] = {QColor(31, 119, 180), QColor(255, 127, 14), QColor(44, 160, 44),
                                    QColor(214, 39, 40), QColor(148, 103, 189), QColor(140, 86, 75)};
    for (int i = 1; i < n; ++i) {
        const auto& r = record.runs[i];
        QVector<double> x, y;
        for (int k = 0; k < r.latentDifference.size(); ++k) {
            x << 100.0 * (k + 1) / r.latentDifference.size();
            y << r.latentDifference[k];
            top = std::max(top, r.latentDifference[k]);
        }
        auto* g = plot_->addGraph();
        g->setName(r.label + " − " + record.runs[0].label);
        g->setPen(QPen(colors[(i - 1) % 6], 2));
        g->setData(x, y, true);
    }
    plot_->yAxis->setRange(0, top > 0 ? top * 1.1 : 1);
    QStringList summary;
    for (const auto& r : record.runs)
        summary << QString("%1: %2 s").arg(r.label.toHtmlEscaped()).arg(r.seconds, 0, 'f', 1);
    const GenerateSettings first = record.runs.value(0).settings;
    QString what;
    if (record.vary == "lora" && !first.loras.isEmpty())
        what = QString("LoRA %1 at each strength. ").arg(QFileInfo(first.loras.first().path).completeBaseName().toHtmlEscaped());
    status_->setText(QString("Same seed (%1), %2 × %3. ").arg(first.seed).arg(first.width).arg(first.height) + what +
                     summary.join(" · "));
    run_->setEnabled(true);
    cancel_->setEnabled(false);
    showAt(position_->value());
}

void CompareView::setProgressPosition(int percent) { position_->setValue(percent); }

void CompareView::showAt(int percent) {
    positionLabel_->setText(percent >= 100 ? QString("final") : QString("%1 %").arg(percent));
    marker_->point1->setCoords(percent, 0);
    marker_->point2->setCoords(percent, 1);
    plot_->replot(QCustomPlot::rpQueuedReplot);
    const bool final = percent >= 100;
    for (int i = 0; i < images_.size() && i < record_.runs.size(); ++i) {
        const auto& r = record_.runs[i];
        const int k = stepAt(percent, int(r.previews.size()));
        images_[i]->setPixelated(!final);
        images_[i]->setImage(final ? r.image : r.previews.value(k));
        QString caption = r.label;
        caption += final ? (i > 0 ? QString("\nmean |Δ image| %1").arg(r.imageDifference, 0, 'f', 3) : QString("\nfinal"))
                         : QString("\nstep %1 / %2 (x0 preview)").arg(k + 1).arg(r.previews.size());
        images_[i]->setCaption(caption);
    }
    const int d = diffOf_->currentIndex() + 1;
    if (d < 1 || d >= record_.runs.size())
        return;
    const auto& other = record_.runs[d];
    FloatTensor diff;
    QString what;
    if (final) {
        diff = imageDifference(other.image, record_.runs[0].image);
        what = "Δ image";
    } else {
        diff = other.stepDifference.value(stepAt(percent, int(other.stepDifference.size())));
        what = "Δ latents";
    }
    const float hi = diff.range().second;
    difference_->setPixelated(!final);
    difference_->setImage(heatImage(diff, hi > 0 ? 1.f / hi : 0.f));
    difference_->setCaption(QString("%1 %2 − %3\nbrightest %4").arg(what, other.label, record_.runs[0].label)
                                .arg(hi, 0, 'g', 3));
}

} // namespace sdlui
