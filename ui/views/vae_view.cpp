#include "ui/views/vae_view.h"

#include "ui/views/common.h"

#include <qcustomplot.h>

#include <QApplication>
#include <QClipboard>
#include <QDragEnterEvent>
#include <QFileDialog>
#include <QFileInfo>
#include <QGraphicsPixmapItem>
#include <QGridLayout>
#include <QImageReader>
#include <QLabel>
#include <QMimeData>
#include <QPushButton>
#include <QScrollBar>
#include <QSpinBox>
#include <QVBoxLayout>
#include <QWheelEvent>

#include <cmath>

namespace sdlui {

ZoomView::ZoomView(QWidget* parent) : QGraphicsView(parent) {
    setScene(new QGraphicsScene(this));
    item_ = scene()->addPixmap(QPixmap());
    item_->setTransformationMode(Qt::FastTransformation);  // zoomed-in pixels stay pixels
    setDragMode(QGraphicsView::ScrollHandDrag);
    setTransformationAnchor(QGraphicsView::AnchorUnderMouse);
    setBackgroundBrush(palette().window());
    setMinimumSize(160, 160);
}

void ZoomView::setImage(const QImage& image) {
    item_->setPixmap(QPixmap::fromImage(image));
    scene()->setSceneRect(item_->boundingRect());
}

void ZoomView::wheelEvent(QWheelEvent* e) {
    emit zoomBy(std::pow(1.0015, e->angleDelta().y()));
    e->accept();
}

VaeView::VaeView(QWidget* parent) : QWidget(parent) {
    setAcceptDrops(true);
    auto* layout = new QVBoxLayout(this);
    auto* bar = new QHBoxLayout;
    auto* open = new QPushButton("Open image…");
    auto* paste = new QPushButton("Paste");
    auto* fit = new QPushButton("Fit");
    auto* actual = new QPushButton("1:1");
    bar->addWidget(open);
    bar->addWidget(paste);
    bar->addSpacing(16);
    bar->addWidget(fit);
    bar->addWidget(actual);
    bar->addSpacing(16);
    bar->addWidget(new QLabel("Amplify difference ×"));
    amplify_ = new QSpinBox;
    amplify_->setRange(1, 100);
    amplify_->setValue(10);
    bar->addWidget(amplify_);
    bar->addStretch(1);
    layout->addLayout(bar);

    info_ = new QLabel("Open, drop or paste an image: it goes through the VAE encoder to 4 latent channels at "
                       "1/8 the size and back through the decoder.");
    info_->setWordWrap(true);
    layout->addWidget(info_);

    auto* grid = new QGridLayout;
    const char* titles[] = {"Original", "Reconstruction (encode → decode)", "Amplified |difference|"};
    for (int i = 0; i < 3; ++i) {
        grid->addWidget(new QLabel(titles[i]), 0, i);
        views_[i] = new ZoomView;
        grid->addWidget(views_[i], 1, i);
        grid->setColumnStretch(i, 1);
    }
    scalePlot_ = new QCustomPlot;
    scalePlot_->plotLayout()->clear();
    scale_ = new QCPColorScale(scalePlot_);
    scalePlot_->plotLayout()->addElement(0, 0, scale_);
    scale_->setType(QCPAxis::atRight);
    scale_->axis()->setLabel("|difference| (8-bit levels)");
    QCPColorGradient gradient;
    gradient.clearColorStops();
    for (int i = 0; i <= 8; ++i)
        gradient.setColorStopAt(i / 8.0, heatColor(i / 8.0));
    scale_->setGradient(gradient);
    scalePlot_->setFixedWidth(90);
    grid->addWidget(scalePlot_, 1, 3);
    layout->addLayout(grid, 1);

    metrics_ = new QLabel;
    metrics_->setWordWrap(true);
    metrics_->setTextInteractionFlags(Qt::TextSelectableByMouse);
    layout->addWidget(metrics_);

    for (int i = 0; i < 3; ++i) {
        connect(views_[i], &ZoomView::zoomBy, this, &VaeView::zoomAll);
        for (QScrollBar* bar : {views_[i]->horizontalScrollBar(), views_[i]->verticalScrollBar()}) {
            const bool horizontal = bar->orientation() == Qt::Horizontal;
            connect(bar, &QScrollBar::valueChanged, this, [this, i, horizontal](int v) {
                if (syncing_)
                    return;
                syncing_ = true;
                for (int j = 0; j < 3; ++j)
                    if (j != i)
                        (horizontal ? views_[j]->horizontalScrollBar() : views_[j]->verticalScrollBar())->setValue(v);
                syncing_ = false;
            });
        }
    }
    connect(amplify_, &QSpinBox::valueChanged, this, &VaeView::updateDifference);
    connect(fit, &QPushButton::clicked, this, &VaeView::fitAll);
    connect(actual, &QPushButton::clicked, this, [this] {
        for (auto* v : views_)
            v->setTransform(QTransform());
    });
    connect(open, &QPushButton::clicked, this, &VaeView::chooseImage);
    connect(paste, &QPushButton::clicked, this, [this] {
        const QImage img = QApplication::clipboard()->image();
        if (img.isNull())
            info_->setText("<span style='color:#b3261e'>The clipboard holds no image.</span>");
        else
            openImage(img, "pasted image");
    });
}

void VaeView::chooseImage() {
    const QString path = QFileDialog::getOpenFileName(this, "Open an image", QString(),
                                                      "Images (*.png *.jpg *.jpeg *.webp *.bmp *.gif)");
    if (path.isEmpty())
        return;
    QImageReader reader(path);
    reader.setAutoTransform(true);
    const QImage img = reader.read();
    if (img.isNull())
        info_->setText(QString("<span style='color:#b3261e'>Could not read %1: %2</span>")
                           .arg(path.toHtmlEscaped(), reader.errorString().toHtmlEscaped()));
    else
        openImage(img, QFileInfo(path).fileName());
}

void VaeView::openImage(const QImage& image, const QString& name) {
    name_ = name;
    info_->setText(QString("Encoding and decoding %1 (%2×%3)…").arg(name.toHtmlEscaped()).arg(image.width())
                       .arg(image.height()));
    emit roundTripRequested(image, name);
}

void VaeView::setResult(const RoundTripResult& r) {
    result_ = r;
    views_[0]->setImage(r.original);
    views_[1]->setImage(r.reconstruction);
    QString text = QString("%1: %2×%3 pixels → latents 4×%4×%5.")
                       .arg(name_.isEmpty() ? "Image" : name_.toHtmlEscaped()).arg(r.original.width())
                       .arg(r.original.height()).arg(r.latents.dim(1)).arg(r.latents.dim(2));
    if (!r.adjustment.isEmpty())
        text += " <b>" + r.adjustment.toHtmlEscaped() + "</b>";
    info_->setText(text);
    metrics_->setText(QString("<b>PSNR</b> %1 dB &nbsp; <b>SSIM</b> %2 &nbsp; <b>max error</b> %3 / 255 &nbsp; "
                              "<b>compression</b> %4× (3×%5×%6 values → 4×%7×%8)")
                          .arg(r.psnr, 0, 'f', 2).arg(r.ssim, 0, 'f', 4).arg(r.maxError, 0, 'f', 0)
                          .arg(r.compression, 0, 'f', 0).arg(r.original.height()).arg(r.original.width())
                          .arg(r.latents.dim(1)).arg(r.latents.dim(2)));
    updateDifference();
    fitAll();
}

void VaeView::updateDifference() {
    if (result_.difference.isEmpty())
        return;
    const int amp = amplify_->value();
    views_[2]->setImage(heatImage(result_.difference, float(amp)));
    scale_->setDataRange(QCPRange(0, 255.0 / amp));
    scalePlot_->replot();
}

void VaeView::zoomAll(double factor) {
    for (auto* v : views_)
        v->scale(factor, factor);
}

void VaeView::fitAll() {
    for (auto* v : views_)
        v->fitInView(v->sceneRect(), Qt::KeepAspectRatio);
}

void VaeView::dragEnterEvent(QDragEnterEvent* e) {
    if (e->mimeData()->hasImage() || e->mimeData()->hasUrls())
        e->acceptProposedAction();
}

void VaeView::dropEvent(QDropEvent* e) {
    const QMimeData* m = e->mimeData();
    if (m->hasImage()) {
        openImage(qvariant_cast<QImage>(m->imageData()), "dropped image");
    } else if (m->hasUrls()) {
        const QString path = m->urls().first().toLocalFile();
        QImageReader reader(path);
        reader.setAutoTransform(true);
        const QImage img = reader.read();
        if (img.isNull())
            info_->setText(QString("<span style='color:#b3261e'>%1 is not an image Qt can read: %2</span>")
                               .arg(path.toHtmlEscaped(), reader.errorString().toHtmlEscaped()));
        else
            openImage(img, QFileInfo(path).fileName());
    }
    e->acceptProposedAction();
}

} // namespace sdlui
