// The settings dock's pickers without a model: the VAE picker's memory per model, the model
// browser's scan of a folder (off the UI thread) and what it lets the user open.
#include "ui/model_browser.h"
#include "ui/settings_panel.h"

#include <QComboBox>
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
