#include "ui/views/attention_view.h"

#include "ui/views/common.h"

#include <QCheckBox>
#include <QComboBox>
#include <QHBoxLayout>
#include <QHeaderView>
#include <QLabel>
#include <QListWidget>
#include <QFileInfo>
#include <QPushButton>
#include <QPainter>
#include <QSlider>
#include <QSplitter>
#include <QTableWidget>
#include <QVBoxLayout>

#include <algorithm>

namespace sdlui {

namespace {
const QString kEndToken = QStringLiteral("<|endoftext|>");

// The map stretched from lo to hi (by default its own minimum and maximum): each token's pattern
// stays readable even when the start token takes most of the attention, as it usually does. The
// share column and the caption give the absolute values.
QImage stretchedHeat(const FloatTensor& map, float lo, float hi) {
    FloatTensor shifted = map;
    for (float& v : shifted.values)
        v -= lo;
    return heatImage(shifted, hi > lo ? 1.f / (hi - lo) : 0.f);
}

QImage normalizedHeat(const FloatTensor& map) {
    const auto [lo, hi] = map.range();
    return stretchedHeat(map, lo, hi);
}

QString loraList(const QVector<LoraChoice>& loras) {
    QStringList names;
    for (const auto& l : loras)
        names << QString("%1 at %2").arg(QFileInfo(l.path).completeBaseName()).arg(l.strength);
    return names.join(", ");
}

double mean(const FloatTensor& t) {
    double sum = 0;
    for (float v : t.values)
        sum += v;
    return t.values.isEmpty() ? 0 : sum / t.values.size();
}
} // namespace

AttentionView::AttentionView(QWidget* parent) : QWidget(parent) {
    auto* layout = new QVBoxLayout(this);
    status_ = new QLabel("Generate an image to see where each prompt token attends. Maps are recorded while "
                         "“Record attention maps” is on in the settings.");
    status_->setWordWrap(true);
    layout->addWidget(status_);

    auto* split = new QSplitter;
    auto* left = new QWidget;
    auto* leftLayout = new QVBoxLayout(left);
    leftLayout->setContentsMargins(0, 0, 0, 0);
    table_ = new QTableWidget(0, 3);
    table_->setHorizontalHeaderLabels({"#", "Token", "Share"});
    table_->horizontalHeaderItem(2)->setToolTip(
        "The token's share of all cross-attention over the image: at every position the 77 tokens share 1.");
    table_->verticalHeader()->hide();
    table_->setSelectionBehavior(QAbstractItemView::SelectRows);
    table_->setSelectionMode(QAbstractItemView::SingleSelection);
    table_->setEditTriggers(QAbstractItemView::NoEditTriggers);
    table_->horizontalHeader()->setSectionResizeMode(0, QHeaderView::ResizeToContents);
    table_->horizontalHeader()->setSectionResizeMode(1, QHeaderView::Stretch);
    table_->horizontalHeader()->setSectionResizeMode(2, QHeaderView::ResizeToContents);
    table_->setWordWrap(false);
    leftLayout->addWidget(table_, 1);
    padding_ = new QCheckBox("Show padding tokens");
    padding_->setToolTip("The padding after the end token also receives attention: SD 1.x pads with the end token");
    leftLayout->addWidget(padding_);
    split->addWidget(left);

    auto* right = new QWidget;
    auto* rightLayout = new QVBoxLayout(right);
    rightLayout->setContentsMargins(0, 0, 0, 0);
    auto* controls = new QHBoxLayout;
    allSteps_ = new QCheckBox("All steps");
    allSteps_->setToolTip("Average over every step of the run instead of the one on the slider");
    controls->addWidget(allSteps_);
    step_ = new QSlider(Qt::Horizontal);
    step_->setEnabled(false);
    step_->setMinimumWidth(160);
    controls->addWidget(step_, 1);
    stepLabel_ = new QLabel;
    stepLabel_->setMinimumWidth(90);
    controls->addWidget(stepLabel_);
    rightLayout->addLayout(controls);
    auto* display = new QHBoxLayout;
    display->addWidget(new QLabel("Layers:"));
    level_ = new QComboBox;
    level_->addItem("All");
    level_->setToolTip("Every cross-attention layer, or only those at one resolution of the U-Net");
    display->addWidget(level_);
    display->addSpacing(12);
    display->addWidget(new QLabel("Overlay:"));
    opacity_ = new QSlider(Qt::Horizontal);
    opacity_->setRange(0, 100);
    opacity_->setValue(65);
    opacity_->setMaximumWidth(140);
    display->addWidget(opacity_);
    display->addStretch(1);
    withoutLoras_ = new QPushButton("Without LoRAs");
    withoutLoras_->setEnabled(false);
    withoutLoras_->setToolTip("Generates the same settings again with no LoRA applied and shows the same token's "
                              "map with and without the LoRAs side by side, on one colour scale");
    display->addWidget(withoutLoras_);
    rightLayout->addLayout(display);
    auto* images = new QHBoxLayout;
    image_ = new ImageView;
    images->addWidget(image_);
    baselineImage_ = new ImageView;
    baselineImage_->hide();
    images->addWidget(baselineImage_);
    rightLayout->addLayout(images, 3);
    thumbs_ = new QListWidget;
    thumbs_->setViewMode(QListView::IconMode);
    thumbs_->setIconSize({88, 88});
    thumbs_->setResizeMode(QListView::Adjust);
    thumbs_->setMovement(QListView::Static);
    thumbs_->setWrapping(true);
    thumbs_->setMinimumHeight(130);
    thumbs_->setToolTip("Every token's map, each scaled to its own maximum; click one to select it");
    rightLayout->addWidget(thumbs_, 1);
    split->addWidget(right);
    split->setStretchFactor(1, 1);
    split->setSizes({340, 760});
    layout->addWidget(split, 1);

    connect(table_, &QTableWidget::currentCellChanged, this, [this](int row) {
        if (row >= 0 && row != token_) {
            token_ = row;
            refresh();
        }
    });
    connect(thumbs_, &QListWidget::currentRowChanged, this, [this](int row) {
        if (row >= 0)
            selectToken(row);
    });
    connect(padding_, &QCheckBox::toggled, this, [this] { rebuildTokens(); });
    connect(step_, &QSlider::valueChanged, this, [this] { refresh(); });
    connect(allSteps_, &QCheckBox::toggled, this, [this] { refresh(); });
    connect(level_, &QComboBox::currentIndexChanged, this, [this] { refresh(); });
    connect(opacity_, &QSlider::valueChanged, this, [this] { showImages(); });
    connect(withoutLoras_, &QPushButton::clicked, this, &AttentionView::requestWithoutLoras);
}

void AttentionView::requestWithoutLoras() {
    if (!withoutLoras_->isEnabled())
        return;
    withoutLoras_->setEnabled(false);
    baselinePending_ = true;
    emit withoutLorasRequested(run_.settings);
}

void AttentionView::beginRun(const GenerateSettings& settings) {
    run_ = RunRecord();
    run_.settings = settings;
    steps_.clear();
    baseline_ = RunRecord();
    baselineImage_->hide();
    withoutLoras_->setEnabled(false);
    status_->setText(settings.recordAttention
                         ? "Recording cross-attention maps while the image forms…"
                         : "This run does not record attention maps: turn on “Record attention maps” in the "
                           "settings and generate again.");
    refresh();
}

void AttentionView::setTokens(const QStringList& tokens) {
    tokens_ = tokens;
    rebuildTokens();
}

void AttentionView::addStep(const StepRecord& step) {
    if (step.attention.isEmpty())
        return;
    const bool follow = step_->value() == step_->maximum();
    steps_ << step;
    const QSignalBlocker block(step_);
    step_->setEnabled(true);
    step_->setRange(0, int(steps_.size()) - 1);
    if (follow)
        step_->setValue(step_->maximum());
    if (level_->count() != step.attentionLevels.size() + 1) {
        const QSignalBlocker blockLevel(level_);
        level_->clear();
        level_->addItem("All");
        for (const auto& l : step.attentionLevels)
            level_->addItem(QString("%1×%2").arg(l.dim(2)).arg(l.dim(1)));
    }
    refresh();
}

void AttentionView::finishRun(const RunRecord& run) {
    run_ = run;
    if (!run.condTokens.isEmpty())
        tokens_ = run.condTokens;
    const bool replace = run.fromTrace || steps_.size() != run.steps.size();
    if (replace) {
        steps_.clear();
        for (const auto& s : run.steps)
            if (!s.attention.isEmpty())
                steps_ << s;
        const QSignalBlocker block(step_);
        step_->setEnabled(!steps_.isEmpty());
        step_->setRange(0, std::max(0, int(steps_.size()) - 1));
        step_->setValue(step_->maximum());
        const QSignalBlocker blockLevel(level_);
        level_->clear();
        level_->addItem("All");
        if (!steps_.isEmpty())
            for (const auto& l : steps_.front().attentionLevels)
                level_->addItem(QString("%1×%2").arg(l.dim(2)).arg(l.dim(1)));
    }
    if (steps_.isEmpty())
        status_->setText(run.fromTrace ? "This trace holds no attention maps (they are saved when recorded)."
                                       : "This run recorded no attention maps: turn on “Record attention maps” in "
                                         "the settings and generate again.");
    else
        status_->setText(QString("“%1” — %2 steps. Select a token to see where it attends; the share is its part "
                                 "of all cross-attention over the image.")
                             .arg(run.settings.prompt.toHtmlEscaped().left(120))
                             .arg(steps_.size()));
    withoutLoras_->setEnabled(!run.fromTrace && !run.settings.loras.isEmpty() && !steps_.isEmpty() &&
                              !baselinePending_);
    rebuildTokens();
}

void AttentionView::setBaselineProgress(int step, int steps) {
    withoutLoras_->setEnabled(false);
    status_->setText(QString("Generating the same settings without LoRAs: step %1 / %2…").arg(step).arg(steps));
}

void AttentionView::setBaseline(const RunRecord& baseline) {
    baselinePending_ = false;
    baseline_ = baseline;
    baselineImage_->show();
    status_->setText(QString("Left: with %1. Right: the same seed and settings without LoRAs. One colour scale "
                             "for both; select a token to compare where it attends.")
                         .arg(loraList(run_.settings.loras).toHtmlEscaped()));
    showImages();
}

void AttentionView::baselineStopped(const QString& why) {
    if (!baselinePending_)
        return;
    baselinePending_ = false;
    status_->setText(why);
    withoutLoras_->setEnabled(!run_.image.isNull() && !run_.settings.loras.isEmpty() && !steps_.isEmpty());
}

void AttentionView::selectToken(int position) {
    if (position < 0 || position >= visibleTokens())
        return;
    token_ = position;
    {
        const QSignalBlocker block(table_);
        table_->selectRow(position);
    }
    refresh();
}

void AttentionView::setCurrentStep(int step) {
    if (step >= 0 && step < steps_.size())
        step_->setValue(step);
}

void AttentionView::setAllSteps(bool all) { allSteps_->setChecked(all); }

void AttentionView::setLevel(int level) {
    if (level >= 0 && level < level_->count())
        level_->setCurrentIndex(level);
}

int AttentionView::visibleTokens() const {
    if (tokens_.isEmpty())
        return 0;
    if (padding_->isChecked())
        return int(tokens_.size());
    const int end = int(tokens_.indexOf(kEndToken, 1));
    return end < 0 ? int(tokens_.size()) : end + 1;
}

FloatTensor AttentionView::map(const QVector<StepRecord>& steps, int token) const {
    FloatTensor out;
    if (steps.isEmpty() || token < 0)
        return out;
    const int level = level_->currentIndex();
    const int first = allSteps_->isChecked() ? 0 : std::clamp(step_->value(), 0, int(steps.size()) - 1);
    const int last = allSteps_->isChecked() ? int(steps.size()) - 1 : first;
    for (int k = first; k <= last; ++k) {
        const auto& s = steps[k];
        const FloatTensor& all = level <= 0 ? s.attention : s.attentionLevels.value(level - 1);
        const FloatTensor m = all.slice(token);
        if (m.isEmpty())
            return FloatTensor();
        if (out.isEmpty())
            out = m;
        else
            for (int i = 0; i < out.values.size(); ++i)
                out.values[i] += m.values[i];
    }
    const float n = float(last - first + 1);
    for (float& v : out.values)
        v /= n;
    return out;
}

QImage AttentionView::overlay(const RunRecord& run, const QVector<StepRecord>& steps,
                              std::pair<float, float> range) const {
    const FloatTensor m = map(steps, token_);
    if (m.isEmpty())
        return QImage();
    // The finished image when showing the last step or all steps; the step's own x0 preview otherwise.
    const int k = std::clamp(step_->value(), 0, int(steps.size()) - 1);
    const bool last = allSteps_->isChecked() || k == int(steps.size()) - 1;
    QImage base = last && !run.image.isNull() ? run.image : steps[k].preview;
    const QSize size = run.settings.width > 0 ? QSize(run.settings.width, run.settings.height) : QSize(512, 512);
    QImage out(size, QImage::Format_RGB32);
    out.fill(Qt::black);
    QPainter p(&out);
    p.setRenderHint(QPainter::SmoothPixmapTransform);
    if (!base.isNull())
        p.drawImage(out.rect(), base);
    p.setOpacity(opacity_->value() / 100.0);
    p.drawImage(out.rect(), stretchedHeat(m, range.first, range.second));
    return out;
}

void AttentionView::rebuildTokens() {
    const int n = visibleTokens();
    {
        const QSignalBlocker block(table_);
        table_->setRowCount(n);
        for (int i = 0; i < n; ++i) {
            table_->setItem(i, 0, new QTableWidgetItem(QString::number(i)));
            table_->setItem(i, 1, new QTableWidgetItem(tokens_[i]));
            table_->setItem(i, 2, new QTableWidgetItem);
        }
    }
    if (token_ >= n)
        token_ = std::min(1, n - 1);
    refresh();
}

void AttentionView::refresh() {
    const int n = visibleTokens();
    const int k = std::clamp(step_->value(), 0, std::max(0, int(steps_.size()) - 1));
    stepLabel_->setText(steps_.isEmpty() ? QString()
                                         : allSteps_->isChecked() ? QString("%1 steps").arg(steps_.size())
                                                                  : QString("step %1 / %2").arg(k + 1).arg(steps_.size()));
    step_->setEnabled(!steps_.isEmpty() && !allSteps_->isChecked());
    {
        const QSignalBlocker block(thumbs_);
        thumbs_->clear();
        for (int i = 0; i < n; ++i) {
            const FloatTensor m = map(steps_, i);
            if (auto* share = table_->item(i, 2))
                share->setText(m.isEmpty() ? QString() : QString("%1 %").arg(100.0 * mean(m), 0, 'f', 1));
            auto* item = new QListWidgetItem(tokens_[i]);
            if (!m.isEmpty())
                item->setIcon(QIcon(QPixmap::fromImage(normalizedHeat(m).scaled(88, 88, Qt::IgnoreAspectRatio, Qt::SmoothTransformation))));
            thumbs_->addItem(item);
        }
        thumbs_->setCurrentRow(token_ < n ? token_ : -1);
    }
    {
        const QSignalBlocker block(table_);
        if (token_ >= 0 && token_ < n)
            table_->selectRow(token_);
    }
    showImages();
}

void AttentionView::showImages() {
    const bool valid = token_ >= 0 && token_ < visibleTokens();
    const FloatTensor m = map(steps_, token_);
    auto range = m.range();
    const bool both = hasBaseline() && valid;
    const FloatTensor b = both ? map(baseline_.steps, token_) : FloatTensor();
    if (!b.isEmpty())
        range = {std::min(range.first, b.range().first), std::max(range.second, b.range().second)};
    auto caption = [&](const FloatTensor& map, const QString& which) {
        if (!valid || map.isEmpty())
            return QString();
        const auto [lo, hi] = map.range();
        // Side by side each caption has half the width: the token's name and range only.
        if (both)
            return which + QString("\n“%1”: %2 … %3 %").arg(tokens_[token_]).arg(100.0 * lo, 0, 'f', 2)
                               .arg(100.0 * hi, 0, 'f', 2);
        return QString("“%1” (token %2): attention %3 … %4 % (dark … bright)")
            .arg(tokens_[token_]).arg(token_).arg(100.0 * lo, 0, 'f', 2).arg(100.0 * hi, 0, 'f', 2);
    };
    image_->setImage(overlay(run_, steps_, range));
    image_->setCaption(caption(m, "With " + loraList(run_.settings.loras)));
    baselineImage_->setImage(b.isEmpty() ? QImage() : overlay(baseline_, baseline_.steps, range));
    baselineImage_->setCaption(caption(b, "Without LoRAs"));
}

} // namespace sdlui
