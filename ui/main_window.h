#pragma once
// The SD Lens window: a stage navigator in the article's order, a prompt bar, a settings panel, a
// model picker and a status bar around eight stage views. It never touches a model: every request
// goes to the PipelineController's worker thread and every result comes back as a signal.
#include "ui/worker/results.h"

#include <QElapsedTimer>
#include <QMainWindow>

class QLabel;
class QLineEdit;
class QListWidget;
class QPlainTextEdit;
class QProgressBar;
class QPushButton;
class QStackedWidget;
class QTimer;

namespace sdlui {

class Banner;
class AttentionView;
class CompareView;
class EmbeddingsView;
class GenerateView;
class LatentsView;
class LoraPanel;
class LoraView;
class ModelPicker;
class PipelineController;
class ProgressionView;
class ScheduleView;
class SettingsPanel;
class TokensView;
class UNetStepView;
class VaeView;

class MainWindow : public QMainWindow {
    Q_OBJECT
public:
    enum Stage { Tokens, Embeddings, Latents, Schedule, Progression, UNetStep, Generate, Vae, Attention, Compare,
                 Lora, StageCount };

    struct Options {
        bool persistSettings = true;  // off for --screenshots and tests: nothing read or written
        QString model;                // open this model instead of the last one / the demo
    };
    explicit MainWindow(const Options& options, QWidget* parent = nullptr);
    ~MainWindow() override;

    // The prompt of a first start; the demo model swaps it for one it was trained on.
    static QString defaultPrompt();

    PipelineController* controller() const { return controller_; }
    QWidget* stageWidget(Stage s) const;
    void showStage(Stage s);
    void setPrompt(const QString& prompt, const QString& negative = QString());
    // steps, size, seed (locked), scheduler; the rest stays as it is.
    void setRunSettings(const QString& scheduler, int steps, int width, int height, quint64 seed);
    GenerateSettings currentSettings() const;
    QString bannerText() const;
    bool isRunning() const { return running_; }
    AttentionView* attentionView() const { return attentionView_; }
    CompareView* compareView() const { return compareView_; }
    EmbeddingsView* embeddingsView() const { return embeddingsView_; }
    GenerateView* generateView() const { return generateView_; }
    LoraPanel* loraPanel() const { return loraPanel_; }
    LoraView* loraView() const { return loraView_; }
    ScheduleView* scheduleView() const { return scheduleView_; }
    TokensView* tokensView() const { return tokensView_; }
    VaeView* vaeView() const { return vaeView_; }

public slots:
    void generate();
    void compare();
    void cancel();
    void openModel(const QString& path);
    void openTrace(const QString& path);

signals:
    void modelReady(const sdlui::ModelSummary& summary);

protected:
    void closeEvent(QCloseEvent* e) override;
    void dragEnterEvent(QDragEnterEvent* e) override;
    void dropEvent(QDropEvent* e) override;

private:
    QWidget* buildPromptBar();
    void buildMenus();
    void buildStatusBar();
    void connectWorker();
    void connectLoras();
    void reloadModel();
    void stageShown(int stage);
    void ensureImage();
    void showError(const QString& title, const QString& message);
    void showWarnings(const QStringList& warnings);
    void showDemoBanner(const QString& path);
    void updateMemory();
    void saveImage();
    void saveRun();
    void loadSettings();
    void saveSettings();
    void settingsChanged();
    void setRunning(bool running);

    Options options_;
    PipelineController* controller_;
    QString modelPath_;
    bool modelLoaded_ = false;
    bool running_ = false;
    bool roundTripDone_ = false;
    bool roundTripPending_ = false;
    bool progressionStale_ = true;
    bool probeStale_ = true;
    bool embeddingsStale_ = true;
    RunRecord lastRun_;
    QElapsedTimer runTimer_;
    QTimer* embedTimer_;

    QListWidget* navigator_;
    QStackedWidget* stack_;
    Banner* modelBanner_;
    Banner* errorBanner_;
    QPlainTextEdit* prompt_;
    QLineEdit* negative_;
    QPushButton* generateButton_;
    QPushButton* cancelButton_;

    ModelPicker* modelPicker_;
    SettingsPanel* settingsPanel_;
    LoraPanel* loraPanel_;

    QLabel* statusModel_;
    QLabel* statusDevice_;
    QLabel* statusMemory_;
    QLabel* statusBusy_;
    QProgressBar* progress_;
    QLabel* statusRate_;

    TokensView* tokensView_;
    EmbeddingsView* embeddingsView_;
    LatentsView* latentsView_;
    ScheduleView* scheduleView_;
    ProgressionView* progressionView_;
    UNetStepView* unetView_;
    GenerateView* generateView_;
    VaeView* vaeView_;
    AttentionView* attentionView_;
    CompareView* compareView_;
    LoraView* loraView_;
};

} // namespace sdlui
