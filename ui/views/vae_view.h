#pragma once
// Stage 8: an image through the VAE and back. Original | reconstruction | amplified |difference|
// with its colour scale, zoomed and panned together; PSNR, SSIM, max error and compression ratio.
// A second tab compares up to four VAEs (the model's own and three others) on the same image, or
// on the last generation's final latents: every reconstruction and difference, and per VAE the
// metrics and the latents' per-channel mean and spread.
#include "ui/worker/results.h"

#include <QGraphicsView>
#include <QWidget>

class QCustomPlot;
class QCPColorScale;
class QGraphicsPixmapItem;
class QGridLayout;
class QLabel;
class QListWidget;
class QPushButton;
class QSpinBox;
class QTabWidget;
class QTableWidget;
class QToolButton;

namespace sdlui {

class ImageView;

class ZoomView : public QGraphicsView {
    Q_OBJECT
public:
    explicit ZoomView(QWidget* parent = nullptr);
    void setImage(const QImage& image);

signals:
    void zoomBy(double factor);

protected:
    void wheelEvent(QWheelEvent* e) override;

private:
    QGraphicsPixmapItem* item_;
};

class VaeView : public QWidget {
    Q_OBJECT
public:
    explicit VaeView(QWidget* parent = nullptr);
    void setResult(const RoundTripResult& result);
    const RoundTripResult& result() const { return result_; }
    // Accepts an image from a file, a drop or the clipboard and asks for its round trip.
    void openImage(const QImage& image, const QString& name);
    // The file dialog; a file that is not an image is reported in the view.
    void chooseImage();

    // The VAEs to compare besides the model's own (paths of files or folders), at most three.
    static constexpr int kMaxOtherVaes = 3;
    QStringList otherVaes() const;
    void setOtherVaes(const QStringList& paths);
    // Offered first when adding a VAE.
    void setRecentVaes(const QStringList& paths);
    void setLastGenerationAvailable(bool available);
    void setComparison(const VaeComparison& comparison);
    const VaeComparison& comparison() const { return comparison_; }
    void comparisonFailed();
    // The round trip's image through the model's VAE and each other VAE (compareRequested()).
    void requestComparison();
    void showComparisonTab();

signals:
    void roundTripRequested(const QImage& image, const QString& name);
    // vaes: "" (the model's own) first, then otherVaes().
    void compareRequested(const QImage& image, const QStringList& vaes);
    void decodeWithVaesRequested(const QStringList& vaes);

protected:
    void dragEnterEvent(QDragEnterEvent* e) override;
    void dropEvent(QDropEvent* e) override;

private:
    QWidget* buildComparePage();
    void updateDifference();
    void updateComparisonImages();
    void zoomAll(double factor);
    void fitAll();
    void addOtherVae(const QString& path);
    void fillAddMenu();
    void setComparing(bool comparing);
    QStringList comparedVaes() const;

    RoundTripResult result_;
    QString name_;
    QLabel* info_;
    QLabel* metrics_;
    QSpinBox* amplify_;
    ZoomView* views_[3];
    QCustomPlot* scalePlot_;
    QCPColorScale* scale_;
    bool syncing_ = false;

    VaeComparison comparison_;
    QStringList recentVaes_;
    bool lastGeneration_ = false;
    QTabWidget* tabs_;
    QListWidget* otherVaes_;
    QToolButton* addVae_;
    QPushButton* removeVae_;
    QPushButton* compare_;
    QPushButton* decodeLast_;
    QLabel* compareInfo_;
    QGridLayout* compareGrid_;
    QVector<ImageView*> compareImages_;  // reference, then per VAE: reconstruction, difference
    QTableWidget* table_;
    QLabel* warnings_;
};

} // namespace sdlui
