#include "ui/settings_panel.h"

#include "ui/views/common.h"
#include "ui/worker/runtime_info.h"
#include "ui/worker/schedules.h"

#include <QCheckBox>
#include <QComboBox>
#include <QDoubleSpinBox>
#include <QFileDialog>
#include <QFormLayout>
#include <QHBoxLayout>
#include <QLineEdit>
#include <QRandomGenerator>
#include <QRegularExpressionValidator>
#include <QSettings>
#include <QSpinBox>
#include <QToolButton>

#include <utility>

namespace sdlui {

int roundTo8(int v) { return std::max(8, (v + 4) / 8 * 8); }

namespace {
QString randomSeed() { return QString::number(QRandomGenerator::global()->bounded(1u << 31)); }

enum VaeItem { ChosenVae, ChooseFile, ChooseFolder };
constexpr int kKindRole = Qt::UserRole + 1;
constexpr int kMaxRecentVaes = 8;
} // namespace

SettingsPanel::SettingsPanel(bool persist, QWidget* parent) : QWidget(parent), persist_(persist) {
    auto* form = new QFormLayout(this);
    form->setContentsMargins(0, 0, 0, 0);
    if (persist_) {
        const QSettings settings;
        recentVaes_ = settings.value("recentVaes").toStringList();
        const QVariantMap remembered = settings.value("vaeForModel").toMap();
        for (auto it = remembered.begin(); it != remembered.end(); ++it)
            vaeByModel_.insert(it.key(), it.value().toString());
    }
    vae_ = new QComboBox;
    vae_->setObjectName("vaePicker");
    vae_->setToolTip("The VAE that turns latents into pixels and back: the model's own, or another one (a .safetensors "
                     "VAE file, a diffusers VAE folder, or the VAE of another model). Remembered for each model.");
    vae_->setSizeAdjustPolicy(QComboBox::AdjustToMinimumContentsLengthWithIcon);
    vae_->setMinimumContentsLength(12);
    form->addRow("VAE:", vae_);
    fillVaeCombo();
    connect(vae_, &QComboBox::activated, this, &SettingsPanel::vaeActivated);
    scheduler_ = new QComboBox;
    scheduler_->addItems(schedulerNames());
    form->addRow("Scheduler:", scheduler_);
    karras_ = new QCheckBox("Karras sigmas");
    form->addRow(QString(), karras_);
    steps_ = new QSpinBox;
    steps_->setRange(1, 200);
    steps_->setValue(50);
    form->addRow("Steps:", steps_);
    guidance_ = new QDoubleSpinBox;
    guidance_->setRange(1, 30);
    guidance_->setSingleStep(0.5);
    guidance_->setValue(7.5);
    form->addRow("Guidance:", guidance_);
    auto* seedRow = new QHBoxLayout;
    seed_ = new QLineEdit("0");
    seed_->setValidator(new QRegularExpressionValidator(QRegularExpression("[0-9]{1,19}"), seed_));
    seedRow->addWidget(seed_, 1);
    seedLock_ = new QCheckBox("lock");
    seedLock_->setToolTip("Locked: every Generate uses this seed. Unlocked: a new random seed each time.");
    seedRow->addWidget(seedLock_);
    auto* dice = new QToolButton;
    dice->setText("Random");
    dice->setToolTip("New random seed");
    seedRow->addWidget(dice);
    form->addRow("Seed:", seedRow);
    connect(dice, &QToolButton::clicked, this, [this] { seed_->setText(randomSeed()); });
    auto makeSize = [] {
        auto* s = new QSpinBox;
        s->setRange(64, 2048);
        s->setSingleStep(8);
        s->setValue(512);
        s->setSuffix(" px");
        s->setToolTip("A multiple of 8: the VAE works on 8×8 pixel blocks");
        return s;
    };
    width_ = makeSize();
    height_ = makeSize();
    form->addRow("Width:", width_);
    form->addRow("Height:", height_);
    for (QSpinBox* s : {width_, height_})
        connect(s, &QSpinBox::editingFinished, this, [s] { s->setValue(roundTo8(s->value())); });
    clipSkip_ = new QSpinBox;
    clipSkip_->setRange(1, 4);
    clipSkip_->setToolTip("1: the text encoder's last layer; 2: the one before it (as some fine-tunes expect)");
    form->addRow("Clip skip:", clipSkip_);
    recordAttention_ = new QCheckBox("Record attention maps");
    recordAttention_->setChecked(true);
    recordAttention_->setToolTip("Keep every step's per-token cross-attention maps for the Cross-attention view "
                                 "(a little memory and time per step)");
    form->addRow(QString(), recordAttention_);
    device_ = new QComboBox;
    device_->addItems(availableDevices());
    form->addRow("Device:", device_);
    dtype_ = new QComboBox;
    dtype_->addItems({"auto", "fp32", "fp16", "bf16"});
    dtype_->setToolTip("auto: fp16 on CUDA; on a CPU with bf16 instructions (AVX512-BF16, AMX) each network in "
                       "whichever of fp32 and bf16 was measured faster on it (once, then cached; the status bar "
                       "says which and why), else fp32. fp32 reproduces diffusers' CPU numbers exactly; bf16 "
                       "images stay within about 2/255 of them on average.");
    form->addRow("Precision:", dtype_);
    connect(device_, &QComboBox::currentTextChanged, this, &SettingsPanel::runtimeChanged);
    connect(dtype_, &QComboBox::currentTextChanged, this, &SettingsPanel::runtimeChanged);
    connect(scheduler_, &QComboBox::currentTextChanged, this, &SettingsPanel::changed);
    connect(steps_, &QSpinBox::valueChanged, this, &SettingsPanel::changed);
    connect(karras_, &QCheckBox::toggled, this, &SettingsPanel::changed);
}

GenerateSettings SettingsPanel::settings() const {
    GenerateSettings s;
    s.scheduler = scheduler_->currentText();
    s.karras = karras_->isChecked();
    s.steps = steps_->value();
    s.guidance = guidance_->value();
    s.seed = seed_->text().toULongLong();
    s.width = roundTo8(width_->value());
    s.height = roundTo8(height_->value());
    s.clipSkip = clipSkip_->value();
    s.recordAttention = recordAttention_->isChecked();
    return s;
}

void SettingsPanel::setRunSettings(const QString& scheduler, int steps, int width, int height, quint64 seed) {
    scheduler_->setCurrentText(scheduler);
    steps_->setValue(steps);
    width_->setValue(width);
    height_->setValue(height);
    seed_->setText(QString::number(seed));
    seedLock_->setChecked(true);
    userSettings_.reset();
    runSettingsGiven_ = true;
}

void SettingsPanel::useDemoSettings(int size, int steps, const QString& scheduler, double guidance) {
    if (std::exchange(runSettingsGiven_, false) || userSettings_)
        return;
    userSettings_ = UserRunSettings{width_->value(), height_->value(), steps_->value(), scheduler_->currentText(),
                                    guidance_->value()};
    width_->setValue(size);
    height_->setValue(size);
    steps_->setValue(steps);
    scheduler_->setCurrentText(scheduler);
    guidance_->setValue(guidance);
}

void SettingsPanel::useUserSettings() {
    runSettingsGiven_ = false;
    if (!userSettings_)
        return;
    width_->setValue(userSettings_->width);
    height_->setValue(userSettings_->height);
    steps_->setValue(userSettings_->steps);
    scheduler_->setCurrentText(userSettings_->scheduler);
    guidance_->setValue(userSettings_->guidance);
    userSettings_.reset();
}

void SettingsPanel::rollSeedUnlessLocked() {
    if (!seedLock_->isChecked())
        seed_->setText(randomSeed());
}

QString SettingsPanel::device() const { return device_->currentText(); }

QString SettingsPanel::dtype() const { return dtype_->currentText(); }

int SettingsPanel::width() const { return width_->value(); }

QString SettingsPanel::vaeFor(const QString& model) const { return vaeByModel_.value(model); }

void SettingsPanel::showVae(const QString& model, const QString& vae) {
    model_ = model;
    vaeInUse_ = vae;
    fillVaeCombo();
}

void SettingsPanel::rememberVae(const QString& model, const QString& vae) {
    if (vae.isEmpty()) {
        vaeByModel_.remove(model);
    } else {
        vaeByModel_.insert(model, vae);
        recentVaes_.removeAll(vae);
        recentVaes_.prepend(vae);
        recentVaes_ = recentVaes_.mid(0, kMaxRecentVaes);
    }
    if (persist_) {
        QVariantMap remembered;
        for (auto it = vaeByModel_.begin(); it != vaeByModel_.end(); ++it)
            remembered.insert(it.key(), it.value());
        QSettings settings;
        settings.setValue("vaeForModel", remembered);
        settings.setValue("recentVaes", recentVaes_);
    }
    showVae(model, vae);
}

void SettingsPanel::fillVaeCombo() {
    const QSignalBlocker block(vae_);
    vae_->clear();
    vae_->addItem("Model's VAE", QString());
    vae_->setItemData(0, ChosenVae, kKindRole);
    QStringList listed = recentVaes_;
    if (!vaeInUse_.isEmpty() && !listed.contains(vaeInUse_))
        listed.prepend(vaeInUse_);
    for (const QString& path : listed) {
        vae_->addItem(vaeName(path), path);
        vae_->setItemData(vae_->count() - 1, ChosenVae, kKindRole);
        vae_->setItemData(vae_->count() - 1, path, Qt::ToolTipRole);
    }
    vae_->insertSeparator(vae_->count());
    vae_->addItem("VAE file…");
    vae_->setItemData(vae_->count() - 1, ChooseFile, kKindRole);
    vae_->addItem("VAE folder…");
    vae_->setItemData(vae_->count() - 1, ChooseFolder, kKindRole);
    vae_->setCurrentIndex(std::max(0, vae_->findData(vaeInUse_)));
}

void SettingsPanel::vaeActivated(int index) {
    const int kind = vae_->itemData(index, kKindRole).toInt();
    QString path;
    if (kind == ChooseFile)
        path = QFileDialog::getOpenFileName(this, "Use a VAE file", QString(),
                                            "VAE or checkpoint (*.safetensors);;All files (*)");
    else if (kind == ChooseFolder)
        path = QFileDialog::getExistingDirectory(this, "Use a VAE folder (a diffusers VAE or model folder)");
    else
        path = vae_->itemData(index).toString();
    // Until the worker has the new VAE working, the picker shows the one in use.
    if (kind != ChosenVae)
        fillVaeCombo();
    if ((kind == ChosenVae || !path.isEmpty()) && path != vaeInUse_)
        emit vaeChosen(path);
}

void SettingsPanel::load(const QSettings& s) {
    scheduler_->setCurrentText(s.value("scheduler", "lms").toString());
    karras_->setChecked(s.value("karras", false).toBool());
    steps_->setValue(s.value("steps", 50).toInt());
    guidance_->setValue(s.value("guidance", 7.5).toDouble());
    seed_->setText(s.value("seed", "0").toString());
    seedLock_->setChecked(s.value("seedLocked", true).toBool());
    width_->setValue(s.value("width", 512).toInt());
    height_->setValue(s.value("height", 512).toInt());
    clipSkip_->setValue(s.value("clipSkip", 1).toInt());
    recordAttention_->setChecked(s.value("recordAttention", true).toBool());
    // The model is not loaded yet: switching these now must not ask for a reload.
    const QSignalBlocker b1(device_), b2(dtype_);
    device_->setCurrentText(s.value("device", "cpu").toString());
    dtype_->setCurrentText(s.value("dtype", "auto").toString());
}

void SettingsPanel::save(QSettings& s) const {
    s.setValue("scheduler", userSettings_ ? userSettings_->scheduler : scheduler_->currentText());
    s.setValue("karras", karras_->isChecked());
    s.setValue("steps", userSettings_ ? userSettings_->steps : steps_->value());
    s.setValue("guidance", userSettings_ ? userSettings_->guidance : guidance_->value());
    s.setValue("seed", seed_->text());
    s.setValue("seedLocked", seedLock_->isChecked());
    s.setValue("recordAttention", recordAttention_->isChecked());
    s.setValue("width", userSettings_ ? userSettings_->width : width_->value());
    s.setValue("height", userSettings_ ? userSettings_->height : height_->value());
    s.setValue("clipSkip", clipSkip_->value());
    s.setValue("device", device_->currentText());
    s.setValue("dtype", dtype_->currentText());
}

} // namespace sdlui
