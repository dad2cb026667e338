#include "ui/views/progression_view.h"

#include "ui/views/common.h"

#include <QGridLayout>
#include <QHBoxLayout>
#include <QLabel>
#include <QPushButton>
#include <QVBoxLayout>

namespace sdlui {

ProgressionView::ProgressionView(QWidget* parent) : QWidget(parent) {
    auto* layout = new QVBoxLayout(this);
    auto* bar = new QHBoxLayout;
    info_ = new QLabel("Noises the latents of the image in the VAE round trip with the scheduler's add_noise at "
                       "six steps of the chosen schedule and decodes each.");
    info_->setWordWrap(true);
    bar->addWidget(info_, 1);
    auto* run = new QPushButton("Run");
    bar->addWidget(run);
    layout->addLayout(bar);
    auto* grid = new QGridLayout;
    for (int i = 0; i < 6; ++i) {
        views_[i] = new ImageView;
        grid->addWidget(views_[i], i / 3, i % 3);
    }
    layout->addLayout(grid, 1);
    connect(run, &QPushButton::clicked, this, &ProgressionView::runRequested);
}

void ProgressionView::setMessage(const QString& text) { info_->setText(text); }

void ProgressionView::setResult(const ProgressionResult& r) {
    for (int i = 0; i < 6; ++i) {
        const bool have = i < r.images.size();
        views_[i]->setImage(have ? r.images[i] : QImage());
        views_[i]->setCaption(have ? QString("Step %1 · timestep %2").arg(r.atSteps[i]).arg(r.timesteps[i], 0, 'f', 0)
                                   : QString());
    }
    info_->setText(QString("%1, %2 steps: the image's latents after add_noise at the timestep of each step, "
                           "decoded by the VAE. Step 0 is the noisiest; the last step of the schedule is almost "
                           "clean. Same noise (the seed) throughout.")
                       .arg(r.scheduler).arg(r.steps));
}

} // namespace sdlui
