#pragma once
// Stage 5: an image's latents noised as the scheduler would at steps 0, 10, ..., 50 and decoded
// (article fig. 10).
#include "ui/worker/results.h"

#include <QWidget>

class QGridLayout;
class QLabel;

namespace sdlui {

class ImageView;

class ProgressionView : public QWidget {
    Q_OBJECT
public:
    explicit ProgressionView(QWidget* parent = nullptr);
    void setResult(const ProgressionResult& result);
    void setMessage(const QString& text);

signals:
    void runRequested();

private:
    QLabel* info_;
    ImageView* views_[6];
};

} // namespace sdlui
