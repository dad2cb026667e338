#pragma once
// Stage 1: the CLIP tokens of the prompt, re-tokenized on every key press (the tokenizer is
// torch-free and takes well under a millisecond, so it runs on the UI thread).
#include <QWidget>

class QLabel;
class QTableWidget;

namespace sdlui {

class TokensView : public QWidget {
    Q_OBJECT
public:
    explicit TokensView(QWidget* parent = nullptr);
    void setPrompt(const QString& prompt);
    int usedTokens() const { return used_; }
    int truncatedTokens() const { return truncated_; }

signals:
    void tokenActivated(int position);

private:
    QLabel* summary_;
    QTableWidget* table_;
    int used_ = 0;
    int truncated_ = 0;
};

} // namespace sdlui
