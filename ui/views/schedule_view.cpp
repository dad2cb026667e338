#include "ui/views/schedule_view.h"

#include "ui/worker/schedules.h"

#include <qcustomplot.h>

#include <QCheckBox>
#include <QFile>
#include <QFileDialog>
#include <QHBoxLayout>
#include <QLabel>
#include <QMessageBox>
#include <QPushButton>
#include <QTextStream>
#include <QVBoxLayout>

#include <exception>
#include <iterator>

namespace sdlui {

namespace {
const QColor kColors[] = {QColor(31, 119, 180), QColor(255, 127, 14), QColor(44, 160, 44),
                          QColor(214, 39, 40), QColor(148, 103, 189), QColor(140, 86, 75),
                          QColor(227, 119, 194)};

QColor colorFor(const QString& name) {
    const int i = std::max(0, int(schedulerNames().indexOf(name)));
    return kColors[i % std::size(kColors)];
}
} // namespace

ScheduleView::ScheduleView(QWidget* parent) : QWidget(parent) {
    auto* layout = new QVBoxLayout(this);
    auto* bar = new QHBoxLayout;
    bar->addWidget(new QLabel("Overlay:"));
    for (const QString& name : schedulerNames()) {
        auto* box = new QCheckBox(name);
        overlays_[name] = box;
        bar->addWidget(box);
        connect(box, &QCheckBox::toggled, this, &ScheduleView::rebuild);
    }
    bar->addStretch(1);
    auto* png = new QPushButton("Export PNG…");
    auto* csv = new QPushButton("Export CSV…");
    bar->addWidget(png);
    bar->addWidget(csv);
    layout->addLayout(bar);

    plot_ = new QCustomPlot;
    plot_->setMinimumSize(300, 240);
    plot_->xAxis->setLabel("Sampling step");
    plot_->yAxis->setLabel("sigma (noise scale)");
    plot_->yAxis2->setLabel("timestep");
    plot_->yAxis2->setVisible(true);
    plot_->legend->setVisible(true);
    plot_->legend->setFont(QFont(font().family(), 8));
    plot_->axisRect()->insetLayout()->setInsetAlignment(0, Qt::AlignTop | Qt::AlignRight);
    plot_->setInteractions(QCP::iRangeDrag | QCP::iRangeZoom);
    marker_ = new QCPItemStraightLine(plot_);
    marker_->setPen(QPen(QColor(200, 30, 30), 1.5, Qt::DashLine));
    layout->addWidget(plot_, 1);
    note_ = new QLabel;
    note_->setWordWrap(true);
    layout->addWidget(note_);

    connect(png, &QPushButton::clicked, this, [this] {
        const QString path = QFileDialog::getSaveFileName(this, "Export schedule plot", "schedule.png", "PNG (*.png)");
        if (!path.isEmpty() && !exportPng(path))
            QMessageBox::warning(this, "Export failed", "Could not write " + path);
    });
    connect(csv, &QPushButton::clicked, this, [this] {
        const QString path = QFileDialog::getSaveFileName(this, "Export schedule", "schedule.csv", "CSV (*.csv)");
        QString error;
        if (!path.isEmpty() && !exportCsv(path, &error))
            QMessageBox::warning(this, "Export failed", error);
    });
    rebuild();
}

void ScheduleView::setScheduler(const QString& scheduler, int steps, bool karras) {
    if (scheduler == scheduler_ && steps == steps_ && karras == karras_)
        return;
    scheduler_ = scheduler;
    steps_ = steps;
    karras_ = karras;
    runTimesteps_.clear();
    runSigmas_.clear();
    rebuild();
}

void ScheduleView::setRunSchedule(const QVector<double>& timesteps, const QVector<double>& sigmas) {
    runTimesteps_ = timesteps;
    runSigmas_ = sigmas;
    rebuild();
}

void ScheduleView::setCurrentStep(int step) {
    current_ = step;
    marker_->setVisible(step >= 0);
    marker_->point1->setCoords(step, 0);
    marker_->point2->setCoords(step, 1);
    plot_->replot(QCustomPlot::rpQueuedReplot);
}

void ScheduleView::rebuild() {
    plot_->clearGraphs();
    QStringList notes;
    double maxSigma = 1, maxT = 1000;
    auto addCurves = [&](const QString& name, const QVector<double>& t, QVector<double> sig, bool derived,
                         bool primary) {
        QVector<double> x(t.size());
        for (int i = 0; i < x.size(); ++i)
            x[i] = i;
        QPen pen(colorFor(name), primary ? 2.5 : 1.5);
        auto* gs = plot_->addGraph(plot_->xAxis, plot_->yAxis);
        gs->setName(name + " sigma" + (derived ? " (from ᾱ)" : ""));
        gs->setPen(pen);
        sig.resize(std::min(sig.size(), t.size()));
        gs->setData(x.mid(0, sig.size()), sig, true);
        auto* gt = plot_->addGraph(plot_->xAxis, plot_->yAxis2);
        gt->setName(name + " timestep");
        pen.setStyle(Qt::DotLine);
        gt->setPen(pen);
        gt->setData(x, t, true);
        for (double s : sig)
            maxSigma = std::max(maxSigma, s);
        for (double v : t)
            maxT = std::max(maxT, v);
    };
    try {
        if (!runTimesteps_.isEmpty()) {
            QVector<double> sig = runSigmas_;
            bool derived = false;
            if (sig.isEmpty()) {
                sig = computeSchedule(scheduler_, steps_, karras_).sigmas;
                derived = true;
            }
            addCurves(scheduler_, runTimesteps_, sig, derived, true);
            notes << "Solid: sigma, dotted: timestep, as this run used them.";
        } else {
            const Schedule s = computeSchedule(scheduler_, steps_, karras_);
            addCurves(scheduler_, s.timesteps, s.sigmas, s.sigmasDerived, true);
            notes << "Solid: sigma, dotted: timestep (SD 1.x's default scheduler configuration).";
        }
        for (auto it = overlays_.begin(); it != overlays_.end(); ++it) {
            if (!it.value()->isChecked() || it.key() == scheduler_)
                continue;
            const Schedule s = computeSchedule(it.key(), steps_, karras_);
            addCurves(it.key(), s.timesteps, s.sigmas, s.sigmasDerived, false);
        }
        notes << "PNDM, DDIM and LCM have no sigmas: their curve is √((1−ᾱₜ)/ᾱₜ) at their timesteps, the same noise "
                 "scale.";
    } catch (const std::exception& e) {
        notes << QString("<span style='color:#b3261e'>%1</span>").arg(QString::fromUtf8(e.what()));
    }
    plot_->xAxis->setRange(0, std::max(1, steps_));
    plot_->yAxis->setRange(0, maxSigma * 1.05);
    plot_->yAxis2->setRange(0, maxT * 1.05);
    note_->setText(notes.join(" "));
    setCurrentStep(current_);
    plot_->replot();
}

bool ScheduleView::exportPng(const QString& path) { return plot_->savePng(path, 900, 600); }

bool ScheduleView::exportCsv(const QString& path, QString* error) {
    QFile f(path);
    if (!f.open(QIODevice::WriteOnly | QIODevice::Truncate | QIODevice::Text)) {
        *error = "Could not write " + path + ": " + f.errorString();
        return false;
    }
    QTextStream out(&f);
    out << "scheduler,step,timestep,sigma\n";
    for (int g = 0; g + 1 < plot_->graphCount(); g += 2) {
        const QString name = plot_->graph(g)->name().section(' ', 0, 0);
        auto sig = plot_->graph(g)->data();
        auto ts = plot_->graph(g + 1)->data();
        for (int i = 0; i < ts->size(); ++i) {
            const double sigma = i < sig->size() ? (sig->constBegin() + i)->value : qQNaN();
            out << name << ',' << i << ',' << (ts->constBegin() + i)->value << ',' << sigma << '\n';
        }
    }
    return true;
}

} // namespace sdlui
