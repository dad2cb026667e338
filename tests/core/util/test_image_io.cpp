#include "core/util/error.h"
#include "core/util/image_io.h"

#include <QTemporaryDir>
#include <QtTest>

#include <fstream>

class TestImageIo : public QObject {
    Q_OBJECT
private slots:
    void pngRoundTripKeepsPixelsAndText() {
        QTemporaryDir dir;
        sdl::Image8 img;
        img.width = 5;
        img.height = 3;
        img.channels = 3;
        for (int i = 0; i < 45; ++i)
            img.pixels.push_back(static_cast<uint8_t>(i * 5));
        const std::string path = dir.filePath("a.png").toStdString();
        const std::string params = "a dog wearing hat\nSteps: 50, Sampler: LMS, CFG scale: 7.5, Seed: 1, Size: 5x3";
        sdl::write_png(path, img, {{"parameters", params}});
        const auto back = sdl::read_image(path);
        QCOMPARE(back.width, 5);
        QCOMPARE(back.height, 3);
        QVERIFY(back.pixels == img.pixels);
        const auto text = sdl::read_png_text(path);
        QCOMPARE(QString::fromStdString(text.at("parameters")), QString::fromStdString(params));
        QVERIFY(!QFile::exists(QString::fromStdString(path) + ".tmp"));
    }
    void nonImageIsAnErrorNamingTheFile() {
        QTemporaryDir dir;
        const std::string path = dir.filePath("notes.txt").toStdString();
        std::ofstream(path) << "this is not an image";
        try {
            sdl::read_image(path);
            QFAIL("expected sdl::Error");
        } catch (const sdl::Error& e) {
            QVERIFY(QString(e.what()).contains("notes.txt"));
        }
    }
    void missingFileIsAnError() {
        QVERIFY_THROWS_EXCEPTION(sdl::Error, sdl::read_image("/nonexistent/x.png"));
    }
};

QTEST_GUILESS_MAIN(TestImageIo)
#include "test_image_io.moc"
