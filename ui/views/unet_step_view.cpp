#include "ui/views/unet_step_view.h"

#include "ui/views/common.h"

#include <QDoubleSpinBox>
#include <QGridLayout>
#include <QHBoxLayout>
#include <QLabel>
#include <QLineEdit>
#include <QPushButton>
#include <QSpinBox>
#include <QVBoxLayout>

namespace sdlui {

UNetStepView::UNetStepView(QWidget* parent) : QWidget(parent) {
    auto* layout = new QVBoxLayout(this);
    auto* bar = new QHBoxLayout;
    bar->addWidget(new QLabel("Step:"));
    step_ = new QSpinBox;
    step_->setRange(0, 49);
    step_->setValue(40);  // the article's choice
    bar->addWidget(step_);
    bar->addWidget(new QLabel("Prompt:"));
    prompt_ = new QLineEdit;
    prompt_->setPlaceholderText("empty: unconditional, as in the article");
    prompt_->setClearButtonEnabled(true);
    bar->addWidget(prompt_, 1);
    bar->addWidget(new QLabel("Guidance:"));
    guidance_ = new QDoubleSpinBox;
    guidance_->setRange(1, 30);
    guidance_->setSingleStep(0.5);
    guidance_->setValue(1);
    guidance_->setToolTip("1: the prompt's prediction alone; above 1, classifier-free guidance against the empty "
                          "prompt");
    bar->addWidget(guidance_);
    auto* run = new QPushButton("Run U-Net");
    bar->addWidget(run);
    layout->addLayout(bar);
    info_ = new QLabel("Uses the latents of the image in the VAE round trip.");
    info_->setWordWrap(true);
    layout->addWidget(info_);
    auto* grid = new QGridLayout;
    noisy_ = new ImageView;
    naive_ = new ImageView;
    x0_ = new ImageView;
    grid->addWidget(noisy_, 0, 0);
    grid->addWidget(naive_, 0, 1);
    grid->addWidget(x0_, 0, 2);
    layout->addLayout(grid, 3);
    noise_ = new ChannelStrip("Predicted noise, four channels");
    layout->addWidget(noise_, 2);
    connect(run, &QPushButton::clicked, this, [this] { emit runRequested(step(), prompt(), guidance()); });
    connect(prompt_, &QLineEdit::returnPressed, this, [this] { emit runRequested(step(), prompt(), guidance()); });
}

// The article probes step 40 of 50; keeping that fraction keeps the probe comparable across step counts.
void UNetStepView::setStepCount(int steps) {
    step_->setMaximum(std::max(0, steps - 1));
    step_->setValue(steps * 4 / 5);
}
int UNetStepView::step() const { return step_->value(); }
QString UNetStepView::prompt() const { return prompt_->text(); }
double UNetStepView::guidance() const { return guidance_->value(); }

void UNetStepView::setMessage(const QString& text) { info_->setText(text); }

void UNetStepView::setResult(const ProbeResult& r) {
    noisy_->setImage(r.noisyDecoded);
    noisy_->setCaption(QString("noised input at step %1 (t = %2), decoded").arg(r.step).arg(r.timestep, 0, 'f', 0));
    naive_->setImage(r.naiveDecoded);
    naive_->setCaption("decode(noisy − predicted noise)\nthe article's fig. 12");
    x0_->setImage(r.predX0Decoded);
    x0_->setCaption("decode(scheduler's predicted x0)\nthe correct estimate");
    noise_->setLatents(r.noisePred);
    info_->setText(QString("Prompt “%1”, step %2 of %3, timestep %4, sigma %5. The article subtracts the "
                           "predicted noise once; the schedule added it scaled by sigma, so the scheduler's "
                           "estimate removes it at that scale (x0 = noisy − σ·ε̂ for sigma schedulers) and comes "
                           "out cleaner.")
                       .arg(r.prompt.toHtmlEscaped()).arg(r.step).arg(r.steps).arg(r.timestep, 0, 'f', 1)
                       .arg(r.sigma, 0, 'f', 3));
}

} // namespace sdlui
