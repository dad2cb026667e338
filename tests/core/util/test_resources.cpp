#include "core/util/error.h"
#include "core/util/resources.h"

#include <QtTest>

class TestResources : public QObject {
    Q_OBJECT
private slots:
    void findsBundledVocabulary() {
        const auto p = sdl::resource_path("clip/bpe_simple_vocab_16e6.txt.gz");
        QVERIFY(std::filesystem::exists(p));
    }
    void missingResourceNamesItself() {
        try {
            sdl::resource_path("no/such/file.bin");
            QFAIL("expected sdl::Error");
        } catch (const sdl::Error& e) {
            QVERIFY(QString(e.what()).contains("no/such/file.bin"));
        }
    }
};

QTEST_GUILESS_MAIN(TestResources)
#include "test_resources.moc"
