#pragma once
// Stage 1: the CLIP tokens of the prompt, re-tokenized on every key press (the tokenizer is
// torch-free and takes well under a millisecond, so it runs on the UI thread). The positions a
// textual-inversion embedding's vectors take are marked with its name.
#include "ui/worker/results.h"

#include <QWidget>

#include <memory>

namespace sdl {
class ClipTokenizer;
}

class QLabel;
class QTableWidget;

namespace sdlui {

class TokensView : public QWidget {
    Q_OBJECT
public:
    explicit TokensView(QWidget* parent = nullptr);
    ~TokensView() override;
    void setPrompt(const QString& prompt);
    // The embeddings the model has loaded: their trigger words read as their vectors from now on.
    void setEmbeddings(const QVector<TextualInversion>& embeddings);
    int usedTokens() const { return used_; }
    int truncatedTokens() const { return truncated_; }
    int embeddingPositions() const { return embeddingPositions_; }

signals:
    void tokenActivated(int position);

private:
    QString prompt_;
    QVector<TextualInversion> embeddings_;
    std::unique_ptr<sdl::ClipTokenizer> tokenizer_;
    QLabel* summary_;
    QTableWidget* table_;
    int used_ = 0;
    int truncated_ = 0;
    int embeddingPositions_ = 0;
};

} // namespace sdlui
