#include "ui/sample_image.h"

#include <QLinearGradient>
#include <QPainter>
#include <QPainterPath>

namespace sdlui {

QImage sampleImage(int size) {
    QImage img(size, size, QImage::Format_RGB888);
    QPainter p(&img);
    p.setRenderHint(QPainter::Antialiasing);
    p.scale(size / 256.0, size / 256.0);
    QLinearGradient sky(0, 0, 0, 170);
    sky.setColorAt(0, QColor(70, 130, 200));
    sky.setColorAt(1, QColor(190, 220, 245));
    p.fillRect(QRectF(0, 0, 256, 256), sky);
    p.setPen(Qt::NoPen);
    p.setBrush(QColor(255, 214, 80));
    p.drawEllipse(QPointF(195, 55), 26, 26);
    p.setBrush(QColor(92, 150, 70));
    p.drawEllipse(QPointF(60, 230), 150, 80);
    p.setBrush(QColor(60, 120, 55));
    p.drawEllipse(QPointF(230, 240), 140, 75);
    // The house: walls, roof, door and window give edges at several scales.
    p.setBrush(QColor(235, 225, 205));
    p.drawRect(QRectF(80, 150, 70, 55));
    QPainterPath roof;
    roof.moveTo(72, 152);
    roof.lineTo(115, 112);
    roof.lineTo(158, 152);
    roof.closeSubpath();
    p.setBrush(QColor(180, 50, 40));
    p.drawPath(roof);
    p.setBrush(QColor(90, 60, 40));
    p.drawRect(QRectF(106, 172, 18, 33));
    p.setBrush(QColor(120, 180, 230));
    p.drawRect(QRectF(88, 162, 14, 14));
    p.drawRect(QRectF(130, 162, 14, 14));
    p.setPen(QPen(QColor(255, 255, 255), 3));
    p.setBrush(Qt::NoBrush);
    p.drawArc(QRectF(20, 30, 50, 20), 0, 180 * 16);
    p.drawArc(QRectF(55, 35, 40, 16), 0, 180 * 16);
    p.end();
    return img;
}

QImage toyWorldSample(int size) {
    QImage img(size, size, QImage::Format_RGB888);
    img.fill(Qt::white);
    QPainter p(&img);
    p.setRenderHint(QPainter::Antialiasing);
    p.scale(size / 128.0, size / 128.0);
    p.setPen(Qt::NoPen);
    p.setBrush(QColor(220, 40, 40));
    p.drawEllipse(QRectF(34, 30, 64, 64));
    return img;
}

} // namespace sdlui
