// Per-network precision: the decision rule on injected timings, the cache file (reuse, corrupt, stale,
// unwritable) and the measurement on the tiny model (milliseconds).
#include "core/models/precision.h"
#include "core/models/precision_probe.h"
#include "core/models/runtime.h"
#include "model_test_util.h"

#include <QTemporaryDir>
#include <QtTest>

#include <cmath>
#include <fstream>
#include <limits>

using namespace sdl_test;

namespace {

sdl::PrecisionMeasurement timings(double fp32, double bf16, double error = 0.01) {
    return {fp32, bf16, error, "2026-12-01"};
}

sdl::PrecisionCache::Entry entry(torch::Dtype dtype, double fp32 = 2.0, double bf16 = 1.0) {
    return {dtype, timings(fp32, bf16)};
}

void write_file(const std::string& path, const std::string& text) { std::ofstream(path) << text; }

std::string read_file(const std::string& path) {
    std::ifstream in(path);
    return std::string(std::istreambuf_iterator<char>(in), {});
}

torch::Dtype param_dtype(const torch::nn::Module& m) { return m.parameters().front().scalar_type(); }

// Points the cache at a folder of the test's own for the scope.
struct CacheDir {
    QTemporaryDir dir;
    QByteArray saved = qgetenv("SDLENS_CACHE_DIR");
    CacheDir() { qputenv("SDLENS_CACHE_DIR", dir.path().toUtf8()); }
    ~CacheDir() { qputenv("SDLENS_CACHE_DIR", saved); }
    std::string file() const { return dir.filePath("precision.json").toStdString(); }
};

} // namespace

class TestPrecision : public QObject {
    Q_OBJECT

private slots:
    void bf16SlowerKeepsFp32() {
        const auto p = sdl::decide_precision(timings(4.4, 7.0));
        QCOMPARE(p.dtype, torch::kFloat32);
        QCOMPARE(QString::fromStdString(p.reason), QString("measured: bf16 1.59x slower"));
        QVERIFY(p.measured && !p.cached);
    }

    void bf16FasterIsChosen() {
        const auto p = sdl::decide_precision(timings(3.8, 2.0));
        QCOMPARE(p.dtype, torch::kBFloat16);
        QCOMPARE(QString::fromStdString(p.reason), QString("measured 1.90x faster"));
    }

    void bf16TooInexactKeepsFp32() {
        auto p = sdl::decide_precision(timings(3.8, 2.0, sdl::kBf16ErrorBound * 1.5));
        QCOMPARE(p.dtype, torch::kFloat32);
        QVERIFY2(p.reason.find("over the 5% bound") != std::string::npos, p.reason.c_str());
        p = sdl::decide_precision(timings(3.8, 2.0, std::numeric_limits<double>::infinity()));
        QCOMPARE(p.dtype, torch::kFloat32);
        QCOMPARE(QString::fromStdString(p.reason), QString("bf16 gave NaN/Inf"));
        p = sdl::decide_precision(timings(3.8, 2.0, std::nan("")));
        QCOMPARE(p.dtype, torch::kFloat32);
    }

    // Close timings still go to the faster one: either is within noise of the other.
    void within10PercentPicksTheFaster() {
        QCOMPARE(sdl::decide_precision(timings(1.0, 0.95)).dtype, torch::kBFloat16);
        QCOMPARE(sdl::decide_precision(timings(0.95, 1.0)).dtype, torch::kFloat32);
    }

    void summaryNamesEachNetworkAndWhy() {
        sdl::PrecisionPlan plan;
        plan.unet = sdl::decide_precision(timings(3.8, 2.0));
        plan.vae_encode = sdl::cached_precision(entry(torch::kBFloat16, 1.2, 1.0));
        plan.vae_decode = sdl::cached_precision(entry(torch::kFloat32, 4.4, 7.0));
        QCOMPARE(QString::fromStdString(plan.summary()),
                 QString("U-Net bf16 (measured 1.90x faster), VAE encode bf16 (measured 1.20x faster), "
                         "VAE decode fp32 (measured: bf16 1.59x slower), cached 2026-12-01"));
        QCOMPARE(QString::fromStdString(plan.dtypes()), QString("U-Net bf16 · VAE encode bf16 · VAE decode fp32"));
        plan.unet = plan.vae_encode = plan.vae_decode = sdl::fixed_precision(torch::kFloat32, "--dtype");
        QCOMPARE(QString::fromStdString(plan.summary()), QString("fp32 for every network (--dtype)"));
        QCOMPARE(QString::fromStdString(plan.dtypes()), QString("fp32"));
    }

    void cacheLocation() {
        const QByteArray saved[] = {qgetenv("SDLENS_CACHE_DIR"), qgetenv("XDG_CACHE_HOME"), qgetenv("HOME")};
        qputenv("SDLENS_CACHE_DIR", "/a");
        qputenv("XDG_CACHE_HOME", "/b");
        qputenv("HOME", "/c");
        QCOMPARE(QString::fromStdString(sdl::PrecisionCache::default_path()), QString("/a/precision.json"));
        qunsetenv("SDLENS_CACHE_DIR");
        QCOMPARE(QString::fromStdString(sdl::PrecisionCache::default_path()), QString("/b/sdlens/precision.json"));
        qunsetenv("XDG_CACHE_HOME");
        QCOMPARE(QString::fromStdString(sdl::PrecisionCache::default_path()), QString("/c/.cache/sdlens/precision.json"));
        qputenv("SDLENS_CACHE_DIR", saved[0]);
        qputenv("XDG_CACHE_HOME", saved[1]);
        qputenv("HOME", saved[2]);
    }

    void entryIsReusedOnlyForItsKey() {
        QTemporaryDir dir;
        const sdl::PrecisionCache cache(dir.filePath("sub/precision.json").toStdString());
        const auto key = sdl::precision_key(sdl::PrecisionNetwork::VaeDecode, "vae 32,64 l1");
        QVERIFY(!cache.find(key));
        QCOMPARE(QString::fromStdString(cache.store({{key, entry(torch::kFloat32, 4.4, 7.0)}})), QString());
        const auto found = cache.find(key);
        QVERIFY(found);
        QCOMPARE(found->dtype, torch::kFloat32);
        QCOMPARE(found->measurement.bf16_seconds, 7.0);
        QCOMPARE(QString::fromStdString(found->measurement.date), QString("2026-12-01"));
        QVERIFY(key.cpu == sdl::cpu_model_name() && key.threads == at::get_num_threads());

        auto other = key;
        other.cpu = "Intel(R) Xeon(R) Gold 6338 CPU @ 2.00GHz";
        QVERIFY(!cache.find(other));
        other = key;
        other.libtorch = "1.12.1";
        QVERIFY(!cache.find(other));
        other = key;
        other.threads = key.threads + 1;
        QVERIFY(!cache.find(other));
        other = key;
        other.signature = "vae 128,256,512,512 l2";
        QVERIFY(!cache.find(other));
        other = key;
        other.network = "vae_encode";
        QVERIFY(!cache.find(other));

        // Other CPUs' entries stay in the file (a home folder shared between machines); one key is replaced.
        QVERIFY(cache.store({{other, entry(torch::kBFloat16)}}).empty());
        QVERIFY(cache.store({{key, entry(torch::kBFloat16)}}).empty());
        QCOMPARE(cache.find(key)->dtype, torch::kBFloat16);
        QVERIFY(cache.find(other));
        QCOMPARE(static_cast<int>(nlohmann::json::parse(read_file(cache.path()))["entries"].size()), 2);
    }

    void corruptOrOldFilesAreIgnoredAndRewritten() {
        QTemporaryDir dir;
        const sdl::PrecisionCache cache(dir.filePath("precision.json").toStdString());
        const auto key = sdl::precision_key(sdl::PrecisionNetwork::Unet, "unet 32 x32 l2");
        const std::string good = [&] {
            cache.store({{key, entry(torch::kBFloat16)}});
            return read_file(cache.path());
        }();
        auto old_format = nlohmann::json::parse(good);
        old_format["format"] = sdl::PrecisionCache::kFormat + 1;
        auto bad_entry = nlohmann::json::parse(good);
        bad_entry["entries"][0]["dtype"] = "fp8";
        auto bad_types = nlohmann::json::parse(good);
        bad_types["entries"][0]["fp32_seconds"] = "fast";
        const std::string broken[] = {"{\"format\": 1, \"entries\": [", "not json", "", "[1, 2]",
                                      "{\"format\": \"1\", \"entries\": []}", "{\"format\": 1, \"entries\": {}}",
                                      old_format.dump(), bad_entry.dump(), bad_types.dump(),
                                      std::string("\xff\xfe\x00\x01", 4)};
        for (const auto& text : broken) {
            write_file(cache.path(), text);
            QVERIFY(!cache.find(key));
            QVERIFY(cache.store({{key, entry(torch::kFloat32)}}).empty());
            QCOMPARE(cache.find(key)->dtype, torch::kFloat32);
        }
        // A folder where the file should be reads as empty too.
        QTemporaryDir other;
        QDir(other.path()).mkdir("precision.json");
        QVERIFY(!sdl::PrecisionCache(other.filePath("precision.json").toStdString()).find(key));
    }

    void unwritableCacheOnlyWarns() {
        QTemporaryDir dir;
        write_file(dir.filePath("file").toStdString(), "a file, not a folder");
        const sdl::PrecisionCache cache(dir.filePath("file/precision.json").toStdString());
        const auto key = sdl::precision_key(sdl::PrecisionNetwork::Unet, "unet 32 x32 l2");
        const std::string warning = cache.store({{key, entry(torch::kBFloat16)}});
        QVERIFY2(warning.find("could not write the precision cache") != std::string::npos, warning.c_str());
        QVERIFY(!cache.find(key));
    }

    void relativeError() {
        const auto a = torch::tensor({3.0, 4.0});
        QCOMPARE(sdl::relative_error(a, a), 0.0);
        QVERIFY(std::abs(sdl::relative_error(a, torch::tensor({3.0, 4.5})) - 0.1) < 1e-12);
        QVERIFY(std::isinf(sdl::relative_error(a, torch::tensor({3.0, std::nan("")}))));
    }

    // --dtype and the switch skip the measurement and the cache.
    void fixedChoicesMeasureNothing() {
        CacheDir cache;
        auto n = sdl::load_in_chosen_precision(tiny(false), {torch::kCPU, "fp32"});
        QCOMPARE(QString::fromStdString(n.plan.summary()), QString("fp32 for every network (--dtype)"));
        QCOMPARE(param_dtype(*n.unet), torch::kFloat32);
        QCOMPARE(n.vae->decoder_dtype(), torch::kFloat32);
        qputenv("SDLENS_PRECISION_PROBE", "0");
        n = sdl::load_in_chosen_precision(tiny(false), {torch::kCPU});
        qunsetenv("SDLENS_PRECISION_PROBE");
        QCOMPARE(n.plan.probe_seconds, 0.0);
        QVERIFY(!QFile::exists(QString::fromStdString(cache.file())));
        if (sdl::cpu_has_native_bf16())
            QCOMPARE(QString::fromStdString(n.plan.summary()), QString("bf16 for every network (SDLENS_PRECISION_PROBE=0)"));
        else
            QCOMPARE(QString::fromStdString(n.plan.summary()), QString("fp32 for every network (no native bf16)"));
    }

    // First use measures and stores; the next load reads the file and measures nothing.
    void firstUseMeasuresThenTheCacheIsReused() {
        if (!sdl::cpu_has_native_bf16())
            QSKIP("this CPU has no native bf16: everything runs in fp32, nothing is measured");
        CacheDir cache;
        const auto first = sdl::load_in_chosen_precision(tiny(false), {torch::kCPU});
        qInfo("tiny model, measured in %.3f s: %s", first.plan.probe_seconds, first.plan.summary().c_str());
        QVERIFY(first.warnings.empty());
        QVERIFY(first.plan.probe_seconds > 0);
        for (const auto* p : {&first.plan.unet, &first.plan.vae_encode, &first.plan.vae_decode}) {
            QVERIFY(p->measured && !p->cached);
            QVERIFY(p->measured->fp32_seconds > 0 && p->measured->bf16_seconds > 0);
            QVERIFY2(p->measured->bf16_error < sdl::kBf16ErrorBound, p->reason.c_str());
        }
        QCOMPARE(param_dtype(*first.unet), first.plan.unet.dtype);
        QCOMPARE(first.vae->encoder_dtype(), first.plan.vae_encode.dtype);
        QCOMPARE(first.vae->decoder_dtype(), first.plan.vae_decode.dtype);
        QCOMPARE(static_cast<int>(nlohmann::json::parse(read_file(cache.file()))["entries"].size()), 3);

        const auto again = sdl::load_in_chosen_precision(tiny(false), {torch::kCPU});
        QCOMPARE(again.plan.probe_seconds, 0.0);
        for (const auto* p : {&again.plan.unet, &again.plan.vae_encode, &again.plan.vae_decode})
            QVERIFY(p->cached);
        QCOMPARE(again.plan.unet.dtype, first.plan.unet.dtype);
        QCOMPARE(again.plan.vae_decode.dtype, first.plan.vae_decode.dtype);
        QVERIFY(again.plan.summary().find(", cached ") != std::string::npos);
    }

    // What the file says is what loads, without measuring: here the Xeon's choice for the VAE decoder.
    void cachedChoiceIsLoaded() {
        if (!sdl::cpu_has_native_bf16())
            QSKIP("this CPU has no native bf16: the cache is not consulted");
        CacheDir dir;
        const sdl::PrecisionCache cache(dir.file());
        const auto& files = tiny(false);
        const auto unet_sig = sdl::unet_signature(sdl::UNet2DConditionConfig::from_json(files.unet.config));
        const auto vae_sig = sdl::vae_signature(sdl::AutoencoderKLConfig::from_json(files.vae.config));
        QCOMPARE(QString::fromStdString(unet_sig), QString("unet 32,32,64,64 x32,32,32,32 l2,2,2,2"));
        QVERIFY(cache.store({{sdl::precision_key(sdl::PrecisionNetwork::Unet, unet_sig), entry(torch::kBFloat16, 3.8, 2.0)},
                             {sdl::precision_key(sdl::PrecisionNetwork::VaeEncode, vae_sig), entry(torch::kBFloat16)},
                             {sdl::precision_key(sdl::PrecisionNetwork::VaeDecode, vae_sig),
                              entry(torch::kFloat32, 4.4, 7.0)}})
                    .empty());
        const auto n = sdl::load_in_chosen_precision(files, {torch::kCPU});
        QCOMPARE(n.plan.probe_seconds, 0.0);
        QCOMPARE(param_dtype(*n.unet), torch::kBFloat16);
        QCOMPARE(n.vae->encoder_dtype(), torch::kBFloat16);
        QCOMPARE(n.vae->decoder_dtype(), torch::kFloat32);
        QCOMPARE(QString::fromStdString(n.plan.vae_decode.reason), QString("measured: bf16 1.59x slower"));
    }

    void unwritableCacheStillLoads() {
        if (!sdl::cpu_has_native_bf16())
            QSKIP("this CPU has no native bf16: the cache is not written");
        CacheDir dir;
        write_file(dir.file(), "");
        qputenv("SDLENS_CACHE_DIR", dir.dir.filePath("precision.json/below").toUtf8());
        const auto n = sdl::load_in_chosen_precision(tiny(false), {torch::kCPU});
        QCOMPARE(static_cast<int>(n.warnings.size()), 1);
        QVERIFY2(n.warnings[0].find("could not write the precision cache") != std::string::npos, n.warnings[0].c_str());
        QVERIFY(n.plan.unet.measured && !n.plan.unet.cached);
    }
};

QTEST_GUILESS_MAIN(TestPrecision)
#include "test_precision.moc"
