#include "ui/views/common.h"

#include <QDir>
#include <QFileInfo>
#include <QGridLayout>
#include <QHBoxLayout>
#include <QLabel>
#include <QPainter>
#include <QToolButton>
#include <QVBoxLayout>

#include <algorithm>
#include <cmath>

namespace sdlui {

QImage greyImage(const FloatTensor& hw, float lo, float hi) {
    const int h = hw.dim(0), w = hw.dim(1);
    QImage img(w, h, QImage::Format_Grayscale8);
    const float span = hi > lo ? hi - lo : 1.f;
    for (int y = 0; y < h; ++y) {
        uchar* line = img.scanLine(y);
        for (int x = 0; x < w; ++x) {
            const float v = (hw.values[y * w + x] - lo) / span;
            line[x] = uchar(std::clamp(std::lround(v * 255.f), 0L, 255L));
        }
    }
    return img;
}

QColor heatColor(double v) {
    // Piecewise-linear through black, purple, orange and pale yellow: monotone in lightness, so a
    // larger difference always reads as brighter.
    static const QColor stops[] = {QColor(0, 0, 4), QColor(120, 28, 109), QColor(237, 105, 37),
                                   QColor(252, 255, 164)};
    v = std::clamp(v, 0.0, 1.0) * 3.0;
    const int i = std::min(2, int(v));
    const double f = v - i;
    const QColor& a = stops[i];
    const QColor& b = stops[i + 1];
    return QColor(int(a.red() + f * (b.red() - a.red())), int(a.green() + f * (b.green() - a.green())),
                  int(a.blue() + f * (b.blue() - a.blue())));
}

QImage heatImage(const FloatTensor& hw, float scale) {
    const int h = hw.dim(0), w = hw.dim(1);
    QImage img(w, h, QImage::Format_RGB32);
    for (int y = 0; y < h; ++y) {
        auto* line = reinterpret_cast<QRgb*>(img.scanLine(y));
        for (int x = 0; x < w; ++x)
            line[x] = heatColor(hw.values[y * w + x] * scale).rgb();
    }
    return img;
}

QString vaeName(const QString& path) {
    if (path.isEmpty())
        return QStringLiteral("model's VAE");
    const QFileInfo info(path);
    if (info.fileName() == "vae")
        return info.dir().dirName() + "/vae";
    return info.fileName();
}

ImageView::ImageView(QWidget* parent) : QWidget(parent) {
    setSizePolicy(QSizePolicy::Expanding, QSizePolicy::Expanding);
}

void ImageView::setImage(const QImage& image) {
    image_ = image;
    update();
}

void ImageView::setCaption(const QString& caption) {
    caption_ = caption;
    update();
}

void ImageView::setPixelated(bool on) {
    pixelated_ = on;
    update();
}

void ImageView::paintEvent(QPaintEvent*) {
    QPainter p(this);
    const int captionHeight = caption_.isEmpty() ? 0 : fontMetrics().height() * (1 + caption_.count('\n')) + 4;
    const QRect area = rect().adjusted(2, 2, -2, -2 - captionHeight);
    if (image_.isNull()) {
        p.setPen(QPen(palette().mid().color(), 1, Qt::DashLine));
        p.drawRect(area);
    } else {
        QSize s = image_.size().scaled(area.size(), Qt::KeepAspectRatio);
        const QRect target(area.x() + (area.width() - s.width()) / 2, area.y() + (area.height() - s.height()) / 2,
                           s.width(), s.height());
        p.setRenderHint(QPainter::SmoothPixmapTransform, !pixelated_);
        p.drawImage(target, image_);
    }
    if (captionHeight) {
        p.setPen(palette().text().color());
        p.drawText(QRect(0, height() - captionHeight, width(), captionHeight), Qt::AlignHCenter | Qt::AlignTop,
                   caption_);
    }
}

ChannelStrip::ChannelStrip(const QString& title, int columns, QWidget* parent) : QWidget(parent) {
    auto* layout = new QVBoxLayout(this);
    layout->setContentsMargins(0, 0, 0, 0);
    title_ = new QLabel(title);
    title_->setVisible(!title.isEmpty());
    layout->addWidget(title_);
    auto* grid = new QGridLayout;
    for (int c = 0; c < 4; ++c) {
        views_[c] = new ImageView;
        views_[c]->setPixelated(true);
        grid->addWidget(views_[c], c / columns, c % columns);
    }
    layout->addLayout(grid, 1);
}

void ChannelStrip::setLatents(const FloatTensor& latents, bool sharedScale) {
    if (latents.shape.size() != 3 || latents.dim(0) != 4) {
        clear();
        return;
    }
    const auto all = latents.range();
    for (int c = 0; c < 4; ++c) {
        const FloatTensor ch = latents.slice(c);
        const auto r = sharedScale ? all : ch.range();
        const auto own = ch.range();
        views_[c]->setImage(greyImage(ch, r.first, r.second));
        views_[c]->setCaption(QString("ch %1 [%2, %3]")
                                  .arg(c).arg(own.first, 0, 'g', 3).arg(own.second, 0, 'g', 3));
    }
}

void ChannelStrip::clear() {
    for (auto* v : views_) {
        v->setImage(QImage());
        v->setCaption(QString());
    }
}

QImage ChannelStrip::channel(int c) const { return views_[c]->image(); }

Banner::Banner(QWidget* parent) : QFrame(parent) {
    setFrameShape(QFrame::StyledPanel);
    auto* layout = new QHBoxLayout(this);
    layout->setContentsMargins(8, 4, 4, 4);
    label_ = new QLabel;
    label_->setWordWrap(true);
    label_->setTextInteractionFlags(Qt::TextSelectableByMouse | Qt::LinksAccessibleByMouse);
    label_->setOpenExternalLinks(true);
    layout->addWidget(label_, 1);
    auto* close = new QToolButton;
    close->setText("✕");
    close->setAutoRaise(true);
    close->setToolTip("Dismiss");
    connect(close, &QToolButton::clicked, this, &QWidget::hide);
    layout->addWidget(close, 0, Qt::AlignTop);
    hide();
}

void Banner::show(Kind kind, const QString& text) {
    const char* colors[] = {"#e6f0fb", "#fff4d6", "#fde4e1"};
    const char* borders[] = {"#9dbfe6", "#e8c25c", "#e0897d"};
    const int k = int(kind);
    setStyleSheet(QString("sdlui--Banner { background: %1; border: 1px solid %2; border-radius: 4px; }"
                          " QLabel { color: #222; }")
                      .arg(colors[k], borders[k]));
    label_->setText(text);
    QWidget::show();
}

QString Banner::text() const { return label_->text(); }

} // namespace sdlui
