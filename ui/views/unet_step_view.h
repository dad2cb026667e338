#pragma once
// Stage 6: one U-Net call (article fig. 11-12). The image's latents noised to a chosen step, the
// noise the U-Net predicts for them, "noisy − predicted noise" decoded as the article does, and the
// scheduler's correct x0 estimate beside it.
#include "ui/worker/results.h"

#include <QWidget>

class QDoubleSpinBox;
class QLabel;
class QLineEdit;
class QSpinBox;

namespace sdlui {

class ChannelStrip;
class ImageView;

class UNetStepView : public QWidget {
    Q_OBJECT
public:
    explicit UNetStepView(QWidget* parent = nullptr);
    void setResult(const ProbeResult& result);
    void setMessage(const QString& text);
    void setStepCount(int steps);
    int step() const;
    QString prompt() const;
    double guidance() const;

signals:
    void runRequested(int step, const QString& prompt, double guidance);

private:
    QSpinBox* step_;
    QLineEdit* prompt_;
    QDoubleSpinBox* guidance_;
    QLabel* info_;
    ImageView* noisy_;
    ImageView* naive_;
    ImageView* x0_;
    ChannelStrip* noise_;
};

} // namespace sdlui
