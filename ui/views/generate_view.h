#pragma once
// Stage 7: a live preview while the image forms, then a timeline over every stored step: the noisy
// latent, the guided noise prediction, the predicted x0 (decoded by the VAE on request, a latent
// preview until then), its four channels, and where the step sits on the schedule.
#include "ui/worker/results.h"

#include <QHash>
#include <QSet>
#include <QWidget>

class QCustomPlot;
class QCPItemStraightLine;
class QLabel;
class QPushButton;
class QSlider;
class QTimer;
class QToolButton;

namespace sdlui {

class ChannelStrip;
class ImageView;

class GenerateView : public QWidget {
    Q_OBJECT
public:
    explicit GenerateView(QWidget* parent = nullptr);

    void beginRun(const GenerateSettings& settings);
    void setSchedule(const QVector<double>& timesteps, const QVector<double>& sigmas);
    void addStep(const StepRecord& step);
    void finishRun(const RunRecord& run);  // also how a trace file is shown
    void runStopped(const QString& why);
    void setDecoded(int step, const QImage& image);
    void setDecodingAvailable(bool available);  // false with no model (a trace opened on its own)

    const RunRecord& run() const { return run_; }
    int currentStep() const;
    void setCurrentStep(int step);
    // Writes x0_NNN.png per step (decoded where available, else the latent preview) and final.png.
    bool exportSequence(const QString& dir, QString* error) const;

signals:
    void decodeRequested(int step, const sdlui::FloatTensor& predX0);
    void currentStepChanged(const sdlui::StepRecord& step);

private:
    void showStep(int step);
    void requestDecode();

    RunRecord run_;
    bool running_ = false;
    bool decodingAvailable_ = true;
    QHash<int, QImage> decoded_;
    QSet<int> pending_;

    QLabel* status_;
    ImageView* main_;
    ImageView* noisy_;
    ChannelStrip* latentStrip_;
    ChannelStrip* noiseStrip_;
    ChannelStrip* x0Strip_;
    QSlider* slider_;
    QToolButton* play_;
    QPushButton* export_;
    QLabel* stepLabel_;
    QTimer* playTimer_;
    QTimer* decodeTimer_;
    QCustomPlot* plot_;
    QCPItemStraightLine* marker_;
};

} // namespace sdlui
