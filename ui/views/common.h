#pragma once
// Small widgets the stage views share: an image that scales to fit with a caption, a strip of the
// four latent channels, and an inline message banner.
#include "ui/worker/results.h"

#include <QFrame>
#include <QImage>
#include <QWidget>

class QLabel;

namespace sdlui {

// One [h, w] channel as greyscale, lo -> black, hi -> white.
QImage greyImage(const FloatTensor& hw, float lo, float hi);
// Values in [0, 1] through a perceptual dark-to-bright colour ramp (the difference views).
QImage heatImage(const FloatTensor& hw, float scale);
QColor heatColor(double v);  // v in [0, 1]
// A VAE as the pickers and tables name it: "model's VAE" for "", a model folder's "vae" with the
// model's name ("sd15/vae"), else the file or folder name.
QString vaeName(const QString& path);

class ImageView : public QWidget {
    Q_OBJECT
public:
    explicit ImageView(QWidget* parent = nullptr);
    void setImage(const QImage& image);
    void setCaption(const QString& caption);
    // Latents are 1/8 of the image size: showing their pixels as blocks is honest, smoothing is not.
    void setPixelated(bool on);
    const QImage& image() const { return image_; }
    QSize sizeHint() const override { return {200, 220}; }
    QSize minimumSizeHint() const override { return {64, 80}; }

protected:
    void paintEvent(QPaintEvent*) override;

private:
    QImage image_;
    QString caption_;
    bool pixelated_ = false;
};

// The four latent channels side by side (article fig. 6), each with its value range.
class ChannelStrip : public QWidget {
    Q_OBJECT
public:
    // columns: 4 in a row, or 2 for a 2×2 grid where space is narrow.
    explicit ChannelStrip(const QString& title = QString(), int columns = 4, QWidget* parent = nullptr);
    // [4, h, w]; an empty tensor clears the strip. shared: one grey scale for all four channels.
    void setLatents(const FloatTensor& latents, bool sharedScale = false);
    void clear();
    QImage channel(int c) const;

private:
    QLabel* title_;
    ImageView* views_[4];
};

class Banner : public QFrame {
    Q_OBJECT
public:
    enum class Kind { Info, Warning, Error };
    explicit Banner(QWidget* parent = nullptr);
    void show(Kind kind, const QString& text);
    QString text() const;

private:
    QLabel* label_;
};

} // namespace sdlui
