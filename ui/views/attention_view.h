#pragma once
// Stage 9: where each prompt token looks. The U-Net's cross-attention probabilities for a token,
// averaged over heads and layers ("What the DAAM"), drawn as a heat map over the image — for one
// step or summed over all of them, for every layer or one resolution level — and a thumbnail per
// token so the whole prompt can be read at a glance. A run made with LoRAs can be run again without
// them: the same token's map then shows with and without the LoRAs side by side.
#include "ui/worker/results.h"

#include <QWidget>

#include <utility>

class QCheckBox;
class QComboBox;
class QLabel;
class QListWidget;
class QPushButton;
class QSlider;
class QTableWidget;

namespace sdlui {

class ImageView;

class AttentionView : public QWidget {
    Q_OBJECT
public:
    explicit AttentionView(QWidget* parent = nullptr);

    void beginRun(const GenerateSettings& settings);
    void setTokens(const QStringList& tokens);  // the 77 token strings of the conditional prompt
    void addStep(const StepRecord& step);
    void finishRun(const RunRecord& run);        // also a trace opened from a file
    // The same settings without LoRAs (PipelineWorker::generateWithoutLoras), shown beside the run:
    // asked for by the "Without LoRAs" button or requestWithoutLoras().
    void requestWithoutLoras();
    void setBaselineProgress(int step, int steps);
    void setBaseline(const RunRecord& baseline);
    // The run without LoRAs ended without a result (cancelled, failed); nothing happens if none was asked.
    void baselineStopped(const QString& why);

    void selectToken(int position);
    void setCurrentStep(int step);
    void setAllSteps(bool all);
    void setLevel(int level);  // 0: every layer; 1..: the resolution levels, finest first
    int selectedToken() const { return token_; }
    // [h, w] of the selected token under the current step/level choice, each value the attention
    // probability (the average over the chosen steps); empty when there is nothing to show.
    FloatTensor currentMap() const { return map(steps_, token_); }
    FloatTensor baselineMap() const { return map(baseline_.steps, token_); }
    QImage overlay() const { return overlay(run_, steps_, currentMap().range()); }
    bool hasBaseline() const { return !baseline_.steps.isEmpty(); }

signals:
    void withoutLorasRequested(const sdlui::GenerateSettings& settings);

private:
    FloatTensor map(const QVector<StepRecord>& steps, int token) const;
    // The map stretched from lo to hi over the run's image (or the step's preview).
    QImage overlay(const RunRecord& run, const QVector<StepRecord>& steps, std::pair<float, float> range) const;
    void showImages();
    int visibleTokens() const;
    void rebuildTokens();
    void refresh();

    RunRecord run_;
    QVector<StepRecord> steps_;
    RunRecord baseline_;
    bool baselinePending_ = false;
    QStringList tokens_;
    int token_ = 1;

    QLabel* status_;
    QTableWidget* table_;
    QCheckBox* padding_;
    QSlider* step_;
    QLabel* stepLabel_;
    QCheckBox* allSteps_;
    QComboBox* level_;
    QSlider* opacity_;
    QPushButton* withoutLoras_;
    ImageView* image_;
    ImageView* baselineImage_;
    QListWidget* thumbs_;
};

} // namespace sdlui
