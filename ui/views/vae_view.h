#pragma once
// Stage 8: an image through the VAE and back. Original | reconstruction | amplified |difference|
// with its colour scale, zoomed and panned together; PSNR, SSIM, max error and compression ratio.
#include "ui/worker/results.h"

#include <QGraphicsView>
#include <QWidget>

class QCustomPlot;
class QCPColorScale;
class QGraphicsPixmapItem;
class QLabel;
class QSpinBox;

namespace sdlui {

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

signals:
    void roundTripRequested(const QImage& image, const QString& name);

protected:
    void dragEnterEvent(QDragEnterEvent* e) override;
    void dropEvent(QDropEvent* e) override;

private:
    void updateDifference();
    void zoomAll(double factor);
    void fitAll();

    RoundTripResult result_;
    QString name_;
    QLabel* info_;
    QLabel* metrics_;
    QSpinBox* amplify_;
    ZoomView* views_[3];
    QCustomPlot* scalePlot_;
    QCPColorScale* scale_;
    bool syncing_ = false;
};

} // namespace sdlui
