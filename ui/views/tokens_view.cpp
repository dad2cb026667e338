#include "ui/views/tokens_view.h"

#include "core/tokenizer/clip_tokenizer.h"

#include <QHeaderView>
#include <QLabel>
#include <QTableWidget>
#include <QVBoxLayout>

#include <algorithm>

namespace sdlui {

namespace {
const sdl::ClipTokenizer& bundled() {
    static const sdl::ClipTokenizer t = sdl::ClipTokenizer::bundled();
    return t;
}

const QColor kEmbeddingRow(226, 214, 250);

// CLIP marks the end of a word with "</w>"; a visible "·" keeps the table readable while showing
// where words end (so "photo" and "photograph" pieces can be told apart).
QString displayToken(const std::string& raw) {
    QString s = QString::fromStdString(raw);
    if (s.endsWith("</w>"))
        s = s.left(s.size() - 4) + "·";
    return s;
}
} // namespace

TokensView::TokensView(QWidget* parent)
    : QWidget(parent), tokenizer_(std::make_unique<sdl::ClipTokenizer>(bundled())) {
    auto* layout = new QVBoxLayout(this);
    summary_ = new QLabel;
    summary_->setWordWrap(true);
    layout->addWidget(summary_);
    table_ = new QTableWidget(0, 5);
    table_->setHorizontalHeaderLabels({"Position", "Id", "Token", "Mask", "Note"});
    table_->verticalHeader()->hide();
    table_->setEditTriggers(QAbstractItemView::NoEditTriggers);
    table_->setSelectionBehavior(QAbstractItemView::SelectRows);
    table_->horizontalHeader()->setStretchLastSection(true);
    table_->setAlternatingRowColors(true);
    layout->addWidget(table_, 1);
    auto* legend = new QLabel("· marks the end of a word (CLIP's &lt;/w&gt;). Every prompt becomes exactly 77 "
                              "positions: the start token, the prompt's tokens, the end token, then end tokens "
                              "as padding (mask 0). Tokens past position 76 are cut off. Violet rows are "
                              "textual-inversion vectors: a loaded embedding's trigger word stands for them.");
    legend->setWordWrap(true);
    legend->setStyleSheet("color: palette(mid);");
    layout->addWidget(legend);
    connect(table_, &QTableWidget::cellClicked, this, [this](int row, int) { emit tokenActivated(row); });
    setPrompt(QString());
}

TokensView::~TokensView() = default;

void TokensView::setEmbeddings(const QVector<TextualInversion>& embeddings) {
    embeddings_ = embeddings;
    std::vector<sdl::EmbeddingTrigger> triggers;
    for (const auto& e : embeddings)
        triggers.push_back({e.trigger.toStdString(), e.vectors});
    // The model accepted these triggers with the same rules, so this does not throw in practice; if it
    // did, the plain vocabulary is still the right answer for every other word.
    try {
        tokenizer_ = std::make_unique<sdl::ClipTokenizer>(bundled().with_embeddings(triggers));
    } catch (const std::exception&) {
        tokenizer_ = std::make_unique<sdl::ClipTokenizer>(bundled());
    }
    setPrompt(prompt_);
}

void TokensView::setPrompt(const QString& prompt) {
    prompt_ = prompt;
    const auto& tok = *tokenizer_;
    const sdl::TokenizedPrompt tp = tok.encode(prompt.toStdString());
    const int n = int(tp.input_ids.size());
    // Positions cut off: the untruncated ids minus BOS/EOS beyond the 75 that fit.
    const int body = int(tp.untruncated_ids.size()) - 2;
    const int fit = sdl::ClipTokenizer::kMaxLength - 2;
    truncated_ = std::max(0, body - fit);
    used_ = 0;
    for (auto m : tp.attention_mask)
        used_ += int(m);

    table_->setUpdatesEnabled(false);
    table_->setRowCount(n + truncated_);
    const QColor pad = palette().color(QPalette::Disabled, QPalette::Text);
    auto setRow = [&](int row, int position, int64_t id, const QString& note, bool masked, bool cut,
                      bool embedding) {
        const QString items[] = {position >= 0 ? QString::number(position) : "—", QString::number(id),
                                 displayToken(tok.token_string(id)), cut ? "—" : (masked ? "1" : "0"), note};
        for (int c = 0; c < 5; ++c) {
            auto* item = new QTableWidgetItem(items[c]);
            if (!masked && !cut)
                item->setForeground(pad);
            if (cut)
                item->setBackground(QColor(253, 220, 215));
            else if (embedding)
                item->setBackground(kEmbeddingRow);
            table_->setItem(row, c, item);
        }
    };
    embeddingPositions_ = 0;
    QStringList triggersUsed;
    for (int i = 0; i < n; ++i) {
        const int64_t id = tp.input_ids[i];
        const QString trigger = i < int(tp.embedding.size()) ? QString::fromStdString(tp.embedding[i]) : QString();
        QString note;
        if (!trigger.isEmpty()) {
            int vectors = 0;
            for (const auto& e : embeddings_)
                if (e.trigger == trigger)
                    vectors = e.vectors;
            int k = 0;  // which of the embedding's vectors: count back to where its run starts
            while (k < i && id - k - 1 == tp.input_ids[i - k - 1] && QString::fromStdString(tp.embedding[i - k - 1]) == trigger)
                ++k;
            note = QString("textual inversion “%1”, vector %2 of %3").arg(trigger).arg(k + 1).arg(vectors);
            ++embeddingPositions_;
            if (!triggersUsed.contains(trigger))
                triggersUsed << trigger;
        } else if (i == 0) {
            note = "start of text";
        } else if (id == sdl::ClipTokenizer::kEos && tp.attention_mask[i]) {
            note = "end of text";
        } else if (!tp.attention_mask[i]) {
            note = "padding";
        }
        setRow(i, i, id, note, tp.attention_mask[i] != 0, false, !trigger.isEmpty());
    }
    for (int j = 0; j < truncated_; ++j)
        setRow(n + j, -1, tp.untruncated_ids[1 + fit + j], "truncated: the model never sees it", false, true, false);
    table_->resizeColumnsToContents();
    table_->setUpdatesEnabled(true);

    QString text = QString("<b>%1 / %2</b> positions used (start and end tokens included), %3 prompt token%4.")
                       .arg(used_).arg(sdl::ClipTokenizer::kMaxLength).arg(std::min(body, fit))
                       .arg(std::min(body, fit) == 1 ? "" : "s");
    if (embeddingPositions_)
        text += QString(" <span style='color:#5b3a9e'><b>%1 position%2</b> hold textual-inversion vectors (%3).</span>")
                    .arg(embeddingPositions_).arg(embeddingPositions_ == 1 ? "" : "s")
                    .arg(triggersUsed.join(", ").toHtmlEscaped());
    if (truncated_)
        text += QString(" <span style='color:#b3261e'><b>%1 token%2 truncated</b> (shown in red at the end).</span>")
                    .arg(truncated_).arg(truncated_ == 1 ? "" : "s");
    summary_->setText(text);
}

} // namespace sdlui
