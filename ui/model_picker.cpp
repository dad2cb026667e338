#include "ui/model_picker.h"

#include "core/util/resources.h"
#include "ui/model_browser.h"
#include "ui/views/common.h"

#include <QCoreApplication>
#include <QDir>
#include <QFile>
#include <QFileDialog>
#include <QFileInfo>
#include <QFormLayout>
#include <QHBoxLayout>
#include <QJsonDocument>
#include <QJsonObject>
#include <QKeySequence>
#include <QLabel>
#include <QMenu>
#include <QPushButton>
#include <QSettings>
#include <QStandardPaths>

namespace sdlui {

namespace {
QString humanCount(qint64 n) {
    if (n >= 1000000000)
        return QString::number(n / 1e9, 'f', 2) + " B";
    if (n >= 1000000)
        return QString::number(n / 1e6, 'f', 1) + " M";
    if (n >= 1000)
        return QString::number(n / 1e3, 'f', 1) + " k";
    return QString::number(n);
}

// An unreadable or malformed file reads as an empty object: the caller treats it as absent.
QJsonObject readJsonObject(const QString& path) {
    QFile f(path);
    if (!f.open(QIODevice::ReadOnly))
        return {};
    return QJsonDocument::fromJson(f.readAll()).object();
}
} // namespace

ModelPicker::ModelPicker(bool persist, QWidget* parent) : QWidget(parent), persist_(persist) {
    if (persist_)
        recent_ = QSettings().value("recentModels").toStringList();
    auto* form = new QFormLayout(this);
    form->setContentsMargins(0, 0, 0, 0);
    name_ = new QLabel("no model");
    name_->setWordWrap(true);
    name_->setTextInteractionFlags(Qt::TextSelectableByMouse);
    form->addRow("Model:", name_);
    auto* buttons = new QHBoxLayout;
    auto* openFolder = new QPushButton("Folder…");
    openFolder->setToolTip("Open a diffusers model folder (with model_index.json)");
    auto* openFile = new QPushButton("File…");
    openFile->setToolTip("Open a single-file SD 1.x checkpoint (.safetensors)");
    auto* onComputer = new QPushButton("On this computer…");
    onComputer->setToolTip("The models in the Hugging Face cache and your model folders, and the recent ones");
    buttons->addWidget(openFolder);
    buttons->addWidget(openFile);
    form->addRow(buttons);
    form->addRow(onComputer);
    connect(onComputer, &QPushButton::clicked, this, &ModelPicker::browse);
    connect(openFolder, &QPushButton::clicked, this, &ModelPicker::chooseFolder);
    connect(openFile, &QPushButton::clicked, this, &ModelPicker::chooseFile);
}

ModelPicker::~ModelPicker() {
    if (makeModel_.state() != QProcess::NotRunning) {
        makeModel_.kill();
        makeModel_.waitForFinished(2000);
    }
}

QString ModelPicker::demoModelPath() {
    return QDir(QStandardPaths::writableLocation(QStandardPaths::AppDataLocation)).filePath("demo-model");
}

bool ModelPicker::isDemoModel(const QString& path) { return QDir(path) == QDir(demoModelPath()); }

bool ModelPicker::demoIsCurrent(const QString& path) {
    const QJsonObject made = readJsonObject(QDir(path).filePath("sdlens_demo.json"));
    if (made.isEmpty() || !QFileInfo::exists(QDir(path).filePath("model_index.json")))
        return false;
    QString bundled;
    try {
        bundled = QString::fromStdString(sdl::resource_path("demo/demo.json").string());
    } catch (const std::exception&) {
        return true;  // no bundled weights to make it from: the folder made before is the demo there is
    }
    const QJsonObject demo = readJsonObject(bundled);
    return made.value("vocabulary") == demo.value("vocabulary") && made.value("training") == demo.value("training");
}

QString ModelPicker::demoVocabulary(const QString& path) {
    return readJsonObject(QDir(path).filePath("sdlens_demo.json")).value("vocabulary").toString();
}

void ModelPicker::addMenuActions(QMenu* file) {
    file->addAction("Open model &folder…", QKeySequence::Open, this, &ModelPicker::chooseFolder);
    file->addAction("Open model f&ile…", this, &ModelPicker::chooseFile);
    file->addAction("Models on this &computer…", QKeySequence(Qt::CTRL | Qt::SHIFT | Qt::Key_O), this,
                    &ModelPicker::browse);
    recentMenu_ = file->addMenu("&Recent models");
    file->addAction("Use the &demo model", this, &ModelPicker::useDemoModel);
    updateRecentMenu();
}

void ModelPicker::chooseFolder() {
    const QString dir = QFileDialog::getExistingDirectory(this, "Open a diffusers model folder");
    if (!dir.isEmpty())
        emit openRequested(dir);
}

void ModelPicker::chooseFile() {
    const QString file =
        QFileDialog::getOpenFileName(this, "Open a single-file model", QString(), "Safetensors (*.safetensors)");
    if (!file.isEmpty())
        emit openRequested(file);
}

ModelBrowser* ModelPicker::browser() {
    if (!browser_) {
        browser_ = new ModelBrowser(persist_, this);
        connect(browser_, &ModelBrowser::openRequested, this, &ModelPicker::openRequested);
    }
    return browser_;
}

void ModelPicker::browse() {
    ModelBrowser* b = browser();
    b->setRecent(recent_);
    b->rescan();
    b->show();
    b->raise();
    b->activateWindow();
}

void ModelPicker::start(const QString& model) {
    if (!model.isEmpty())
        return emit openRequested(model);
    const QString last = persist_ ? QSettings().value("lastModel").toString() : QString();
    if (!last.isEmpty() && QFileInfo::exists(last))
        return emit openRequested(last);
    useDemoModel();
}

void ModelPicker::useDemoModel() {
    const QString path = demoModelPath();
    if (demoIsCurrent(path))
        return emit openRequested(path);
    if (makeModel_.state() != QProcess::NotRunning)
        return;
    const QString cli = QDir(QCoreApplication::applicationDirPath()).filePath("sdlens-cli");
    if (!QFileInfo(cli).isExecutable())
        return emit failed("Could not create the demo model",
                           "sdlens-cli was not found next to this program (" + cli +
                               "). Open a model instead: a diffusers folder or a single-file .safetensors.");
    QDir().mkpath(QFileInfo(path).path());
    emit creatingDemo(path);
    disconnect(&makeModel_, nullptr, this, nullptr);
    connect(&makeModel_, &QProcess::finished, this, [this, path](int code, QProcess::ExitStatus status) {
        emit demoFinished();
        if (status == QProcess::NormalExit && code == 0)
            return emit openRequested(path);
        const QString err = QString::fromUtf8(makeModel_.readAllStandardError()).trimmed();
        emit failed("Could not create the demo model", err.isEmpty() ? "sdlens-cli make-model failed." : err);
    });
    connect(&makeModel_, &QProcess::errorOccurred, this, [this](QProcess::ProcessError e) {
        if (e != QProcess::FailedToStart)
            return;  // a crash also ends in finished(), which reports it
        emit demoFinished();
        emit failed("Could not create the demo model", makeModel_.errorString());
    });
    makeModel_.start(cli, {"make-model", "--preset", "demo", "--out", path});
}

void ModelPicker::setLoaded(const ModelSummary& s) {
    const QString vae = s.vaePath.isEmpty() ? QString("its own") : "<b>" + vaeName(s.vaePath).toHtmlEscaped() + "</b>";
    const QString spelling = s.vaeSpelling.isEmpty() ? QString() : ", " + s.vaeSpelling.toHtmlEscaped() + " names";
    name_->setText(QString("%1<br><small>%2, %3 parameters, D = %4<br>VAE: %5%6</small>")
                       .arg(QFileInfo(s.path).fileName().toHtmlEscaped(), s.layout)
                       .arg(humanCount(s.textParams + s.unetParams + s.vaeParams)).arg(s.textHidden)
                       .arg(vae, spelling));
    name_->setToolTip(s.vaePath.isEmpty() ? s.path : s.path + "\nVAE: " + s.vae + " from " + s.vaePath);
    if (!isDemoModel(s.path))
        addRecent(s.path);
}

void ModelPicker::setFailed() { name_->setText("no model"); }

void ModelPicker::addRecent(const QString& path) {
    recent_.removeAll(path);
    recent_.prepend(path);
    recent_ = recent_.mid(0, 8);
    if (persist_) {
        QSettings settings;
        settings.setValue("recentModels", recent_);
        settings.setValue("lastModel", path);
    }
    updateRecentMenu();
}

void ModelPicker::updateRecentMenu() {
    if (!recentMenu_)
        return;
    recentMenu_->clear();
    for (const QString& path : recent_)
        recentMenu_->addAction(path, this, [this, path] { emit openRequested(path); });
    recentMenu_->setEnabled(!recent_.isEmpty());
}

} // namespace sdlui
