#pragma once
// Stage 9: where each prompt token looks. The U-Net's cross-attention probabilities for a token,
// averaged over heads and layers ("What the DAAM"), drawn as a heat map over the image — for one
// step or summed over all of them, for every layer or one resolution level — and a thumbnail per
// token so the whole prompt can be read at a glance.
#include "ui/worker/results.h"

#include <QWidget>

class QCheckBox;
class QComboBox;
class QLabel;
class QListWidget;
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

    void selectToken(int position);
    void setCurrentStep(int step);
    void setAllSteps(bool all);
    void setLevel(int level);  // 0: every layer; 1..: the resolution levels, finest first
    int selectedToken() const { return token_; }
    // [h, w] of the selected token under the current step/level choice, each value the attention
    // probability (the average over the chosen steps); empty when there is nothing to show.
    FloatTensor currentMap() const { return map(token_); }
    QImage overlay() const;

private:
    FloatTensor map(int token) const;
    int visibleTokens() const;
    void rebuildTokens();
    void refresh();

    RunRecord run_;
    QVector<StepRecord> steps_;
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
    ImageView* image_;
    QListWidget* thumbs_;
};

} // namespace sdlui
