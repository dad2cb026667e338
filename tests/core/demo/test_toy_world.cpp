// The demo model's toy world: every scene reads back as what was drawn, scenes stay inside the picture,
// a seed always draws the same picture, and the captions are the ones the model is trained on.
#include "core/demo/toy_world.h"

#include <QtTest>

#include <set>

using namespace sdl::toy;

class TestToyWorld : public QObject {
    Q_OBJECT

private slots:
    void everySceneReadsBack() {
        std::mt19937_64 rng(7);
        for (size_t colour = 0; colour < kColours.size(); ++colour)
            for (Shape shape : kShapes)
                for (int i = 0; i < 4; ++i) {
                    const Scene s = random_scene(rng, static_cast<int>(colour), shape);
                    const Reading r = classify(render(s));
                    const QByteArray what = QByteArray::fromStdString(caption(s) + " at size " + std::to_string(s.size) +
                                                                      " fill " + std::to_string(r.fill));
                    QVERIFY2(r.found, what.constData());
                    QVERIFY2(r.colour == static_cast<int>(colour), what.constData());
                    QVERIFY2(r.shape == shape, what.constData());
                    QCOMPARE(r.mask.sizes().vec(), (std::vector<int64_t>{kImageSize, kImageSize}));
                    QCOMPARE(r.ink_pixels, static_cast<int>(r.mask.sum().item<int64_t>()));
                }
    }

    // The smallest and largest shapes, in the corners, are the hardest to read back.
    void extremesReadBack() {
        for (size_t colour = 0; colour < kColours.size(); ++colour)
            for (Shape shape : kShapes)
                for (int size : {kMinSize, kMaxSize})
                    for (int corner : {0, kImageSize - size}) {
                        const Scene s{static_cast<int>(colour), shape, corner, kImageSize - size - corner, size};
                        const Reading r = classify(render(s));
                        QVERIFY(r.found);
                        QCOMPARE(r.colour, static_cast<int>(colour));
                        QVERIFY2(r.shape == shape, caption(s).c_str());
                    }
    }

    void scenesStayInside() {
        std::mt19937_64 rng(3);
        std::set<int> colours, shapes;
        for (int i = 0; i < 2000; ++i) {
            const Scene s = random_scene(rng);
            QVERIFY(s.size >= kMinSize && s.size <= kMaxSize);
            QVERIFY(s.x >= 0 && s.x + s.size <= kImageSize);
            QVERIFY(s.y >= 0 && s.y + s.size <= kImageSize);
            colours.insert(s.colour);
            shapes.insert(static_cast<int>(s.shape));
        }
        QCOMPARE(colours.size(), kColours.size());
        QCOMPARE(shapes.size(), kShapes.size());
    }

    void seedGivesSameScene() {
        std::mt19937_64 a(42), b(42), c(43);
        bool differs = false;
        for (int i = 0; i < 20; ++i) {
            const Scene sa = random_scene(a), sb = random_scene(b), sc = random_scene(c);
            QCOMPARE(sa.colour, sb.colour);
            QVERIFY(sa.shape == sb.shape);
            QCOMPARE(sa.x, sb.x);
            QCOMPARE(sa.y, sb.y);
            QCOMPARE(sa.size, sb.size);
            QVERIFY(torch::equal(render(sa), render(sb)));
            differs |= sa.x != sc.x || sa.y != sc.y || sa.size != sc.size;
        }
        QVERIFY(differs);
    }

    void renderIsAPicture() {
        std::mt19937_64 rng(5);
        const auto img = render(random_scene(rng));
        QCOMPARE(img.sizes().vec(), (std::vector<int64_t>{3, kImageSize, kImageSize}));
        QCOMPARE(img.scalar_type(), torch::kFloat);
        QVERIFY(img.min().item<float>() >= 0 && img.max().item<float>() <= 1);
        // White outside the largest shape's box and its anti-aliased rim.
        const int64_t white = (img == 1).all(0).sum().item<int64_t>();
        QVERIFY(white >= kImageSize * kImageSize - (kMaxSize + 2) * (kMaxSize + 2));
    }

    void captions() {
        QCOMPARE(kCaptionCount, 12);
        QCOMPARE(QString::fromStdString(caption(0, Shape::circle)), QString("a red circle"));
        QCOMPARE(QString::fromStdString(caption(1, Shape::square)), QString("a green square"));
        QCOMPARE(QString::fromStdString(caption(2, Shape::triangle)), QString("a blue triangle"));
        QCOMPARE(QString::fromStdString(caption(3, Shape::triangle)), QString("a yellow triangle"));
        std::set<std::string> all;
        std::set<int> indices;
        for (size_t colour = 0; colour < kColours.size(); ++colour)
            for (Shape shape : kShapes) {
                all.insert(caption(static_cast<int>(colour), shape));
                indices.insert(caption_index(static_cast<int>(colour), shape));
            }
        QCOMPARE(all.size(), size_t(12));
        QCOMPARE(*indices.begin(), 0);
        QCOMPARE(*indices.rbegin(), 11);
        QCOMPARE(caption_index(0, Shape::square), 1);  // colour-major
        QCOMPARE(caption_index(1, Shape::circle), 3);
        QVERIFY(vocabulary().find("yellow") != std::string::npos);
        QVERIFY(vocabulary().find("triangle") != std::string::npos);
    }

    void whiteIsEmpty() {
        const Reading r = classify(torch::ones({3, kImageSize, kImageSize}));
        QVERIFY(!r.found);
        QCOMPARE(r.ink_pixels, 0);
        // A faint haze (what an undertrained model leaves) is not ink either.
        QVERIFY(!classify(torch::full({3, kImageSize, kImageSize}, 0.8)).found);
    }
};

QTEST_GUILESS_MAIN(TestToyWorld)
#include "test_toy_world.moc"
