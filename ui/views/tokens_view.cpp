#include "ui/views/tokens_view.h"

#include "core/tokenizer/clip_tokenizer.h"

#include <QHeaderView>
#include <QLabel>
#include <QTableWidget>
#include <QVBoxLayout>

#include <algorithm>

namespace sdlui {

namespace {
const sdl::ClipTokenizer& tokenizer() {
    static const sdl::ClipTokenizer t = sdl::ClipTokenizer::bundled();
    return t;
}

// CLIP marks the end of a word with "</w>"; a visible "·" keeps the table readable while showing
// where words end (so "photo" and "photograph" pieces can be told apart).
QString displayToken(const std::string& raw) {
    QString s = QString::fromStdString(raw);
    if (s.endsWith("</w>"))
        s = s.left(s.size() - 4) + "·";
    return s;
}
} // namespace

TokensView::TokensView(QWidget* parent) : QWidget(parent) {
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
                              "as padding (mask 0). Tokens past position 76 are cut off.");
    legend->setWordWrap(true);
    legend->setStyleSheet("color: palette(mid);");
    layout->addWidget(legend);
    connect(table_, &QTableWidget::cellClicked, this, [this](int row, int) { emit tokenActivated(row); });
    setPrompt(QString());
}

void TokensView::setPrompt(const QString& prompt) {
    const auto& tok = tokenizer();
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
    auto setRow = [&](int row, int position, int64_t id, const QString& note, bool masked, bool cut) {
        const QString items[] = {position >= 0 ? QString::number(position) : "—", QString::number(id),
                                 displayToken(tok.token_string(id)), cut ? "—" : (masked ? "1" : "0"), note};
        for (int c = 0; c < 5; ++c) {
            auto* item = new QTableWidgetItem(items[c]);
            if (!masked && !cut)
                item->setForeground(pad);
            if (cut)
                item->setBackground(QColor(253, 220, 215));
            table_->setItem(row, c, item);
        }
    };
    for (int i = 0; i < n; ++i) {
        const int64_t id = tp.input_ids[i];
        QString note;
        if (i == 0)
            note = "start of text";
        else if (id == sdl::ClipTokenizer::kEos && tp.attention_mask[i])
            note = "end of text";
        else if (!tp.attention_mask[i])
            note = "padding";
        setRow(i, i, id, note, tp.attention_mask[i] != 0, false);
    }
    for (int j = 0; j < truncated_; ++j)
        setRow(n + j, -1, tp.untruncated_ids[1 + fit + j], "truncated: the model never sees it", false, true);
    table_->resizeColumnsToContents();
    table_->setUpdatesEnabled(true);

    QString text = QString("<b>%1 / %2</b> positions used (start and end tokens included), %3 prompt token%4.")
                       .arg(used_).arg(sdl::ClipTokenizer::kMaxLength).arg(std::min(body, fit))
                       .arg(std::min(body, fit) == 1 ? "" : "s");
    if (truncated_)
        text += QString(" <span style='color:#b3261e'><b>%1 token%2 truncated</b> (shown in red at the end).</span>")
                    .arg(truncated_).arg(truncated_ == 1 ? "" : "s");
    summary_->setText(text);
}

} // namespace sdlui
