#pragma once
// The settings dock's run settings: the VAE, scheduler, steps, guidance, seed, size, clip skip,
// attention recording, device and precision. It holds values only; the window reads them when it
// needs them. The VAE chosen for a model is remembered per model path, with the recent VAEs.
#include "ui/worker/results.h"

#include <QHash>
#include <QWidget>

#include <optional>

class QCheckBox;
class QComboBox;
class QDoubleSpinBox;
class QLineEdit;
class QSettings;
class QSpinBox;

namespace sdlui {

class SettingsPanel : public QWidget {
    Q_OBJECT
public:
    // persist off: the VAE memory lasts for this session only (screenshots, tests).
    explicit SettingsPanel(bool persist, QWidget* parent = nullptr);

    // scheduler, karras, steps, guidance, seed, size (multiples of 8), clip skip, attention; the
    // prompts and the model are the window's.
    GenerateSettings settings() const;
    void setRunSettings(const QString& scheduler, int steps, int width, int height, quint64 seed);
    // The demo model's size, steps, scheduler and guidance, kept until another model opens: then the
    // user's come back. save() keeps the user's. Applied only on the way into the demo (a reload keeps
    // what was set), and not to the load right after setRunSettings (a reopened trace, --screenshots):
    // given settings win.
    void useDemoSettings(int size, int steps, const QString& scheduler, double guidance);
    void useUserSettings();
    // An unlocked seed is a new random one for every generation.
    void rollSeedUnlessLocked();
    QString device() const;
    QString dtype() const;
    int width() const;

    // The VAE last used with this model: a path, or empty for the model's own.
    QString vaeFor(const QString& model) const;
    // Shows the VAE the model uses now (empty: its own) without remembering it: after a load, or
    // after a chosen VAE failed.
    void showVae(const QString& model, const QString& vae);
    // A VAE the user chose works: shown, remembered for the model and among the recent VAEs.
    void rememberVae(const QString& model, const QString& vae);
    QString vaeInUse() const { return vaeInUse_; }
    QStringList recentVaes() const { return recentVaes_; }

    void load(const QSettings& s);
    void save(QSettings& s) const;

signals:
    void changed();         // scheduler, steps or Karras: what the schedule views show
    void runtimeChanged();  // device or precision: the model has to be loaded again
    void vaeChosen(const QString& path);  // empty: the model's own

private:
    void fillVaeCombo();
    void vaeActivated(int index);

    bool persist_;
    QString model_;
    QString vaeInUse_;
    QStringList recentVaes_;
    QHash<QString, QString> vaeByModel_;
    struct UserRunSettings {
        int width, height, steps;
        QString scheduler;
        double guidance;
    };
    std::optional<UserRunSettings> userSettings_;  // set while the demo's replace them
    bool runSettingsGiven_ = false;
    QComboBox* vae_;
    QComboBox* scheduler_;
    QCheckBox* karras_;
    QSpinBox* steps_;
    QDoubleSpinBox* guidance_;
    QLineEdit* seed_;
    QCheckBox* seedLock_;
    QSpinBox* width_;
    QSpinBox* height_;
    QSpinBox* clipSkip_;
    QCheckBox* recordAttention_;
    QComboBox* device_;
    QComboBox* dtype_;
};

// Image sides snap to multiples of 8: the VAE works on 8×8 pixel blocks.
int roundTo8(int v);

} // namespace sdlui
