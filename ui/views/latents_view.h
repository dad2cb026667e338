#pragma once
// Stage 3: the four latent channels as greyscale images with their value ranges (article fig. 6),
// for an encoded image or for any step of the current run.
#include "ui/worker/results.h"

#include <QWidget>

class QCheckBox;
class QComboBox;
class QLabel;

namespace sdlui {

class ChannelStrip;
class ImageView;

class LatentsView : public QWidget {
    Q_OBJECT
public:
    explicit LatentsView(QWidget* parent = nullptr);
    void setEncodedImage(const QImage& original, const FloatTensor& latents);
    void setInitialNoise(const FloatTensor& latents);
    void setStep(const StepRecord& step);
    // "image", "noise", "step-latents", "step-x0"
    void showSource(const QString& source);

private:
    void refresh();

    QComboBox* source_;
    QCheckBox* shared_;
    QLabel* info_;
    ImageView* original_;
    ChannelStrip* strip_;
    QImage image_;
    FloatTensor encoded_, noise_;
    StepRecord step_;
};

} // namespace sdlui
