// Repo ids typed as a model: found offline in a hub cache laid out as huggingface_hub writes it, the
// same tensors as the plain folder, revisions by ref and by commit, the cache folder chosen by the
// same variables in the same order, and every way a cache entry can be absent or damaged refused
// on one line that says how to fetch it.
#include "core/io/hf_cache.h"
#include "core/io/model_files.h"
#include "core/util/error.h"
#include "tests/core/io/fake_hub.h"

#include <QDir>
#include <QTemporaryDir>
#include <QtTest>

#include <cstring>
#include <filesystem>
#include <map>

namespace fs = std::filesystem;

namespace {

const std::string kData = SDLENS_TEST_DATA;
const std::string kFolder = kData + "/tiny-sd";
const std::string kMain = "0123456789abcdef0123456789abcdef01234567";
const std::string kV1 = "fedcba9876543210fedcba9876543210fedcba98";
const char* const kVars[] = {"HF_HUB_CACHE", "HF_HOME", "XDG_CACHE_HOME", "HOME"};

// Exactly the given cache variables set, the others unset.
void use_env(const std::map<std::string, std::string>& vars) {
    for (const char* v : kVars)
        qunsetenv(v);
    for (const auto& [k, v] : vars)
        qputenv(k.c_str(), QByteArray::fromStdString(v));
}

QString error_of(const std::string& model) {
    try {
        sdl::open_model_files(model);
    } catch (const sdl::Error& e) {
        return QString::fromStdString(e.what());
    }
    return {};
}

} // namespace

class TestHfCache : public QObject {
    Q_OBJECT
    QTemporaryDir dir_;
    std::map<std::string, std::string> saved_env_;
    fs::path cache_;

    fs::path tmp(const std::string& name) const { return fs::path(dir_.path().toStdString()) / name; }

    void expect_error(const std::string& model, const QStringList& fragments) {
        const QString msg = error_of(model);
        QVERIFY2(!msg.isEmpty(), ("no error for " + model).c_str());
        QVERIFY2(!msg.contains('\n'), qPrintable("not one line: " + msg));
        for (const auto& f : fragments)
            QVERIFY2(msg.contains(f), qPrintable("message lacks '" + f + "': " + msg));
    }

    void same_tensors(const sdl::ModelFiles& a, const sdl::ModelFiles& b) {
        for (auto [ca, cb] : {std::pair{&a.text_encoder, &b.text_encoder}, {&a.unet, &b.unet}, {&a.vae, &b.vae}}) {
            QCOMPARE(cb->tensors.size(), ca->tensors.size());
            for (const auto& [name, va] : ca->tensors) {
                QVERIFY2(cb->tensors.count(name), name.c_str());
                const auto& vb = cb->tensors.at(name);
                QVERIFY2(va.dtype == vb.dtype && va.shape == vb.shape && va.nbytes == vb.nbytes, name.c_str());
                QVERIFY2(std::memcmp(va.data, vb.data, va.nbytes) == 0, name.c_str());
            }
            QCOMPARE(cb->config, ca->config);
        }
    }

private slots:
    void initTestCase() {
        QVERIFY(dir_.isValid());
        for (const char* v : kVars)
            if (qEnvironmentVariableIsSet(v))
                saved_env_[v] = qgetenv(v).toStdString();
        cache_ = tmp("hub");
        sdl::test::add_hub_snapshot(cache_, "owner", "tiny", kFolder, kMain);
        sdl::test::add_hub_snapshot(cache_, "owner", "tiny", kFolder, kV1, "v1");
    }

    void cleanupTestCase() { use_env(saved_env_); }

    void opensLikeThePlainFolder() {
        use_env({{"HF_HUB_CACHE", cache_.string()}});
        const auto hub = sdl::open_model_files("owner/tiny");
        const auto plain = sdl::open_model_files(kFolder);
        QCOMPARE(hub.repo_id, std::string("owner/tiny"));
        QVERIFY(plain.repo_id.empty());
        QCOMPARE(fs::path(hub.path), cache_ / "models--owner--tiny" / "snapshots" / kMain);
        QCOMPARE(hub.layout, sdl::ModelLayout::DiffusersFolder);
        // Read through the links, not from a copy.
        QVERIFY(fs::is_symlink(hub.unet.files.front()->path()));
        same_tensors(plain, hub);
        QCOMPARE(hub.scheduler_config, plain.scheduler_config);
        QVERIFY(hub.tokenizer.vocab_json.rfind(hub.path, 0) == 0);
    }

    void revisions() {
        use_env({{"HF_HUB_CACHE", cache_.string()}});
        const fs::path snapshots = cache_ / "models--owner--tiny" / "snapshots";
        const auto v1 = sdl::open_model_files("owner/tiny@v1");
        QCOMPARE(fs::path(v1.path), snapshots / kV1);
        QCOMPARE(v1.repo_id, std::string("owner/tiny@v1"));
        // A commit hash names its snapshot directly, with no ref file.
        QCOMPARE(fs::path(sdl::open_model_files("owner/tiny@" + kMain).path), snapshots / kMain);
        // A pull-request ref lives under refs/refs/pr/.
        sdl::test::write_ref(cache_ / "models--owner--tiny", "refs/pr/1", kV1);
        QCOMPARE(fs::path(sdl::open_model_files("owner/tiny@refs/pr/1").path), snapshots / kV1);

        expect_error("owner/tiny@nope", {"revision 'nope' is not in the Hugging Face cache", "cached: main, v1",
                                         "huggingface-cli download owner/tiny --revision nope"});
        const std::string absent(40, 'c');
        expect_error("owner/tiny@" + absent, {"commit " + QString::fromStdString(absent) + " is not in the",
                                              "--revision " + QString::fromStdString(absent)});
    }

    void notInTheCacheSaysWhereAndHowToFetch() {
        use_env({{"HF_HUB_CACHE", cache_.string()}, {"HOME", tmp("home").string()}});
        expect_error("owner/missing",
                     {QString::fromStdString((cache_ / "models--owner--missing").string()), "$HF_HUB_CACHE",
                      "never downloads", "`huggingface-cli download owner/missing`"});
        use_env({{"HF_HOME", tmp("hf-home").string()}});
        expect_error("owner/missing@v2", {QString::fromStdString((tmp("hf-home") / "hub").string()), "$HF_HOME/hub",
                                          "huggingface-cli download owner/missing --revision v2"});
        use_env({{"HOME", tmp("home").string()}});
        expect_error("owner/missing",
                     {QString::fromStdString((tmp("home") / ".cache/huggingface/hub/models--owner--missing").string()),
                      "~/.cache/huggingface/hub", "HF_HUB_CACHE, HF_HOME and XDG_CACHE_HOME being unset"});
        use_env({});
        expect_error("owner/missing", {"HF_HUB_CACHE, HF_HOME, XDG_CACHE_HOME and HOME are all unset"});
    }

    void refNamingAMissingSnapshot() {
        use_env({{"HF_HUB_CACHE", cache_.string()}});
        const fs::path repo = cache_ / "models--owner--gone";
        sdl::test::add_hub_snapshot(cache_, "owner", "gone", kFolder + "/scheduler", kMain);
        const std::string other(40, 'a');
        sdl::test::write_ref(repo, "main", other);
        expect_error("owner/gone", {QString::fromStdString((repo / "refs" / "main").string()),
                                    "names snapshot " + QString::fromStdString(other),
                                    QString::fromStdString((repo / "snapshots" / other).string()) + " is missing",
                                    "huggingface-cli download owner/gone"});
        sdl::test::write_ref(repo, "main", "not a hash\n\x01");
        expect_error("owner/gone", {"expected a 40-character commit hash, found 'not a hash?" "?'",
                                    "huggingface-cli download owner/gone"});
    }

    void brokenLinkNamesTheFileAndItsBlob() {
        use_env({{"HF_HUB_CACHE", cache_.string()}});
        const fs::path snap = sdl::test::add_hub_snapshot(cache_, "owner", "broken", kFolder, kMain);
        const fs::path link = snap / "unet" / "diffusion_pytorch_model.safetensors";
        const fs::path target = fs::read_symlink(link);
        QVERIFY(target.string().rfind("../../../blobs/", 0) == 0);
        QVERIFY(sdl::broken_model_links(snap.string()).empty());
        fs::remove(link.parent_path() / target);

        const auto broken = sdl::broken_model_links(snap.string());
        QCOMPARE(broken.size(), size_t(1));
        QCOMPARE(broken[0].file, std::string("unet/diffusion_pytorch_model.safetensors"));
        QCOMPARE(broken[0].target, target.string());
        expect_error("owner/broken", {QString::fromStdString(link.string()) + ": links to " +
                                          QString::fromStdString(target.string()) + ", which is missing",
                                      "the download of owner/broken was interrupted",
                                      "huggingface-cli download owner/broken"});
    }

    void snapshotWithoutModelIndex() {
        use_env({{"HF_HUB_CACHE", cache_.string()}});
        sdl::test::add_hub_snapshot(cache_, "owner", "unet-only", kFolder + "/unet", kMain);
        expect_error("owner/unet-only", {"has no model_index.json", "huggingface-cli download owner/unet-only"});
    }

    void cacheFolderPrecedence() {
        use_env({{"HF_HUB_CACHE", "/a"}, {"HF_HOME", "/b"}, {"XDG_CACHE_HOME", "/c"}, {"HOME", "/d"}});
        auto expect = [](const std::string& path, const std::string& by) {
            const auto c = sdl::hub_cache_dir();
            QCOMPARE(c.path, path);
            QCOMPARE(c.chosen_by, by);
        };
        expect("/a", "HF_HUB_CACHE");
        qunsetenv("HF_HUB_CACHE");
        expect("/b/hub", "HF_HOME");
        qunsetenv("HF_HOME");
        expect("/c/huggingface/hub", "XDG_CACHE_HOME");
        qunsetenv("XDG_CACHE_HOME");
        expect("/d/.cache/huggingface/hub", "HOME");
        // huggingface_hub expands "~" in its variables; so do we.
        qputenv("HF_HOME", "~/hf");
        expect("/d/hf/hub", "HF_HOME");
        // An empty variable counts as unset.
        qputenv("HF_HUB_CACHE", "");
        expect("/d/hf/hub", "HF_HOME");
        qunsetenv("HF_HOME");
        qunsetenv("HOME");
        QVERIFY_THROWS_EXCEPTION(sdl::Error, sdl::hub_cache_dir());

        // The same cache, reached through each variable.
        fs::create_directories(tmp("hf-home"));
        fs::create_directory_symlink(cache_, tmp("hf-home") / "hub");
        fs::create_directories(tmp("xdg") / "huggingface");
        fs::create_directory_symlink(cache_, tmp("xdg") / "huggingface" / "hub");
        fs::create_directories(tmp("home") / ".cache" / "huggingface");
        fs::create_directory_symlink(cache_, tmp("home") / ".cache" / "huggingface" / "hub");
        for (const auto& env : std::vector<std::map<std::string, std::string>>{
                 {{"HF_HOME", tmp("hf-home").string()}, {"HOME", "/nowhere"}},
                 {{"XDG_CACHE_HOME", tmp("xdg").string()}, {"HOME", "/nowhere"}},
                 {{"HOME", tmp("home").string()}}}) {
            use_env(env);
            QCOMPARE(sdl::open_model_files("owner/tiny").repo_id, std::string("owner/tiny"));
        }
        // HF_HUB_CACHE wins over a HOME whose cache has the repo.
        use_env({{"HF_HUB_CACHE", tmp("empty").string()}, {"HOME", tmp("home").string()}});
        expect_error("owner/tiny", {"$HF_HUB_CACHE", "huggingface-cli download owner/tiny"});
    }

    void parsesOnlyRepoIds_data() {
        QTest::addColumn<QString>("text");
        QTest::addColumn<bool>("valid");
        for (const char* ok : {"owner/name", "CompVis/stable-diffusion-v1-4", "a.b/c_d-e", "owner/name@main",
                               "owner/name@refs/pr/3", "owner/name@v1.0"})
            QTest::newRow(ok) << ok << true;
        for (const char* bad : {"name", "/owner/name", "./owner/name", "~/owner/name", "owner/name/extra", "owner/",
                                "/name", "owner/na me", "own..er/name", "owner/..", "owner/na--me", ".owner/name",
                                "-owner/name", "owner/name@", "owner/name@../x", "owner/name@a//b", "owner/name@-x",
                                "owner/name@x@y", "", "/", "@"})
            QTest::newRow(bad) << bad << false;
    }

    void parsesOnlyRepoIds() {
        QFETCH(QString, text);
        QFETCH(bool, valid);
        const auto r = sdl::parse_repo_id(text.toStdString());
        QCOMPARE(r.has_value(), valid);
        if (r)
            QCOMPARE(QString::fromStdString(r->text()), text);
    }

    void parsedParts() {
        const auto r = sdl::parse_repo_id("CompVis/stable-diffusion-v1-4@refs/pr/3");
        QVERIFY(r);
        QCOMPARE(r->owner, std::string("CompVis"));
        QCOMPARE(r->name, std::string("stable-diffusion-v1-4"));
        QCOMPARE(r->revision, std::string("refs/pr/3"));
        QCOMPARE(r->folder_name(), std::string("models--CompVis--stable-diffusion-v1-4"));
    }

    // A folder that exists is opened as itself, even when its path reads as a repo id.
    void anExistingPathWins() {
        use_env({{"HF_HUB_CACHE", cache_.string()}});
        fs::create_directories(tmp("cwd") / "owner");
        fs::create_directory_symlink(kFolder, tmp("cwd") / "owner" / "tiny");
        const QString before = QDir::currentPath();
        QVERIFY(QDir::setCurrent(QString::fromStdString(tmp("cwd").string())));
        const auto m = sdl::open_model_files("owner/tiny");
        QDir::setCurrent(before);
        QVERIFY(m.repo_id.empty());
        QCOMPARE(m.path, std::string("owner/tiny"));
    }
};

QTEST_GUILESS_MAIN(TestHfCache)
#include "test_hf_cache.moc"
