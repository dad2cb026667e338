#pragma once
// The settings dock's LoRAs and textual-inversion embeddings: files the user adds, each LoRA with an
// on/off box and a strength. Both lists are remembered per model path, as the VAE is. The panel only
// holds the lists: lorasChanged() and embeddingsChanged() ask the window to have the worker apply
// them to the loaded model, which is not loaded again for it.
#include "ui/worker/results.h"

#include <QHash>
#include <QWidget>

class QLabel;
class QPushButton;
class QTimer;
class QVBoxLayout;

namespace sdlui {

class LoraPanel : public QWidget {
    Q_OBJECT
public:
    // persist off: the lists last for this session only (screenshots, tests).
    explicit LoraPanel(bool persist, QWidget* parent = nullptr);

    // Shows the lists remembered for this model; adding files needs a model.
    void setModel(const QString& model);
    // The enabled LoRAs and the embeddings remembered for a model: what its load applies.
    QVector<LoraChoice> lorasFor(const QString& model) const;
    QStringList embeddingsFor(const QString& model) const;
    QVector<LoraChoice> enabledLoras() const { return lorasFor(model_); }

    // For the user's "Add…" buttons, tests and screenshots: ask for the file to be applied.
    void addLora(const QString& path, double strength = 1.0);
    void addEmbedding(const QString& path);
    void setLoraStrength(const QString& path, double strength);
    void setLoraEnabled(const QString& path, bool enabled);

    // What the worker has applied: shown in each row's tooltip (format, rank, layers), the
    // embeddings by their trigger words.
    void showApplied(const QVector<LoraSummary>& applied);
    void showLoaded(const QVector<TextualInversion>& loaded);
    // A file the worker could not use leaves the list (and the memory); the window says why.
    void dropLora(const QString& path);
    void dropEmbedding(const QString& path);

signals:
    void lorasChanged(const QVector<sdlui::LoraChoice>& enabled);
    void embeddingsChanged(const QStringList& paths);

private:
    struct Entry {
        QString path;
        double strength = 1.0;
        bool enabled = true;
    };
    void rebuild();
    void remember();
    void chooseLora();
    void chooseEmbedding();
    void lorasEdited();

    bool persist_;
    QString model_;
    QHash<QString, QVector<Entry>> loras_;
    QHash<QString, QStringList> embeddings_;
    QHash<QString, QString> loraDetails_;       // path -> what the worker said about it
    QHash<QString, QString> embeddingDetails_;  // path -> its trigger and vector count
    QVBoxLayout* loraRows_;
    QVBoxLayout* embeddingRows_;
    QLabel* loraHint_;
    QPushButton* addLora_;
    QPushButton* addEmbedding_;
    QTimer* strengthTimer_;
};

} // namespace sdlui
