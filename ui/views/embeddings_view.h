#pragma once
// Stage 2: the text encoder's output, 77 positions × D dimensions, as a heat map with a colour
// scale, per-position norms, a hover readout, any layer's hidden state, and the per-position cosine
// similarity with a second prompt.
#include "ui/worker/results.h"

#include <QWidget>

class QComboBox;
class QCustomPlot;
class QCPBars;
class QCPColorMap;
class QCPColorScale;
class QLabel;
class QLineEdit;

namespace sdlui {

class EmbeddingsView : public QWidget {
    Q_OBJECT
public:
    explicit EmbeddingsView(QWidget* parent = nullptr);
    void setResult(const EmbeddingResult& result);
    void setPrompt(const QString& prompt);  // what Compute will encode
    QString comparePrompt() const;
    void setComparePrompt(const QString& prompt);
    const EmbeddingResult& result() const { return result_; }
    void selectLayer(int layer);
    // "position p (token) · dim d · value v" for a point of the heat map; empty outside it.
    QString readout(int position, int dim) const;

signals:
    void computeRequested(const QString& prompt, const QString& comparePrompt);

private:
    void showLayer();
    void hover(QMouseEvent* e);

    EmbeddingResult result_;
    QString prompt_;
    QComboBox* layer_;
    QLineEdit* compare_;
    QLabel* readout_;
    QLabel* title_;
    QCustomPlot* heat_;
    QCPColorMap* map_;
    QCPColorScale* scale_;
    QCustomPlot* norms_;
    QCPBars* normBars_;
    QCustomPlot* cosine_;
    QCPBars* cosineBars_;
};

} // namespace sdlui
