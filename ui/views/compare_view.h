#pragma once
// Stage 10: the same seed with one setting changed — two prompts, a strip of guidance scales, two
// schedulers, two step counts or a strip of strengths of the one LoRA applied — side by side at every
// step, with where and how much the runs differ (Diffusion Explainer's guidance strip, computed live
// for the user's own prompt).
#include "ui/worker/results.h"

#include <QWidget>

class QComboBox;
class QCustomPlot;
class QCPItemStraightLine;
class QGridLayout;
class QLabel;
class QLineEdit;
class QPushButton;
class QSlider;
class QSpinBox;
class QStackedWidget;

namespace sdlui {

class ImageView;

class CompareView : public QWidget {
    Q_OBJECT
public:
    explicit CompareView(QWidget* parent = nullptr);

    // "prompt", "guidance", "scheduler", "steps" or "lora".
    QString vary() const;
    void setVary(const QString& vary);
    // Every run's value of the varied setting; for two-run comparisons the first is the base's own.
    QStringList values(const GenerateSettings& base) const;
    void setSecondPrompt(const QString& prompt);
    void setGuidanceValues(const QString& commaSeparated);
    void setLoraStrengths(const QString& commaSeparated);

    void setRunning(bool running);
    void setProgress(int run, int runs, int step, int steps);
    void setResult(const ComparisonRecord& record);
    const ComparisonRecord& result() const { return record_; }
    // 0..100: how far through the schedule the images are shown; 100 shows the final images.
    void setProgressPosition(int percent);

signals:
    void compareRequested();
    void cancelRequested();

private:
    void showAt(int percent);

    ComparisonRecord record_;
    QComboBox* vary_;
    QStackedWidget* editors_;
    QLineEdit* secondPrompt_;
    QLineEdit* guidances_;
    QComboBox* secondScheduler_;
    QSpinBox* secondSteps_;
    QLineEdit* loraStrengths_;
    QPushButton* run_;
    QPushButton* cancel_;
    QLabel* status_;
    QSlider* position_;
    QLabel* positionLabel_;
    QComboBox* diffOf_;
    QGridLayout* grid_;
    QVector<ImageView*> images_;
    ImageView* difference_;
    QCustomPlot* plot_;
    QCPItemStraightLine* marker_;
};

} // namespace sdlui
