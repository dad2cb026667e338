// The settings dock's pickers without a model: the VAE picker's and the LoRA list's memory per model,
// the demo's settings, when the demo folder is made again, the model browser's scan of a folder (off
// the UI thread) and what it lets the user open.
#include "ui/lora_panel.h"
#include "ui/model_browser.h"
#include "ui/model_picker.h"
#include "ui/settings_panel.h"

#include <QCheckBox>
#include <QComboBox>
#include <QDir>
#include <QDoubleSpinBox>
#include <QFile>
#include <QLabel>
#include <QPushButton>
#include <QScopeGuard>
#include <QSettings>
#include <QSlider>
#include <QSignalSpy>
#include <QTemporaryDir>
#include <QTreeWidget>
#include <QtTest>

using namespace sdlui;

namespace {
QStringList comboTexts(const QComboBox* combo) {
    QStringList out;
    for (int i = 0; i < combo->count(); ++i)
        out << combo->itemText(i);
    return out;
}

QList<QTreeWidgetItem*> rowsUnder(QTreeWidget* tree, const QString& groupPrefix) {
    QList<QTreeWidgetItem*> out;
    for (int g = 0; g < tree->topLevelItemCount(); ++g) {
        QTreeWidgetItem* group = tree->topLevelItem(g);
        if (group->text(0).startsWith(groupPrefix))
            for (int i = 0; i < group->childCount(); ++i)
                out << group->child(i);
    }
    return out;
}
} // namespace

class TestPickers : public QObject {
    Q_OBJECT
private slots:
    void vaePickerRemembersPerModel() {
        SettingsPanel panel(false);
        auto* combo = panel.findChild<QComboBox*>("vaePicker");
        QVERIFY(combo);
        QCOMPARE(combo->currentText(), QString("Model's VAE"));
        QVERIFY(comboTexts(combo).contains("VAE file…"));
        QVERIFY(comboTexts(combo).contains("VAE folder…"));

        panel.rememberVae("/models/a", "/vaes/ft-mse.safetensors");
        QCOMPARE(panel.vaeFor("/models/a"), QString("/vaes/ft-mse.safetensors"));
        QVERIFY(panel.vaeFor("/models/b").isEmpty());
        QCOMPARE(combo->currentText(), QString("ft-mse.safetensors"));
        QCOMPARE(panel.recentVaes(), QStringList{"/vaes/ft-mse.safetensors"});

        // Another model shows its own VAE; the recent one stays offered.
        panel.showVae("/models/b", QString());
        QCOMPARE(combo->currentText(), QString("Model's VAE"));
        QVERIFY(comboTexts(combo).contains("ft-mse.safetensors"));

        // Picking a recent VAE asks for it; picking the one in use asks nothing.
        QSignalSpy chosen(&panel, &SettingsPanel::vaeChosen);
        combo->activated(combo->findText("ft-mse.safetensors"));
        QCOMPARE(chosen.size(), 1);
        QCOMPARE(chosen.first().first().toString(), QString("/vaes/ft-mse.safetensors"));
        panel.showVae("/models/b", QString());
        combo->activated(0);
        QCOMPARE(chosen.size(), 1);

        // Going back to the model's own VAE forgets the choice for that model.
        panel.rememberVae("/models/a", QString());
        QVERIFY(panel.vaeFor("/models/a").isEmpty());
    }

    void demoSettingsLastUntilAnotherModel() {
        SettingsPanel panel(false);
        bool offersLcm = false;
        for (const auto* combo : panel.findChildren<QComboBox*>())
            offersLcm = offersLcm || comboTexts(combo).contains("lcm");
        QVERIFY(offersLcm);
        const auto run = [&] {
            const GenerateSettings s = panel.settings();
            return QStringList{QString::number(s.width), QString::number(s.height), QString::number(s.steps),
                               s.scheduler, QString::number(s.guidance)};
        };
        const QStringList user{"512", "512", "50", "lms", "7.5"};
        QCOMPARE(run(), user);
        panel.useDemoSettings(128, 20, "dpmpp_2m", 5);
        QCOMPARE(run(), (QStringList{"128", "128", "20", "dpmpp_2m", "5"}));
        QTemporaryDir dir;
        QSettings saved(dir.filePath("settings.ini"), QSettings::IniFormat);
        panel.save(saved);
        // the user's, not the demo's
        QCOMPARE((QStringList{saved.value("width").toString(), saved.value("height").toString(),
                              saved.value("steps").toString(), saved.value("scheduler").toString(),
                              saved.value("guidance").toString()}),
                 user);
        // The demo reloaded (another precision) must not take its own values for the user's.
        panel.useDemoSettings(128, 20, "dpmpp_2m", 5);
        panel.useUserSettings();
        QCOMPARE(run(), user);
        panel.useUserSettings();
        QCOMPARE(run(), user);
        // Settings given for the next load (a trace, --screenshots) are not replaced by the demo's.
        panel.setRunSettings("ddim", 10, 256, 256, 1);
        panel.useDemoSettings(128, 20, "dpmpp_2m", 5);
        QCOMPARE(run(), (QStringList{"256", "256", "10", "ddim", "7.5"}));
    }

    // The demo folder is made again unless its sdlens_demo.json matches the bundled demo.json.
    void demoFolderIsRemadeWhenTheBundledWeightsChange() {
        QTemporaryDir resources, folder;
        const QByteArray old = qgetenv("SDLENS_RESOURCES");
        qputenv("SDLENS_RESOURCES", resources.path().toUtf8());
        const auto restore = qScopeGuard([old] { qputenv("SDLENS_RESOURCES", old); });
        const auto write = [](const QString& path, const QByteArray& text) {
            QFile f(path);
            QVERIFY(f.open(QIODevice::WriteOnly | QIODevice::Truncate));
            f.write(text);
        };
        QVERIFY(QDir(resources.path()).mkpath("demo"));
        const QByteArray bundled = R"({"vocabulary": "a <shape>", "training": {"unet_steps": 2500, "seconds": 61.5},
                                       "unet_config": {}, "text_encoder_config": {}, "vae_config": {}})";
        write(resources.filePath("demo/demo.json"), bundled);
        const QString path = folder.path();

        QVERIFY(!ModelPicker::demoIsCurrent(path));  // empty
        write(folder.filePath("model_index.json"), "{}");
        QVERIFY(!ModelPicker::demoIsCurrent(path));  // made by an older version: random weights, no marker
        write(folder.filePath("sdlens_demo.json"), R"({"training": {"seconds": 61.5, "unet_steps": 2500},
                                                       "vocabulary": "a <shape>"})");
        QVERIFY(ModelPicker::demoIsCurrent(path));
        QCOMPARE(ModelPicker::demoVocabulary(path), QString("a <shape>"));
        write(folder.filePath("sdlens_demo.json"), R"({"training": {"seconds": 60, "unet_steps": 2500},
                                                       "vocabulary": "a <shape>"})");
        QVERIFY(!ModelPicker::demoIsCurrent(path));  // trained again
        write(folder.filePath("sdlens_demo.json"), "{\"vocabulary\": ");
        QVERIFY(!ModelPicker::demoIsCurrent(path));  // cut short
        QVERIFY(ModelPicker::demoVocabulary(path).isEmpty());
    }

    void loraListRemembersPerModel() {
        LoraPanel panel(false);
        for (auto* b : panel.findChildren<QPushButton*>())
            QVERIFY2(!b->isEnabled(), qPrintable(b->text() + " works without a model"));
        QSignalSpy loras(&panel, &LoraPanel::lorasChanged);
        QSignalSpy embeddings(&panel, &LoraPanel::embeddingsChanged);
        panel.setModel("/models/a");
        panel.addLora("/loras/ink.safetensors", 0.8);
        panel.addLora("/loras/detail.safetensors");
        QCOMPARE(loras.size(), 2);
        auto applied = loras.last().first().value<QVector<LoraChoice>>();
        QCOMPARE(applied.size(), 2);
        QCOMPARE(applied[0].path, QString("/loras/ink.safetensors"));
        QCOMPARE(applied[0].strength, 0.8);

        // Off: no longer applied, still listed and remembered with its strength.
        panel.setLoraEnabled("/loras/detail.safetensors", false);
        QCOMPARE(loras.size(), 3);
        QCOMPARE(loras.last().first().value<QVector<LoraChoice>>().size(), 1);
        QCOMPARE(panel.findChildren<QCheckBox*>("loraEnabled").size(), 2);

        // The slider and the number move together; re-applying waits until the strength settles.
        auto* value = panel.findChildren<QDoubleSpinBox*>("loraStrengthValue").first();
        auto* slider = panel.findChildren<QSlider*>("loraStrength").first();
        QCOMPARE(slider->value(), 80);
        slider->setValue(-150);
        QCOMPARE(value->value(), -1.5);
        slider->setValue(-120);
        QCOMPARE(loras.size(), 3);
        QTRY_COMPARE_WITH_TIMEOUT(loras.size(), 4, 3000);
        QCOMPARE(loras.last().first().value<QVector<LoraChoice>>().first().strength, -1.2);

        panel.addEmbedding("/emb/redfox.safetensors");
        QCOMPARE(embeddings.size(), 1);
        QCOMPARE(panel.embeddingsFor("/models/a"), QStringList{"/emb/redfox.safetensors"});
        panel.showLoaded({TextualInversion{"/emb/redfox.safetensors", "redfox", 2, "kohya (emb_params)"}});
        QString labels;
        for (auto* l : panel.findChildren<QLabel*>())
            labels += l->text();
        QVERIFY(labels.contains("redfox · 2 vectors"));

        // Another model has its own lists; the first keeps its own.
        panel.setModel("/models/b");
        QVERIFY(panel.enabledLoras().isEmpty());
        QVERIFY(panel.findChildren<QCheckBox*>("loraEnabled").isEmpty());
        QVERIFY(panel.lorasFor("/models/b").isEmpty());
        QCOMPARE(panel.lorasFor("/models/a").size(), 1);
        QCOMPARE(panel.lorasFor("/models/a").first().strength, -1.2);
        panel.setModel("/models/a");
        QCOMPARE(panel.findChildren<QCheckBox*>("loraEnabled").size(), 2);

        // A file the worker refused leaves the list.
        panel.dropLora("/loras/ink.safetensors");
        panel.dropEmbedding("/emb/redfox.safetensors");
        QVERIFY(panel.lorasFor("/models/a").isEmpty());
        QCOMPARE(panel.findChildren<QCheckBox*>("loraEnabled").size(), 1);
        QVERIFY(panel.embeddingsFor("/models/a").isEmpty());
    }

    void browserListsAFolderOffTheUiThread() {
        QTemporaryDir emptyCache;
        qputenv("HF_HUB_CACHE", emptyCache.path().toUtf8());
        ModelBrowser browser(false);
        browser.setFolders({SDLENS_TEST_DATA});
        browser.setRecent({SDLENS_TEST_DATA "/tiny-sd", SDLENS_TEST_DATA "/gone-model"});
        QSignalSpy done(&browser, &ModelBrowser::scanFinished);
        browser.rescan();
        QVERIFY(browser.isScanning());
        QTRY_VERIFY_WITH_TIMEOUT(!done.isEmpty(), 30000);
        QVERIFY(!browser.isScanning());

        auto* tree = browser.findChild<QTreeWidget*>();
        QTreeWidgetItem* tiny = nullptr;
        for (QTreeWidgetItem* item : rowsUnder(tree, "On this computer")) {
            if (item->text(0) == "tiny-sd")
                tiny = item;
            else if (item->text(2) != "SD 1.x")
                QVERIFY2(!(item->flags() & Qt::ItemIsEnabled), qPrintable(item->text(0) + " can be opened"));
        }
        QVERIFY(tiny);
        QCOMPARE(tiny->text(1), QString("diffusers"));
        QCOMPARE(tiny->text(2), QString("SD 1.x"));
        QCOMPARE(tiny->text(5), QString("complete"));
        QVERIFY(tiny->flags() & Qt::ItemIsEnabled);

        const auto recent = rowsUnder(tree, "Recent");
        QCOMPARE(recent.size(), 2);
        QVERIFY(recent[0]->flags() & Qt::ItemIsEnabled);
        QCOMPARE(recent[0]->text(1), QString("diffusers"));  // what the scan found about it
        QVERIFY(!(recent[1]->flags() & Qt::ItemIsEnabled));

        QSignalSpy open(&browser, &ModelBrowser::openRequested);
        tree->itemActivated(tiny, 0);
        QCOMPARE(open.size(), 1);
        QCOMPARE(QFileInfo(open.first().first().toString()).canonicalFilePath(),
                 QFileInfo(SDLENS_TEST_DATA "/tiny-sd").canonicalFilePath());
    }

    void browserReportsAMissingFolder() {
        QTemporaryDir emptyCache;
        qputenv("HF_HUB_CACHE", emptyCache.path().toUtf8());
        ModelBrowser browser(false);
        browser.setFolders({SDLENS_TEST_DATA "/no-such-folder"});
        QSignalSpy done(&browser, &ModelBrowser::scanFinished);
        browser.rescan();
        QTRY_VERIFY_WITH_TIMEOUT(!done.isEmpty(), 30000);
        const auto rows = rowsUnder(browser.findChild<QTreeWidget*>(), "On this computer");
        QCOMPARE(rows.size(), 1);
        QVERIFY(rows[0]->text(0).endsWith("no-such-folder"));
        QVERIFY(!rows[0]->text(5).isEmpty());
        QVERIFY(!(rows[0]->flags() & Qt::ItemIsEnabled));
    }
};

QTEST_MAIN(TestPickers)
#include "test_pickers.moc"
