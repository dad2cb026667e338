#pragma once
// Stage 11: where the applied LoRAs act. Every layer a LoRA changes, with the size of its change
// ||ΔW|| / ||W|| at the strength applied, gathered per resolution level of the U-Net (down 0 is the
// finest, mid the coarsest) with the text encoder as a group of its own: a bar chart per level, one
// bar per LoRA, and the layers in a sortable table.
#include "ui/worker/results.h"

#include <QWidget>

class QComboBox;
class QCPBarsGroup;
class QCustomPlot;
class QLabel;
class QTableWidget;

namespace sdlui {

class LoraView : public QWidget {
    Q_OBJECT
public:
    enum class Measure { Mean, Largest, Layers };

    explicit LoraView(QWidget* parent = nullptr);

    void setLoras(const QVector<LoraSummary>& loras);
    const QVector<LoraSummary>& loras() const { return loras_; }
    void setMeasure(Measure measure);

    // The chart's groups in order: "text encoder", "down 0".."down 3", "mid", "up 0".."up 3", then
    // "U-Net, outside the blocks" where a LoRA changes conv_in, the time embedding or conv_out.
    QStringList groups() const { return groups_; }
    // Per group of groups(): the measure over that LoRA's layers there (0 where it has none).
    QVector<double> perGroup(const LoraSummary& lora, Measure measure) const;

private:
    void refresh();

    QVector<LoraSummary> loras_;
    QStringList groups_;
    QLabel* status_;
    QComboBox* measure_;
    QCustomPlot* plot_;
    QCPBarsGroup* barsGroup_;
    QTableWidget* table_;
};

} // namespace sdlui
