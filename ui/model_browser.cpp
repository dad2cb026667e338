#include "ui/model_browser.h"

#include "core/io/model_scan.h"

#include <QDialogButtonBox>
#include <QDir>
#include <QFileDialog>
#include <QFileInfo>
#include <QHash>
#include <QHBoxLayout>
#include <QHeaderView>
#include <QInputDialog>
#include <QLabel>
#include <QPushButton>
#include <QSettings>
#include <QThread>
#include <QTreeWidget>
#include <QVBoxLayout>

#include <memory>

namespace sdlui {

namespace {

enum Column { Name, Layout, Family, Size, Precision, Status, ColumnCount };

QString familyName(const QString& family) {
    static const QHash<QString, QString> names = {
        {"sd1", "SD 1.x"}, {"sd1-inpainting", "SD 1.x inpainting"}, {"sd2", "SD 2.x"}, {"sdxl", "SDXL"},
        {"vae", "VAE"}, {"lora", "LoRA"}, {"text-encoder", "text encoder"}, {"pickle", "pickle (not read)"}};
    return names.value(family, family);
}

QString humanBytes(qint64 n) {
    if (n >= (qint64(1) << 30))
        return QString("%1 GB").arg(n / double(1 << 30), 0, 'f', 2);
    if (n >= (1 << 20))
        return QString("%1 MB").arg(n / double(1 << 20), 0, 'f', 1);
    return QString("%1 kB").arg(n / 1024.0, 0, 'f', 0);
}

// $SDLENS_MODELS: folders separated as in PATH.
QStringList environmentFolders() {
    const QString env = qEnvironmentVariable("SDLENS_MODELS");
    return env.split(QDir::listSeparator(), Qt::SkipEmptyParts);
}

FoundModelRow toRow(const sdl::FoundModel& m) {
    FoundModelRow r;
    r.id = QString::fromStdString(m.id);
    r.path = QString::fromStdString(m.path);
    r.layout = QString::fromStdString(m.layout);
    r.family = QString::fromStdString(m.family);
    r.sizeBytes = qint64(m.size_bytes);
    r.precision = QString::fromStdString(m.precision);
    r.complete = m.complete;
    for (const auto& part : m.missing)
        r.missing << QString::fromStdString(part);
    return r;
}

// Runs on the scan's thread: plain values in, plain values out. One folder that cannot be read is
// a row saying so; the others are still listed.
QVector<FoundModelRow> scan(const QStringList& folders) {
    QVector<FoundModelRow> rows;
    auto add = [&](const QString& where, auto&& find) {
        try {
            for (const auto& m : find())
                rows << toRow(m);
        } catch (const std::exception& e) {
            FoundModelRow r;
            r.path = where;
            r.error = QString::fromStdString(e.what());
            rows << r;
        }
    };
    add("Hugging Face cache", [] { return sdl::find_models({}, true); });
    for (const QString& dir : folders)
        add(dir, [&] { return sdl::find_models({dir.toStdString()}, false); });
    return rows;
}

QStringList columns(const FoundModelRow& r) {
    QStringList c;
    for (int i = 0; i < ColumnCount; ++i)
        c << QString();
    c[Name] = r.id.isEmpty() ? QFileInfo(r.path).fileName() : r.id;
    if (!r.error.isEmpty()) {
        c[Name] = r.path;
        c[Status] = r.error;
        return c;
    }
    c[Layout] = r.layout;
    c[Family] = familyName(r.family);
    c[Size] = r.sizeBytes > 0 ? humanBytes(r.sizeBytes) : QString();
    c[Precision] = r.precision;
    c[Status] = r.complete ? QString("complete") : "missing: " + r.missing.join(", ");
    if (r.complete && !r.openable())
        c[Status] = "not SD 1.x: SD Lens opens SD 1.x models";
    return c;
}

QTreeWidgetItem* makeItem(const FoundModelRow& r, bool openable) {
    auto* item = new QTreeWidgetItem(columns(r));
    item->setToolTip(Name, r.path);
    item->setToolTip(Status, item->text(Status));
    item->setData(Name, Qt::UserRole, openable ? r.path : QString());
    if (!openable)
        item->setFlags(item->flags() & ~Qt::ItemIsEnabled);
    return item;
}

} // namespace

ModelBrowser::ModelBrowser(bool persist, QWidget* parent) : QDialog(parent), persist_(persist) {
    setWindowTitle("Models on this computer");
    resize(900, 520);
    auto* layout = new QVBoxLayout(this);
    status_ = new QLabel;
    status_->setWordWrap(true);
    status_->setTextFormat(Qt::RichText);
    layout->addWidget(status_);
    tree_ = new QTreeWidget;
    tree_->setColumnCount(ColumnCount);
    tree_->setHeaderLabels({"Model", "Layout", "Family", "Size", "Precision", "Status"});
    tree_->setRootIsDecorated(true);
    tree_->setUniformRowHeights(true);
    tree_->header()->setSectionResizeMode(Name, QHeaderView::Stretch);
    for (int c = Layout; c < Status; ++c)
        tree_->header()->setSectionResizeMode(c, QHeaderView::ResizeToContents);
    tree_->header()->setSectionResizeMode(Status, QHeaderView::Interactive);
    tree_->header()->setStretchLastSection(false);
    tree_->header()->resizeSection(Status, 260);
    found_ = new QTreeWidgetItem(tree_, {"On this computer"});
    recentGroup_ = new QTreeWidgetItem(tree_, {"Recent"});
    for (auto* group : {found_, recentGroup_}) {
        group->setFirstColumnSpanned(true);
        group->setFlags(Qt::ItemIsEnabled);
        group->setExpanded(true);
    }
    layout->addWidget(tree_, 1);

    auto* buttons = new QHBoxLayout;
    auto* addFolder = new QPushButton("Add model folder…");
    addFolder->setToolTip("A folder of models to list too: a diffusers folder, or a folder of them or of "
                          ".safetensors checkpoints (AUTOMATIC1111's models/Stable-diffusion, ComfyUI's "
                          "models/checkpoints, ...)");
    auto* editFolders = new QPushButton("Model folders…");
    auto* rescan = new QPushButton("Rescan");
    buttons->addWidget(addFolder);
    buttons->addWidget(editFolders);
    buttons->addWidget(rescan);
    buttons->addStretch(1);
    auto* box = new QDialogButtonBox(QDialogButtonBox::Close);
    open_ = box->addButton("Open", QDialogButtonBox::AcceptRole);
    open_->setEnabled(false);
    buttons->addWidget(box);
    layout->addLayout(buttons);

    if (persist_)
        folders_ = QSettings().value("modelFolders").toStringList();
    connect(addFolder, &QPushButton::clicked, this, &ModelBrowser::addFolder);
    connect(editFolders, &QPushButton::clicked, this, &ModelBrowser::editFolders);
    connect(rescan, &QPushButton::clicked, this, &ModelBrowser::rescan);
    connect(box, &QDialogButtonBox::rejected, this, &QDialog::reject);
    connect(open_, &QPushButton::clicked, this, [this] { openItem(tree_->currentItem()); });
    connect(tree_, &QTreeWidget::itemActivated, this, &ModelBrowser::openItem);
    connect(tree_, &QTreeWidget::currentItemChanged, this, [this](QTreeWidgetItem* item) {
        open_->setEnabled(item && !item->data(Name, Qt::UserRole).toString().isEmpty());
    });
}

ModelBrowser::~ModelBrowser() {
    // The scan holds no pointer into the dialog, but its thread object must not die running.
    if (scan_) {
        scan_->wait();
        delete scan_;
    }
}

void ModelBrowser::setFolders(const QStringList& folders) {
    folders_ = folders;
    folders_.removeAll(QString());
    folders_.removeDuplicates();
    if (persist_)
        QSettings().setValue("modelFolders", folders_);
}

void ModelBrowser::setRecent(const QStringList& recent) {
    recent_ = recent;
    fillRecent();
}

void ModelBrowser::rescan() {
    if (scan_)
        return;
    const QStringList folders = folders_ + environmentFolders();
    status_->setText(folders.isEmpty()
                         ? QString("Scanning the Hugging Face cache… Add the folders you keep checkpoints in "
                                   "with <i>Add model folder</i> (or in $SDLENS_MODELS).")
                         : "Scanning the Hugging Face cache and " + folders.join(", ").toHtmlEscaped() + "…");
    auto rows = std::make_shared<QVector<FoundModelRow>>();
    scan_ = QThread::create([folders, rows] { *rows = scan(folders); });
    connect(scan_, &QThread::finished, this, [this, rows, folders] {
        scan_->deleteLater();
        scan_ = nullptr;
        status_->setText(QString("%1 found in the Hugging Face cache%2. Greyed: not SD 1.x, or incomplete.")
                             .arg(rows->size())
                             .arg(folders.isEmpty() ? QString() : " and " + folders.join(", ").toHtmlEscaped()));
        showRows(*rows);
        emit scanFinished();
    });
    scan_->start();
}

void ModelBrowser::showRows(const QVector<FoundModelRow>& rows) {
    rows_ = rows;
    qDeleteAll(found_->takeChildren());
    for (const auto& r : rows)
        found_->addChild(makeItem(r, r.openable()));
    found_->setText(Name, QString("On this computer (%1)").arg(rows.size()));
    fillRecent();
}

void ModelBrowser::fillRecent() {
    qDeleteAll(recentGroup_->takeChildren());
    for (const QString& path : recent_) {
        FoundModelRow r;
        r.path = path;
        const QString canonical = QFileInfo(path).canonicalFilePath();
        for (const auto& known : rows_)
            if (known.error.isEmpty() && QFileInfo(known.path).canonicalFilePath() == canonical)
                r = known;
        const bool exists = QFileInfo::exists(path);
        if (r.layout.isEmpty()) {
            r.complete = exists;
            if (!exists)
                r.missing << "the folder or file is gone";
        }
        auto* item = makeItem(r, exists && (r.family.isEmpty() || r.openable()));
        if (r.layout.isEmpty() && exists)
            item->setText(Status, "opened before");
        recentGroup_->addChild(item);
    }
    recentGroup_->setText(Name, QString("Recent (%1)").arg(recent_.size()));
}

void ModelBrowser::editFolders() {
    bool ok = false;
    const QString text = QInputDialog::getMultiLineText(this, "Model folders", "One folder per line:",
                                                        folders_.join('\n'), &ok);
    if (!ok)
        return;
    QStringList folders;
    for (const QString& line : text.split('\n'))
        folders << line.trimmed();
    setFolders(folders);
    rescan();
}

void ModelBrowser::addFolder() {
    const QString dir = QFileDialog::getExistingDirectory(this, "A folder of models");
    if (dir.isEmpty())
        return;
    setFolders(folders_ + QStringList{dir});
    rescan();
}

void ModelBrowser::openItem(QTreeWidgetItem* item) {
    const QString path = item ? item->data(Name, Qt::UserRole).toString() : QString();
    if (path.isEmpty())
        return;
    emit openRequested(path);
    accept();
}

} // namespace sdlui
