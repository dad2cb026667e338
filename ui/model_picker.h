#pragma once
// Which model the window works on: the model line of the settings dock with its open buttons, the
// File menu's open actions and recent models, the models on this computer (ModelBrowser), and the
// demo model (made from the bundled trained weights with sdlens-cli make-model --preset demo, again
// when they change). It only picks: openRequested() asks the window to load a path.
#include "ui/worker/results.h"

#include <QProcess>
#include <QWidget>

class QLabel;
class QMenu;

namespace sdlui {

class ModelBrowser;

class ModelPicker : public QWidget {
    Q_OBJECT
public:
    // persist off: recent models and model folders last for this session only (screenshots, tests).
    explicit ModelPicker(bool persist, QWidget* parent = nullptr);
    ~ModelPicker() override;

    // The demo model's folder; created on first use with sdlens-cli make-model --preset demo.
    static QString demoModelPath();
    static bool isDemoModel(const QString& path);
    // Whether the demo folder at `path` was made from the demo weights bundled now: its
    // sdlens_demo.json holds the vocabulary and training of the bundled demo.json. Folders made by
    // older versions (random weights, no sdlens_demo.json) or from other weights are made again.
    static bool demoIsCurrent(const QString& path);
    // What the demo model at `path` was trained to draw ("vocabulary" of its sdlens_demo.json);
    // empty when it does not say.
    static QString demoVocabulary(const QString& path);

    // Open folder / Open file / Models on this computer / Recent models / Use the demo model.
    void addMenuActions(QMenu* file);
    // Asks for `model` if given, else the last model opened, else the demo model.
    void start(const QString& model);
    void setLoaded(const ModelSummary& summary);
    void setFailed();
    QStringList recentModels() const { return recent_; }
    // The "Models on this computer" dialog, created on first use.
    ModelBrowser* browser();

public slots:
    void chooseFolder();
    void chooseFile();
    // Shows the models on this computer and scans again.
    void browse();
    void useDemoModel();

signals:
    void openRequested(const QString& path);
    void creatingDemo(const QString& path);
    void demoFinished();
    void failed(const QString& title, const QString& message);

private:
    void addRecent(const QString& path);
    void updateRecentMenu();

    bool persist_;
    QStringList recent_;
    ModelBrowser* browser_ = nullptr;
    QLabel* name_;
    QMenu* recentMenu_ = nullptr;
    QProcess makeModel_;
};

} // namespace sdlui
