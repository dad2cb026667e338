#include "ui/views/lora_view.h"

#include <qcustomplot.h>

#include <QComboBox>
#include <QHBoxLayout>
#include <QHeaderView>
#include <QLabel>
#include <QSplitter>
#include <QTableWidget>
#include <QVBoxLayout>

#include <algorithm>

namespace sdlui {

namespace {
const QColor kColors[] = {QColor(31, 119, 180), QColor(255, 127, 14), QColor(44, 160, 44),
                          QColor(214, 39, 40), QColor(148, 103, 189), QColor(140, 86, 75)};
const QString kTextEncoder = QStringLiteral("text encoder");
const QString kOutside = QStringLiteral("U-Net, outside the blocks");
const QStringList kLevels = {"down 0", "down 1", "down 2", "down 3", "mid", "up 0", "up 1", "up 2", "up 3"};

QString groupOf(const LoraLayer& layer) {
    if (layer.network == "text_encoder")
        return kTextEncoder;
    return layer.level.isEmpty() ? kOutside : layer.level;
}

QTableWidgetItem* numberItem(double v) {
    auto* item = new QTableWidgetItem;
    // A number, not text: the column sorts by size.
    item->setData(Qt::DisplayRole, QString::number(v, 'g', 4).toDouble());
    item->setTextAlignment(Qt::AlignRight | Qt::AlignVCenter);
    return item;
}
} // namespace

LoraView::LoraView(QWidget* parent) : QWidget(parent) {
    auto* layout = new QVBoxLayout(this);
    status_ = new QLabel;
    status_->setWordWrap(true);
    status_->setTextFormat(Qt::RichText);
    layout->addWidget(status_);
    auto* bar = new QHBoxLayout;
    bar->addWidget(new QLabel("Per level:"));
    measure_ = new QComboBox;
    measure_->addItems({"mean ‖ΔW‖ / ‖W‖ of its layers", "largest ‖ΔW‖ / ‖W‖", "layers changed"});
    measure_->setToolTip("‖ΔW‖ / ‖W‖: how large the LoRA's change to a weight is next to the weight itself "
                         "(Frobenius norms, at the strength applied)");
    measure_->setSizeAdjustPolicy(QComboBox::AdjustToContents);
    bar->addWidget(measure_);
    bar->addStretch(1);
    layout->addLayout(bar);

    auto* split = new QSplitter(Qt::Vertical);
    plot_ = new QCustomPlot;
    plot_->setMinimumHeight(220);
    plot_->xAxis->setLabel("where it acts: the text encoder, then the U-Net from its finest level (down 0) to "
                           "the coarsest (mid) and back up");
    plot_->xAxis->grid()->setVisible(false);  // categories: a grid line at "text encoder" would read as a value
    plot_->legend->setFont(QFont(font().family(), 8));
    plot_->axisRect()->insetLayout()->setInsetAlignment(0, Qt::AlignTop | Qt::AlignRight);
    barsGroup_ = new QCPBarsGroup(plot_);  // the LoRAs' bars side by side within a level
    split->addWidget(plot_);
    table_ = new QTableWidget(0, 5);
    table_->setHorizontalHeaderLabels({"LoRA", "Level", "Module", "‖ΔW‖ / ‖W‖", "Network"});
    table_->verticalHeader()->hide();
    table_->setEditTriggers(QAbstractItemView::NoEditTriggers);
    table_->setSelectionBehavior(QAbstractItemView::SelectRows);
    table_->setAlternatingRowColors(true);
    table_->setWordWrap(false);
    table_->horizontalHeader()->setSectionResizeMode(2, QHeaderView::Stretch);
    split->addWidget(table_);
    split->setStretchFactor(0, 3);
    split->setStretchFactor(1, 2);
    layout->addWidget(split, 1);

    connect(measure_, &QComboBox::currentIndexChanged, this, [this] { refresh(); });
    setLoras({});
}

void LoraView::setMeasure(Measure measure) { measure_->setCurrentIndex(int(measure)); }

void LoraView::setLoras(const QVector<LoraSummary>& loras) {
    loras_ = loras;
    groups_ = QStringList{kTextEncoder} + kLevels;
    bool outside = false;
    for (const LoraSummary& l : loras_)
        for (const LoraLayer& layer : l.layers)
            outside = outside || groupOf(layer) == kOutside;
    if (outside)
        groups_ << kOutside;

    table_->setSortingEnabled(false);
    table_->setRowCount(0);
    for (const LoraSummary& l : loras_)
        for (const LoraLayer& layer : l.layers) {
            const int row = table_->rowCount();
            table_->insertRow(row);
            table_->setItem(row, 0, new QTableWidgetItem(l.name));
            table_->setItem(row, 1, new QTableWidgetItem(groupOf(layer)));
            table_->setItem(row, 2, new QTableWidgetItem(layer.module));
            table_->setItem(row, 3, numberItem(layer.relativeChange));
            table_->setItem(row, 4, new QTableWidgetItem(layer.network));
        }
    table_->setSortingEnabled(true);
    table_->sortByColumn(3, Qt::DescendingOrder);
    table_->resizeColumnToContents(0);
    table_->resizeColumnToContents(1);

    if (loras_.isEmpty()) {
        status_->setText("No LoRA is applied. Add one in the settings (LoRAs): this view then shows every layer it "
                         "changes and how much, per resolution level of the U-Net.");
    } else {
        QStringList lines;
        for (const LoraSummary& l : loras_) {
            int text = 0;
            for (const LoraLayer& layer : l.layers)
                text += layer.network == "text_encoder" ? 1 : 0;
            lines << QString("<b>%1</b> at strength %2 — %3, rank %4, alpha %5: %6 layers (%7 in the text encoder, "
                             "%8 in the U-Net)")
                         .arg(l.name.toHtmlEscaped()).arg(l.strength).arg(l.format.toHtmlEscaped()).arg(l.rank)
                         .arg(l.alpha).arg(l.layers.size()).arg(text).arg(l.layers.size() - text);
        }
        status_->setText(lines.join("<br>"));
    }
    refresh();
}

QVector<double> LoraView::perGroup(const LoraSummary& lora, Measure measure) const {
    QVector<double> value(groups_.size(), 0.0);
    QVector<int> count(groups_.size(), 0);
    for (const LoraLayer& layer : lora.layers) {
        const int g = int(groups_.indexOf(groupOf(layer)));
        if (g < 0)
            continue;
        ++count[g];
        if (measure == Measure::Largest)
            value[g] = std::max(value[g], layer.relativeChange);
        else
            value[g] += layer.relativeChange;
    }
    for (int g = 0; g < groups_.size(); ++g) {
        if (measure == Measure::Layers)
            value[g] = count[g];
        else if (measure == Measure::Mean && count[g] > 0)
            value[g] /= count[g];
    }
    return value;
}

void LoraView::refresh() {
    const auto measure = Measure(std::max(0, measure_->currentIndex()));
    plot_->clearPlottables();
    auto ticker = QSharedPointer<QCPAxisTickerText>::create();
    for (int g = 0; g < groups_.size(); ++g)
        ticker->addTick(g, groups_[g] == kOutside ? "outside\nthe blocks" : groups_[g]);
    plot_->xAxis->setTicker(ticker);
    plot_->xAxis->setRange(-0.6, groups_.size() - 0.4);
    plot_->yAxis->setLabel(measure == Measure::Layers ? "layers changed"
                           : measure == Measure::Largest ? "largest ‖ΔW‖ / ‖W‖"
                                                         : "mean ‖ΔW‖ / ‖W‖");
    const double width = 0.8 / std::max(1, int(loras_.size()));
    double top = 0;
    QVector<double> x;
    for (int g = 0; g < groups_.size(); ++g)
        x << g;
    for (int i = 0; i < loras_.size(); ++i) {
        const QVector<double> y = perGroup(loras_[i], measure);
        auto* bars = new QCPBars(plot_->xAxis, plot_->yAxis);
        bars->setName(QString("%1 (strength %2)").arg(loras_[i].name).arg(loras_[i].strength));
        bars->setWidth(width);
        bars->setPen(Qt::NoPen);
        bars->setBrush(kColors[i % 6]);
        bars->setData(x, y, true);
        bars->setBarsGroup(barsGroup_);
        for (double v : y)
            top = std::max(top, v);
    }
    // One LoRA is named above the chart; several need the legend, and headroom so it covers no bar.
    plot_->legend->setVisible(loras_.size() > 1);
    plot_->yAxis->setRange(0, top > 0 ? top * (loras_.size() > 1 ? 1.1 + 0.1 * loras_.size() : 1.1) : 1);
    plot_->replot(QCustomPlot::rpQueuedReplot);
}

} // namespace sdlui
