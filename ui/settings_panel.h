#pragma once
// The settings dock's run settings: scheduler, steps, guidance, seed, size, clip skip, attention
// recording, device and precision. It holds values only; the window reads them when it needs them.
#include "ui/worker/results.h"

#include <QWidget>

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
    explicit SettingsPanel(QWidget* parent = nullptr);

    // scheduler, karras, steps, guidance, seed, size (multiples of 8), clip skip, attention; the
    // prompts and the model are the window's.
    GenerateSettings settings() const;
    void setRunSettings(const QString& scheduler, int steps, int width, int height, quint64 seed);
    // An unlocked seed is a new random one for every generation.
    void rollSeedUnlessLocked();
    QString device() const;
    QString dtype() const;
    int width() const;

    void load(const QSettings& s);
    void save(QSettings& s) const;

signals:
    void changed();         // scheduler, steps or Karras: what the schedule views show
    void runtimeChanged();  // device or precision: the model has to be loaded again

private:
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
