#include "ui/views/latents_view.h"

#include "ui/views/common.h"

#include <QCheckBox>
#include <QComboBox>
#include <QHBoxLayout>
#include <QLabel>
#include <QVBoxLayout>

namespace sdlui {

LatentsView::LatentsView(QWidget* parent) : QWidget(parent) {
    auto* layout = new QVBoxLayout(this);
    auto* bar = new QHBoxLayout;
    bar->addWidget(new QLabel("Show:"));
    source_ = new QComboBox;
    source_->addItem("Encoded image (VAE round trip)", "image");
    source_->addItem("Initial noise of the run", "noise");
    source_->addItem("Noisy latents at the current step", "step-latents");
    source_->addItem("Predicted x0 at the current step", "step-x0");
    bar->addWidget(source_);
    shared_ = new QCheckBox("One grey scale for all channels");
    bar->addWidget(shared_);
    bar->addStretch(1);
    layout->addLayout(bar);
    info_ = new QLabel;
    info_->setWordWrap(true);
    layout->addWidget(info_);
    auto* row = new QHBoxLayout;
    original_ = new ImageView;
    row->addWidget(original_, 1);
    strip_ = new ChannelStrip;
    row->addWidget(strip_, 4);
    layout->addLayout(row, 1);
    auto* legend = new QLabel("Each channel is scaled from its own minimum (black) to its maximum (white) unless "
                              "one scale is chosen; the numbers are the channel's value range.");
    legend->setWordWrap(true);
    layout->addWidget(legend);
    connect(source_, &QComboBox::currentIndexChanged, this, &LatentsView::refresh);
    connect(shared_, &QCheckBox::toggled, this, &LatentsView::refresh);
    refresh();
}

void LatentsView::setEncodedImage(const QImage& original, const FloatTensor& latents) {
    image_ = original;
    encoded_ = latents;
    refresh();
}

void LatentsView::setInitialNoise(const FloatTensor& latents) {
    noise_ = latents;
    refresh();
}

void LatentsView::setStep(const StepRecord& step) {
    step_ = step;
    refresh();
}

void LatentsView::showSource(const QString& source) { source_->setCurrentIndex(source_->findData(source)); }

void LatentsView::refresh() {
    const QString src = source_->currentData().toString();
    FloatTensor t;
    QString what;
    QImage left;
    if (src == "image") {
        t = encoded_;
        left = image_;
        what = encoded_.isEmpty() ? "No image encoded yet: open one in the VAE round trip."
                                  : QString("The image's latents (mean × scaling factor). %1×%2×3 pixel values "
                                            "→ 4×%3×%4 latent values: %5× fewer.")
                                        .arg(image_.width()).arg(image_.height()).arg(t.dim(1)).arg(t.dim(2))
                                        .arg(double(image_.width()) * image_.height() * 3 /
                                                 std::max(1, t.dim(0) * t.dim(1) * t.dim(2)), 0, 'g', 3);
    } else if (src == "noise") {
        t = noise_;
        what = noise_.isEmpty() ? "No run yet: press Generate." : "The seeded Gaussian noise the run starts from.";
    } else {
        t = src == "step-latents" ? step_.latents : step_.predX0;
        left = src == "step-x0" ? step_.preview : QImage();
        what = step_.total == 0 ? "No run yet: press Generate."
                                : QString("Step %1 of %2 (timestep %3, sigma %4).")
                                      .arg(step_.index + 1).arg(step_.total).arg(step_.timestep, 0, 'f', 1)
                                      .arg(step_.sigma, 0, 'f', 3);
    }
    info_->setText(what);
    original_->setImage(left);
    original_->setCaption(left.isNull() ? QString() : (src == "image" ? "input" : "latent preview"));
    original_->setPixelated(src != "image");
    strip_->setLatents(t, shared_->isChecked());
}

} // namespace sdlui
