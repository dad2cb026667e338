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
#include <QHeaderView>
#include <QImageReader>
#include <QLabel>
#include <QListWidget>
#include <QMenu>
#include <QMimeData>
#include <QPushButton>
#include <QScrollBar>
#include <QSpinBox>
#include <QTabWidget>
#include <QTableWidget>
#include <QToolButton>
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
    tabs_ = new QTabWidget;
    layout->addWidget(tabs_, 1);
    auto* roundTrip = new QWidget;
    auto* page = new QVBoxLayout(roundTrip);
    page->setContentsMargins(0, 4, 0, 0);
    tabs_->addTab(roundTrip, "Round trip");
    tabs_->addTab(buildComparePage(), "Compare VAEs");

    info_ = new QLabel("Open, drop or paste an image: it goes through the VAE encoder to 4 latent channels at "
                       "1/8 the size and back through the decoder.");
    info_->setWordWrap(true);
    page->addWidget(info_);

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
    page->addLayout(grid, 1);

    metrics_ = new QLabel;
    metrics_->setWordWrap(true);
    metrics_->setTextInteractionFlags(Qt::TextSelectableByMouse);
    page->addWidget(metrics_);

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
    connect(amplify_, &QSpinBox::valueChanged, this, &VaeView::updateComparisonImages);
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

namespace {

enum TableColumn { VaeColumn, PsnrColumn, SsimColumn, MaxColumn, MeanColumn, LatentMeanColumn, LatentStdColumn,
                   SecondsColumn, TableColumns };

QString channelValues(const QVector<double>& v) {
    QStringList parts;
    for (double x : v)
        parts << QString::number(x, 'f', 3);
    return parts.isEmpty() ? QString("—") : parts.join("  ");
}

// Image names start sentences here ("the sample drawing", "dropped image").
QString capitalised(const QString& text) { return text.left(1).toUpper() + text.mid(1); }

QString psnrText(double psnr) { return std::isfinite(psnr) ? QString::number(psnr, 'f', 2) : QString("∞"); }

} // namespace

QWidget* VaeView::buildComparePage() {
    auto* page = new QWidget;
    auto* layout = new QVBoxLayout(page);
    layout->setContentsMargins(0, 4, 0, 0);
    auto* top = new QHBoxLayout;
    otherVaes_ = new QListWidget;
    otherVaes_->setToolTip("The VAEs compared with the model's own: .safetensors VAE files, diffusers VAE folders, "
                           "or other models (their VAE)");
    otherVaes_->setFixedHeight(otherVaes_->fontMetrics().lineSpacing() * 4 + 10);
    otherVaes_->setMinimumWidth(280);
    top->addWidget(otherVaes_, 1);
    auto* listButtons = new QVBoxLayout;
    addVae_ = new QToolButton;
    addVae_->setText("Add VAE");
    addVae_->setPopupMode(QToolButton::InstantPopup);
    addVae_->setMenu(new QMenu(addVae_));
    addVae_->setToolButtonStyle(Qt::ToolButtonTextOnly);
    removeVae_ = new QPushButton("Remove");
    listButtons->addWidget(addVae_);
    listButtons->addWidget(removeVae_);
    listButtons->addStretch(1);
    top->addLayout(listButtons);
    auto* actions = new QVBoxLayout;
    compare_ = new QPushButton("Compare on this image");
    compare_->setToolTip("Encode and decode the round trip's image with each VAE");
    decodeLast_ = new QPushButton("Decode last generation with each VAE");
    decodeLast_->setToolTip("Decode the last generation's final latents with each VAE; the model's VAE's image is "
                            "the reference");
    decodeLast_->setEnabled(false);
    actions->addWidget(compare_);
    actions->addWidget(decodeLast_);
    actions->addStretch(1);
    top->addLayout(actions);
    layout->addLayout(top);

    compareInfo_ = new QLabel("Add up to three VAEs to compare with the model's own, then compare them on the round "
                              "trip's image or on the last generation.");
    compareInfo_->setWordWrap(true);
    layout->addWidget(compareInfo_);
    compareGrid_ = new QGridLayout;
    compareGrid_->setSpacing(4);
    layout->addLayout(compareGrid_, 1);

    table_ = new QTableWidget(0, TableColumns);
    table_->setHorizontalHeaderLabels({"VAE", "PSNR dB", "SSIM", "max err", "mean err", "latent mean, ch 0–3",
                                       "latent std, ch 0–3", "s"});
    table_->horizontalHeaderItem(MaxColumn)->setToolTip("Largest difference from the reference, in 8-bit levels");
    table_->horizontalHeaderItem(MeanColumn)->setToolTip("Mean difference from the reference, in 8-bit levels");
    table_->horizontalHeaderItem(SecondsColumn)->setToolTip("Seconds for this VAE's encode and decode");
    table_->verticalHeader()->hide();
    table_->setEditTriggers(QAbstractItemView::NoEditTriggers);
    table_->horizontalHeader()->setSectionResizeMode(QHeaderView::ResizeToContents);
    table_->horizontalHeader()->setStretchLastSection(true);
    table_->setWordWrap(false);
    table_->setMaximumHeight(table_->horizontalHeader()->sizeHint().height() +
                             table_->verticalHeader()->defaultSectionSize() * (kMaxOtherVaes + 1) + 6);
    layout->addWidget(table_);
    warnings_ = new QLabel;
    warnings_->setWordWrap(true);
    warnings_->hide();
    layout->addWidget(warnings_);

    fillAddMenu();
    connect(addVae_->menu(), &QMenu::aboutToShow, this, &VaeView::fillAddMenu);
    connect(removeVae_, &QPushButton::clicked, this, [this] {
        delete otherVaes_->currentItem();
        setComparing(false);
    });
    connect(compare_, &QPushButton::clicked, this, &VaeView::requestComparison);
    connect(decodeLast_, &QPushButton::clicked, this, [this] {
        setComparing(true);
        emit decodeWithVaesRequested(comparedVaes());
    });
    setComparing(false);
    return page;
}

void VaeView::requestComparison() {
    if (result_.original.isNull()) {
        compareInfo_->setText("<span style='color:#b3261e'>Open an image first (Round trip tab).</span>");
        return;
    }
    setComparing(true);
    emit compareRequested(result_.original, comparedVaes());
}

QStringList VaeView::otherVaes() const {
    QStringList out;
    for (int i = 0; i < otherVaes_->count(); ++i)
        out << otherVaes_->item(i)->data(Qt::UserRole).toString();
    return out;
}

QStringList VaeView::comparedVaes() const { return QStringList{QString()} + otherVaes(); }

void VaeView::setOtherVaes(const QStringList& paths) {
    otherVaes_->clear();
    for (const QString& p : paths)
        addOtherVae(p);
}

void VaeView::addOtherVae(const QString& path) {
    if (path.isEmpty() || otherVaes().contains(path) || otherVaes_->count() >= kMaxOtherVaes)
        return;
    auto* item = new QListWidgetItem(vaeName(path), otherVaes_);
    item->setData(Qt::UserRole, path);
    item->setToolTip(path);
    setComparing(false);
}

void VaeView::setRecentVaes(const QStringList& paths) { recentVaes_ = paths; }

void VaeView::fillAddMenu() {
    QMenu* menu = addVae_->menu();
    menu->clear();
    for (const QString& path : recentVaes_) {
        QAction* a = menu->addAction(vaeName(path), this, [this, path] { addOtherVae(path); });
        a->setToolTip(path);
        a->setEnabled(!otherVaes().contains(path));
    }
    if (!recentVaes_.isEmpty())
        menu->addSeparator();
    menu->addAction("VAE file…", this, [this] {
        addOtherVae(QFileDialog::getOpenFileName(this, "Compare a VAE file", QString(),
                                                 "VAE or checkpoint (*.safetensors);;All files (*)"));
    });
    menu->addAction("VAE folder…", this, [this] {
        addOtherVae(QFileDialog::getExistingDirectory(this, "Compare a VAE folder (a diffusers VAE or model folder)"));
    });
}

void VaeView::setLastGenerationAvailable(bool available) {
    lastGeneration_ = available;
    setComparing(false);
}

// While the worker compares, a second request would only queue behind the first.
void VaeView::setComparing(bool comparing) {
    addVae_->setEnabled(!comparing && otherVaes_->count() < kMaxOtherVaes);
    removeVae_->setEnabled(!comparing && otherVaes_->count() > 0);
    compare_->setEnabled(!comparing);
    decodeLast_->setEnabled(!comparing && lastGeneration_);
    if (comparing)
        compareInfo_->setText(QString("Comparing %1 VAEs…").arg(otherVaes_->count() + 1));
}

void VaeView::comparisonFailed() {
    setComparing(false);
    compareInfo_->setText("<span style='color:#b3261e'>The comparison failed (see the message above).</span>");
}

void VaeView::showComparisonTab() { tabs_->setCurrentIndex(1); }

void VaeView::setComparison(const VaeComparison& c) {
    comparison_ = c;
    setComparing(false);
    showComparisonTab();
    const QImage& ref = c.reference;
    QString text = c.fromLatents
                       ? QString("The last generation's final latents decoded by each VAE (%1×%2); each is measured "
                                 "against the model's VAE's decode.").arg(ref.width()).arg(ref.height())
                       : QString("%1 (%2×%3) encoded and decoded by each VAE; each is measured against the original.")
                             .arg(name_.isEmpty() ? "The image" : capitalised(name_).toHtmlEscaped())
                             .arg(ref.width()).arg(ref.height());
    if (!c.adjustment.isEmpty())
        text += " <b>" + c.adjustment.toHtmlEscaped() + "</b>";
    compareInfo_->setText(text);

    qDeleteAll(compareImages_);
    compareImages_.clear();
    auto* reference = new ImageView;
    reference->setImage(ref);
    reference->setCaption(c.fromLatents ? "Reference: model's VAE" : "Original");
    compareGrid_->addWidget(reference, 0, 0);
    compareImages_ << reference;
    for (int i = 0; i < c.vaes.size(); ++i) {
        auto* image = new ImageView;
        image->setImage(c.vaes[i].image);
        image->setCaption(vaeName(c.vaes[i].path));
        image->setToolTip(c.vaes[i].path.isEmpty() ? "the model's own VAE" : c.vaes[i].path);
        auto* diff = new ImageView;
        compareGrid_->addWidget(image, 0, i + 1);
        compareGrid_->addWidget(diff, 1, i + 1);
        compareImages_ << image << diff;
    }
    for (int col = 0; col < compareGrid_->columnCount(); ++col)
        compareGrid_->setColumnStretch(col, col <= c.vaes.size() ? 1 : 0);
    updateComparisonImages();

    table_->setRowCount(c.vaes.size());
    QStringList warnings;
    for (int i = 0; i < c.vaes.size(); ++i) {
        const VaeOutcome& v = c.vaes[i];
        const bool reference = c.fromLatents && i == 0;
        const QStringList cells = {
            vaeName(v.path),
            reference ? QString("reference") : psnrText(v.psnr),
            reference ? QString("—") : QString::number(v.ssim, 'f', 4),
            reference ? QString("—") : QString::number(v.maxError, 'f', 0),
            reference ? QString("—") : QString::number(v.meanError * 255.0, 'f', 2),
            channelValues(v.channelMean),
            channelValues(v.channelStd),
            QString::number(v.seconds, 'f', 2)};
        for (int col = 0; col < TableColumns; ++col) {
            auto* item = new QTableWidgetItem(cells[col]);
            if (col != VaeColumn)
                item->setTextAlignment(Qt::AlignRight | Qt::AlignVCenter);
            table_->setItem(i, col, item);
        }
        const QString spelling = v.spelling.isEmpty() ? QString() : "\nkeys: " + v.spelling;
        table_->item(i, VaeColumn)->setToolTip((v.path.isEmpty() ? "the model's own VAE" : v.path) + spelling);
        for (const QString& w : v.warnings)
            warnings << vaeName(v.path).toHtmlEscaped() + ": " + w.toHtmlEscaped();
    }
    warnings_->setText("<b>Warnings.</b> " + warnings.join("<br>"));
    warnings_->setVisible(!warnings.isEmpty());
}

void VaeView::updateComparisonImages() {
    const int amp = amplify_->value();
    for (int i = 0; i < comparison_.vaes.size() && 2 * i + 2 < compareImages_.size(); ++i) {
        const VaeOutcome& v = comparison_.vaes[i];
        ImageView* diff = compareImages_[2 * i + 2];
        diff->setImage(v.difference.isEmpty() ? QImage() : heatImage(v.difference, float(amp)));
        diff->setCaption(QString("|difference| ×%1").arg(amp));
        diff->setToolTip(QString("Brightest: a difference of %1/255 or more").arg(255.0 / amp, 0, 'f', 1));
    }
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
