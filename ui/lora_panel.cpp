#include "ui/lora_panel.h"

#include <QCheckBox>
#include <QDoubleSpinBox>
#include <QFileDialog>
#include <QFileInfo>
#include <QGroupBox>
#include <QHBoxLayout>
#include <QLabel>
#include <QPushButton>
#include <QSettings>
#include <QSlider>
#include <QTimer>
#include <QToolButton>
#include <QVBoxLayout>

#include <algorithm>
#include <cmath>

namespace sdlui {

namespace {
constexpr double kMaxStrength = 2.0;
constexpr int kSliderSteps = 100;  // per unit of strength

QString stem(const QString& path) { return QFileInfo(path).completeBaseName(); }

void clearRows(QVBoxLayout* rows) {
    while (QLayoutItem* item = rows->takeAt(0)) {
        delete item->widget();
        delete item;
    }
}

QToolButton* removeButton(const QString& what) {
    auto* b = new QToolButton;
    b->setText("✕");
    b->setAutoRaise(true);
    b->setToolTip("Remove " + what);
    return b;
}
} // namespace

LoraPanel::LoraPanel(bool persist, QWidget* parent) : QWidget(parent), persist_(persist) {
    if (persist_) {
        const QSettings settings;
        const QVariantMap loras = settings.value("lorasForModel").toMap();
        for (auto it = loras.begin(); it != loras.end(); ++it)
            for (const QVariant& v : it.value().toList()) {
                const QVariantMap m = v.toMap();
                loras_[it.key()] << Entry{m.value("path").toString(), m.value("strength", 1.0).toDouble(),
                                          m.value("enabled", true).toBool()};
            }
        const QVariantMap embeddings = settings.value("embeddingsForModel").toMap();
        for (auto it = embeddings.begin(); it != embeddings.end(); ++it)
            embeddings_.insert(it.key(), it.value().toStringList());
    }
    auto* layout = new QVBoxLayout(this);
    layout->setContentsMargins(0, 0, 0, 0);

    auto* loraBox = new QGroupBox("LoRAs");
    loraBox->setToolTip("Low-rank changes to the text encoder's and U-Net's weights, merged in at a strength: "
                        "kohya / A1111, peft and diffusers .safetensors files. Remembered for each model.");
    auto* loraLayout = new QVBoxLayout(loraBox);
    loraRows_ = new QVBoxLayout;
    loraRows_->setSpacing(2);
    loraLayout->addLayout(loraRows_);
    loraHint_ = new QLabel;
    loraHint_->setWordWrap(true);
    loraHint_->setStyleSheet("color: palette(mid);");
    loraLayout->addWidget(loraHint_);
    addLora_ = new QPushButton("Add LoRA…");
    loraLayout->addWidget(addLora_);
    layout->addWidget(loraBox);

    auto* embeddingBox = new QGroupBox("Embeddings (textual inversion)");
    embeddingBox->setToolTip("Learned token vectors: each file's trigger word in a prompt becomes its vectors. "
                             "kohya, A1111 (.safetensors) and diffusers learned_embeds files. Remembered for each "
                             "model.");
    auto* embeddingLayout = new QVBoxLayout(embeddingBox);
    embeddingRows_ = new QVBoxLayout;
    embeddingRows_->setSpacing(2);
    embeddingLayout->addLayout(embeddingRows_);
    addEmbedding_ = new QPushButton("Add embedding…");
    embeddingLayout->addWidget(addEmbedding_);
    layout->addWidget(embeddingBox);

    // A dragged slider would otherwise re-merge the weights for every pixel it moves.
    strengthTimer_ = new QTimer(this);
    strengthTimer_->setSingleShot(true);
    strengthTimer_->setInterval(300);
    connect(strengthTimer_, &QTimer::timeout, this, [this] { emit lorasChanged(enabledLoras()); });
    connect(addLora_, &QPushButton::clicked, this, &LoraPanel::chooseLora);
    connect(addEmbedding_, &QPushButton::clicked, this, &LoraPanel::chooseEmbedding);
    rebuild();
}

void LoraPanel::setModel(const QString& model) {
    model_ = model;
    rebuild();
}

QVector<LoraChoice> LoraPanel::lorasFor(const QString& model) const {
    QVector<LoraChoice> out;
    for (const Entry& e : loras_.value(model))
        if (e.enabled)
            out << LoraChoice{e.path, e.strength};
    return out;
}

QStringList LoraPanel::embeddingsFor(const QString& model) const { return embeddings_.value(model); }

void LoraPanel::addLora(const QString& path, double strength) {
    auto& list = loras_[model_];
    for (const Entry& e : list)
        if (e.path == path)
            return;
    list << Entry{path, strength, true};
    remember();
    rebuild();
    emit lorasChanged(enabledLoras());
}

void LoraPanel::addEmbedding(const QString& path) {
    auto& list = embeddings_[model_];
    if (list.contains(path))
        return;
    list << path;
    remember();
    rebuild();
    emit embeddingsChanged(list);
}

void LoraPanel::setLoraStrength(const QString& path, double strength) {
    for (Entry& e : loras_[model_])
        if (e.path == path && e.strength != strength) {
            e.strength = strength;
            for (auto* s : findChildren<QDoubleSpinBox*>("loraStrengthValue"))
                if (s->property("path").toString() == path)
                    s->setValue(strength);  // moves the slider too
            remember();
            strengthTimer_->start();
        }
}

void LoraPanel::setLoraEnabled(const QString& path, bool enabled) {
    for (auto* box : findChildren<QCheckBox*>("loraEnabled"))
        if (box->property("path").toString() == path)
            box->setChecked(enabled);
}

void LoraPanel::showApplied(const QVector<LoraSummary>& applied) {
    loraDetails_.clear();
    for (const LoraSummary& l : applied) {
        int text = 0;
        for (const LoraLayer& layer : l.layers)
            text += layer.network == "text_encoder" ? 1 : 0;
        loraDetails_.insert(l.path, QString("%1 · rank %2 · alpha %3 · %4 layers (text encoder %5, U-Net %6)")
                                        .arg(l.format).arg(l.rank).arg(l.alpha).arg(l.layers.size()).arg(text)
                                        .arg(l.layers.size() - text));
    }
    // In place: rebuilding would take the slider away from a user still dragging it.
    for (auto* box : findChildren<QCheckBox*>("loraEnabled")) {
        const QString path = box->property("path").toString();
        const QString details = loraDetails_.value(path, box->isChecked() ? "not applied yet" : "off");
        box->setToolTip(path + "\n" + details);
    }
}

void LoraPanel::showLoaded(const QVector<TextualInversion>& loaded) {
    embeddingDetails_.clear();
    for (const TextualInversion& e : loaded)
        embeddingDetails_.insert(e.path, QString("%1 · %2 vector%3").arg(e.trigger).arg(e.vectors)
                                             .arg(e.vectors == 1 ? "" : "s"));
    rebuild();
}

void LoraPanel::dropLora(const QString& path) {
    auto& list = loras_[model_];
    for (int i = 0; i < list.size(); ++i)
        if (list[i].path == path)
            list.remove(i--);
    remember();
    rebuild();
}

void LoraPanel::dropEmbedding(const QString& path) {
    embeddings_[model_].removeAll(path);
    remember();
    rebuild();
}

void LoraPanel::rebuild() {
    strengthTimer_->stop();
    clearRows(loraRows_);
    clearRows(embeddingRows_);
    addLora_->setEnabled(!model_.isEmpty());
    addEmbedding_->setEnabled(!model_.isEmpty());
    const QVector<Entry>& loras = loras_.value(model_);
    loraHint_->setText(model_.isEmpty() ? "Open a model to add LoRAs and embeddings."
                                        : "No LoRA yet. Strength 0 leaves the model as it is; negative "
                                          "strengths invert a LoRA.");
    loraHint_->setVisible(loras.isEmpty());
    for (const Entry& e : loras) {
        auto* row = new QWidget;
        auto* v = new QVBoxLayout(row);
        v->setContentsMargins(0, 0, 0, 4);
        v->setSpacing(0);
        auto* top = new QHBoxLayout;
        auto* enabled = new QCheckBox(stem(e.path));
        enabled->setObjectName("loraEnabled");
        enabled->setProperty("path", e.path);
        enabled->setChecked(e.enabled);
        enabled->setToolTip(e.path + "\n" + loraDetails_.value(e.path, e.enabled ? "not applied yet" : "off"));
        top->addWidget(enabled, 1);
        auto* remove = removeButton("this LoRA");
        top->addWidget(remove);
        v->addLayout(top);
        auto* bottom = new QHBoxLayout;
        auto* slider = new QSlider(Qt::Horizontal);
        slider->setObjectName("loraStrength");
        slider->setRange(int(-kMaxStrength * kSliderSteps), int(kMaxStrength * kSliderSteps));
        slider->setValue(int(std::lround(e.strength * kSliderSteps)));
        auto* value = new QDoubleSpinBox;
        value->setObjectName("loraStrengthValue");
        value->setProperty("path", e.path);
        value->setRange(-kMaxStrength, kMaxStrength);
        value->setSingleStep(0.05);
        value->setDecimals(2);
        value->setValue(e.strength);
        value->setToolTip("Strength: the LoRA's change to each weight is multiplied by it");
        bottom->addWidget(slider, 1);
        bottom->addWidget(value);
        v->addLayout(bottom);
        loraRows_->addWidget(row);

        const QString path = e.path;
        connect(slider, &QSlider::valueChanged, value, [value](int s) { value->setValue(double(s) / kSliderSteps); });
        connect(value, &QDoubleSpinBox::valueChanged, this, [this, slider, path](double s) {
            const QSignalBlocker block(slider);
            slider->setValue(int(std::lround(s * kSliderSteps)));
            setLoraStrength(path, s);
        });
        connect(enabled, &QCheckBox::toggled, this, [this, path](bool on) {
            for (Entry& x : loras_[model_])
                if (x.path == path)
                    x.enabled = on;
            remember();
            lorasEdited();
        });
        // Queued: removing rebuilds the rows, and the button must not be deleted inside its own click.
        connect(remove, &QToolButton::clicked, this, [this, path] {
            const QVector<LoraChoice> enabled = enabledLoras();
            const bool applied = std::any_of(enabled.begin(), enabled.end(),
                                             [&](const LoraChoice& c) { return c.path == path; });
            dropLora(path);
            if (applied)
                lorasEdited();
        }, Qt::QueuedConnection);
    }
    for (const QString& path : embeddings_.value(model_)) {
        auto* row = new QWidget;
        auto* h = new QHBoxLayout(row);
        h->setContentsMargins(0, 0, 0, 0);
        auto* label = new QLabel(embeddingDetails_.value(path, stem(path) + " · not loaded yet"));
        label->setToolTip(path);
        h->addWidget(label, 1);
        auto* remove = removeButton("this embedding");
        h->addWidget(remove);
        embeddingRows_->addWidget(row);
        connect(remove, &QToolButton::clicked, this, [this, path] {
            dropEmbedding(path);
            emit embeddingsChanged(embeddings_.value(model_));
        }, Qt::QueuedConnection);
    }
}

void LoraPanel::lorasEdited() {
    strengthTimer_->stop();
    emit lorasChanged(enabledLoras());
}

void LoraPanel::remember() {
    if (!persist_)
        return;
    QVariantMap loras, embeddings;
    for (auto it = loras_.begin(); it != loras_.end(); ++it) {
        QVariantList list;
        for (const Entry& e : it.value())
            list << QVariantMap{{"path", e.path}, {"strength", e.strength}, {"enabled", e.enabled}};
        if (!list.isEmpty())
            loras.insert(it.key(), list);
    }
    for (auto it = embeddings_.begin(); it != embeddings_.end(); ++it)
        if (!it.value().isEmpty())
            embeddings.insert(it.key(), it.value());
    QSettings settings;
    settings.setValue("lorasForModel", loras);
    settings.setValue("embeddingsForModel", embeddings);
}

void LoraPanel::chooseLora() {
    const QString path = QFileDialog::getOpenFileName(this, "Add a LoRA", QString(), "LoRA (*.safetensors);;All files (*)");
    if (!path.isEmpty())
        addLora(path);
}

void LoraPanel::chooseEmbedding() {
    const QString path = QFileDialog::getOpenFileName(this, "Add a textual-inversion embedding", QString(),
                                                      "Embedding (*.safetensors);;All files (*)");
    if (!path.isEmpty())
        addEmbedding(path);
}

} // namespace sdlui
