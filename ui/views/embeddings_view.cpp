#include "ui/views/embeddings_view.h"

#include <qcustomplot.h>

#include <QComboBox>
#include <QHBoxLayout>
#include <QLabel>
#include <QLineEdit>
#include <QPushButton>
#include <QVBoxLayout>

#include <cmath>

namespace sdlui {

namespace {
QString shownToken(const QString& t) { return t.endsWith("</w>") ? t.left(t.size() - 4) + "·" : t; }

// Positions 0..76 along x, shared by all three plots so they line up.
void setupPositionAxis(QCustomPlot* p) {
    p->xAxis->setRange(-0.5, 76.5);
    p->xAxis->setLabel("position");
}
} // namespace

EmbeddingsView::EmbeddingsView(QWidget* parent) : QWidget(parent) {
    auto* layout = new QVBoxLayout(this);
    auto* bar = new QHBoxLayout;
    bar->addWidget(new QLabel("Layer:"));
    layer_ = new QComboBox;
    layer_->setSizeAdjustPolicy(QComboBox::AdjustToContents);
    bar->addWidget(layer_);
    bar->addSpacing(12);
    bar->addWidget(new QLabel("Compare with:"));
    compare_ = new QLineEdit;
    compare_->setPlaceholderText("a second prompt (optional)");
    compare_->setClearButtonEnabled(true);
    bar->addWidget(compare_, 1);
    auto* compute = new QPushButton("Compute");
    bar->addWidget(compute);
    layout->addLayout(bar);
    title_ = new QLabel("Press Compute to run the text encoder on the prompt.");
    title_->setWordWrap(true);
    layout->addWidget(title_);

    heat_ = new QCustomPlot;
    heat_->setMinimumHeight(220);
    map_ = new QCPColorMap(heat_->xAxis, heat_->yAxis);
    scale_ = new QCPColorScale(heat_);
    heat_->plotLayout()->addElement(0, 1, scale_);
    scale_->setType(QCPAxis::atRight);
    scale_->axis()->setLabel("value");
    map_->setColorScale(scale_);
    map_->setGradient(QCPColorGradient::gpPolar);
    map_->setInterpolate(false);
    heat_->yAxis->setLabel("dimension");
    heat_->yAxis->setRangeReversed(true);
    setupPositionAxis(heat_);
    auto* group = new QCPMarginGroup(heat_);
    heat_->axisRect()->setMarginGroup(QCP::msLeft | QCP::msRight, group);
    scale_->setMarginGroup(QCP::msTop | QCP::msBottom, group);
    layout->addWidget(heat_, 3);

    readout_ = new QLabel("Hover over the heat map: position, token, dimension, value.");
    layout->addWidget(readout_);

    auto makeBars = [&](QCustomPlot*& plot, QCPBars*& bars, const QString& label, QColor color) {
        plot = new QCustomPlot;
        plot->setMinimumHeight(110);
        bars = new QCPBars(plot->xAxis, plot->yAxis);
        bars->setWidth(0.8);
        bars->setPen(Qt::NoPen);
        bars->setBrush(color);
        plot->yAxis->setLabel(label);
        setupPositionAxis(plot);
        // A second column matching the colour scale's width keeps positions aligned with the heat map.
        auto* spacer = new QCPLayoutElement(plot);
        plot->plotLayout()->addElement(0, 1, spacer);
        plot->plotLayout()->setColumnStretchFactor(1, 0.001);
        spacer->setMinimumSize(70, 0);
        layout->addWidget(plot, 1);
    };
    makeBars(norms_, normBars_, "L2 norm", QColor(31, 119, 180));
    makeBars(cosine_, cosineBars_, "cosine", QColor(214, 39, 40));
    cosine_->yAxis->setRange(-1, 1.05);
    cosine_->hide();

    connect(layer_, &QComboBox::currentIndexChanged, this, &EmbeddingsView::showLayer);
    connect(compute, &QPushButton::clicked, this, [this] { emit computeRequested(prompt_, compare_->text()); });
    connect(compare_, &QLineEdit::returnPressed, this, [this] { emit computeRequested(prompt_, compare_->text()); });
    connect(heat_, &QCustomPlot::mouseMove, this, &EmbeddingsView::hover);
}

void EmbeddingsView::setPrompt(const QString& prompt) { prompt_ = prompt; }

QString EmbeddingsView::comparePrompt() const { return compare_->text(); }

void EmbeddingsView::setComparePrompt(const QString& prompt) { compare_->setText(prompt); }

void EmbeddingsView::setResult(const EmbeddingResult& result) {
    const int keep = layer_->currentIndex();
    result_ = result;
    const QSignalBlocker block(layer_);
    layer_->clear();
    const int n = result.layers.size();
    for (int i = 0; i < n; ++i) {
        QString name = i == 0 ? "0: token + position embeddings" : QString("%1: after layer %1").arg(i);
        if (i == n - 1)
            name += " + final norm (what the U-Net sees)";
        layer_->addItem(name);
    }
    layer_->setCurrentIndex(keep >= 0 && keep < n ? keep : n - 1);
    showLayer();
}

void EmbeddingsView::selectLayer(int layer) { layer_->setCurrentIndex(layer); }

void EmbeddingsView::showLayer() {
    const int li = layer_->currentIndex();
    if (li < 0 || li >= result_.layers.size())
        return;
    const FloatTensor& e = result_.layers[li];  // [77, D]
    const int positions = e.dim(0), dims = e.dim(1);
    map_->data()->setSize(positions, dims);
    map_->data()->setRange(QCPRange(0, positions - 1), QCPRange(0, dims - 1));
    float absMax = 0;
    QVector<double> keys, norms;
    for (int p = 0; p < positions; ++p) {
        double sq = 0;
        for (int d = 0; d < dims; ++d) {
            const float v = e.values[p * dims + d];
            map_->data()->setCell(p, d, v);
            absMax = std::max(absMax, std::abs(v));
            sq += double(v) * v;
        }
        keys << p;
        norms << std::sqrt(sq);
    }
    // A symmetric range keeps zero white in the diverging gradient. Layer 0 and the last layers
    // have a few outlier dimensions; clipping at the 99th percentile of |value| keeps the rest visible.
    QVector<float> mags;
    mags.reserve(e.values.size());
    for (float v : e.values)
        mags << std::abs(v);
    std::sort(mags.begin(), mags.end());
    const float clip = mags.isEmpty() ? 1.f : std::max(1e-6f, mags[int(0.99 * (mags.size() - 1))]);
    scale_->setDataRange(QCPRange(-clip, clip));
    heat_->yAxis->setRange(-0.5, dims - 0.5);
    heat_->replot();
    normBars_->setData(keys, norms, true);
    norms_->yAxis->rescale();
    norms_->yAxis->setRangeLower(0);
    norms_->replot();

    QString title = QString("“%1” — %2 positions × %3 dimensions; colours clipped at ±%4 (|max| %5).")
                        .arg(result_.prompt.toHtmlEscaped()).arg(positions).arg(dims).arg(clip, 0, 'g', 3)
                        .arg(absMax, 0, 'g', 3);
    if (!result_.comparePrompt.isEmpty() && li < result_.compareLayers.size()) {
        const FloatTensor& f = result_.compareLayers[li];
        QVector<double> cos;
        for (int p = 0; p < positions; ++p) {
            double ab = 0, aa = 0, bb = 0;
            for (int d = 0; d < dims; ++d) {
                const double a = e.values[p * dims + d], b = f.values[p * dims + d];
                ab += a * b;
                aa += a * a;
                bb += b * b;
            }
            cos << (aa > 0 && bb > 0 ? ab / std::sqrt(aa * bb) : 0.0);
        }
        cosineBars_->setData(keys, cos, true);
        cosine_->yAxis->setLabel("cosine vs 2nd");
        cosine_->show();
        cosine_->replot();
        title += QString(" Red bars: cosine similarity per position with “%1”.")
                     .arg(result_.comparePrompt.toHtmlEscaped());
    } else {
        cosine_->hide();
    }
    title_->setText(title);
}

QString EmbeddingsView::readout(int position, int dim) const {
    const int li = layer_->currentIndex();
    if (li < 0 || li >= result_.layers.size())
        return QString();
    const FloatTensor& e = result_.layers[li];
    if (position < 0 || position >= e.dim(0) || dim < 0 || dim >= e.dim(1))
        return QString();
    const QString token = shownToken(result_.tokens.value(position));
    const bool pad = result_.mask.value(position, 1) == 0;
    return QString("position %1 (%2%3) · dim %4 · value %5")
        .arg(position).arg(token.toHtmlEscaped()).arg(pad ? ", padding" : "").arg(dim)
        .arg(e.values[position * e.dim(1) + dim], 0, 'f', 4);
}

void EmbeddingsView::hover(QMouseEvent* e) {
    const int p = int(std::lround(heat_->xAxis->pixelToCoord(e->pos().x())));
    const int d = int(std::lround(heat_->yAxis->pixelToCoord(e->pos().y())));
    const QString text = readout(p, d);
    if (!text.isEmpty())
        readout_->setText(text);
}

} // namespace sdlui
