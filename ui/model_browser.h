#pragma once
// "Models on this computer": what the Hugging Face cache and the model folders hold (from the
// Model folders setting and $SDLENS_MODELS), with layout, size, precision and what is missing,
// and the recent models. Only complete SD 1.x models can be opened; the rest are listed greyed,
// as what they are. The scan reads configs and headers only, but on its own thread: disks can be slow.
#include <QDialog>
#include <QStringList>
#include <QVector>

class QLabel;
class QPushButton;
class QThread;
class QTreeWidget;
class QTreeWidgetItem;

namespace sdlui {

// One model the scan found (see sdl::FoundModel), or a folder it could not read (error set).
struct FoundModelRow {
    QString id;         // hub repo id; empty for a folder or file
    QString path;
    QString layout;
    QString family;     // "sd1", "sd2", "sdxl", "vae", "lora", ...
    qint64 sizeBytes = 0;
    QString precision;
    bool complete = false;
    QStringList missing;
    QString error;

    bool openable() const { return error.isEmpty() && complete && family == "sd1"; }
};

class ModelBrowser : public QDialog {
    Q_OBJECT
public:
    // persist off: the model folders last for this session only (screenshots, tests).
    explicit ModelBrowser(bool persist, QWidget* parent = nullptr);
    ~ModelBrowser() override;

    QStringList folders() const { return folders_; }
    void setFolders(const QStringList& folders);
    void setRecent(const QStringList& recent);
    // Lists again; the rows arrive when the scan's thread is done (scanFinished()).
    void rescan();
    bool isScanning() const { return scan_ != nullptr; }

signals:
    void openRequested(const QString& path);
    void scanFinished();

private:
    void showRows(const QVector<FoundModelRow>& rows);
    void fillRecent();
    void editFolders();
    void addFolder();
    void openItem(QTreeWidgetItem* item);

    bool persist_;
    QStringList folders_;
    QStringList recent_;
    QVector<FoundModelRow> rows_;
    QThread* scan_ = nullptr;
    QLabel* status_;
    QTreeWidget* tree_;
    QTreeWidgetItem* found_;
    QTreeWidgetItem* recentGroup_;
    QPushButton* open_;
};

} // namespace sdlui
