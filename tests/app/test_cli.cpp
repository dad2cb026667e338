// sdlens-cli as scripts use it: the output contract of each command, and the bad-input table
// (one line on stderr, exit 1 for bad data, 2 for a bad command line, header problems found fast).
// Torch before Qt: Qt's `slots` macro breaks torch's headers.
#include "fixtures/lora_fixtures.h"

#include <QDir>
#include <QElapsedTimer>
#include <QFile>
#include <QJsonArray>
#include <QJsonDocument>
#include <QJsonObject>
#include <QProcess>
#include <QTemporaryDir>
#include <QtEndian>
#include <torch/cuda.h>
#include <QtTest>

#include "core/io/fake_hub.h"
#include "fixtures/vae_fixtures.h"

#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>

namespace fs = std::filesystem;

namespace {

const QString kData = SDLENS_TEST_DATA;

struct Run {
    int code = -1;
    QByteArray out, err;
    qint64 ms = 0;
};

Run cli(const QStringList& args, int timeout_ms = 120000) {
    QProcess p;
    QElapsedTimer timer;
    timer.start();
    p.start(SDLENS_CLI, args);
    p.closeWriteChannel();
    if (!p.waitForFinished(timeout_ms)) {
        p.kill();
        p.waitForFinished();
    }
    Run r;
    r.ms = timer.elapsed();
    r.code = p.exitStatus() == QProcess::NormalExit ? p.exitCode() : -1;
    r.out = p.readAllStandardOutput();
    r.err = p.readAllStandardError();
    return r;
}

QJsonObject json(const QByteArray& text) { return QJsonDocument::fromJson(text).object(); }

void copy_model(const QString& to) {
    fs::copy((kData + "/tiny-sd").toStdString(), to.toStdString(), fs::copy_options::recursive);
    for (auto& e : fs::recursive_directory_iterator(to.toStdString()))
        fs::permissions(e.path(), fs::perms::owner_write, fs::perm_options::add);
}

QByteArray read_all(const QString& path) {
    QFile f(path);
    f.open(QIODevice::ReadOnly);
    return f.readAll();
}

void write_all(const QString& path, const QByteArray& bytes) {
    QFile f(path);
    QVERIFY(f.open(QIODevice::WriteOnly | QIODevice::Truncate));
    f.write(bytes);
}

// Rewrites the safetensors header of a file with `edit` applied to its JSON text.
void edit_header(const QString& path, const std::function<QByteArray(QByteArray)>& edit) {
    QByteArray b = read_all(path);
    quint64 n = 0;
    memcpy(&n, b.constData(), 8);
    QByteArray header = edit(b.mid(8, static_cast<int>(n)));
    QByteArray data = b.mid(8 + static_cast<int>(n));
    quint64 m = static_cast<quint64>(header.size());
    QByteArray out(reinterpret_cast<const char*>(&m), 8);
    write_all(path, out + header + data);
}

} // namespace

class TestCli : public QObject {
    Q_OBJECT
    QTemporaryDir tmp_;

    // Timings are printed, not asserted: machines are noisy. Header-level failures read no tensor data.
    void expectError(const QStringList& args, int code, const QString& mention) {
        const Run r = cli(args);
        const QString err = QString::fromUtf8(r.err).trimmed();
        QVERIFY2(r.code == code, qPrintable(QString("exit %1, expected %2; stderr: %3").arg(r.code).arg(code).arg(err)));
        QVERIFY2(!err.isEmpty() && !err.contains('\n'), qPrintable("stderr must be one line: " + err));
        QVERIFY2(err.contains(mention, Qt::CaseInsensitive), qPrintable("'" + err + "' should mention " + mention));
        qInfo("%lld ms: %s", static_cast<long long>(r.ms), qPrintable(err));
    }

    // A one-step 64x64 generation on a damaged model: the load must fail, naming the problem.
    void expectGenerateError(const QString& model, const QString& mention) {
        expectError({"generate", "--model", model, "--prompt", "x", "--steps", "1", "--width", "64", "--height", "64",
                     "--seed", "1", "--out", tmp_.filePath("never.png")},
                    1, mention);
    }

private slots:
    void tokenizeContract() {
        const Run r = cli({"tokenize", "a dog wearing hat", ""});
        QCOMPARE(r.code, 0);
        const auto lines = r.out.trimmed().split('\n');
        QCOMPARE(lines.size(), 2);
        const auto o = json(lines[0]);
        for (const char* key : {"prompt", "input_ids", "attention_mask", "tokens", "untruncated_ids", "truncated"})
            QVERIFY2(o.contains(key), key);
        QCOMPARE(o["input_ids"].toArray().size(), 77);
        QCOMPARE(o["input_ids"].toArray()[2].toInt(), 1929);
        QCOMPARE(o["tokens"].toArray()[2].toString(), QString("dog</w>"));
    }

    void inspectFindsBothLayoutsComplete_data() {
        QTest::addColumn<QString>("path");
        QTest::addColumn<QString>("layout");
        QTest::newRow("folder") << kData + "/tiny-sd" << "diffusers";
        QTest::newRow("single-file") << kData + "/tiny-sd.single-file.safetensors" << "single-file";
    }
    void inspectFindsBothLayoutsComplete() {
        QFETCH(QString, path);
        QFETCH(QString, layout);
        const Run r = cli({"inspect", path});
        QCOMPARE(r.code, 0);
        const auto o = json(r.out);
        QCOMPARE(o["layout"].toString(), layout);
        QVERIFY(o["complete"].toBool());
        for (const char* c : {"text_encoder", "unet", "vae"}) {
            const auto comp = o["components"].toObject()[c].toObject();
            QVERIFY2(comp["parameters"].toDouble() > 0, c);
        }
    }

    void makeModelThenGenerateWithTrace() {
        const QString model = tmp_.filePath("demo");
        Run r = cli({"make-model", "--preset", "tiny", "--out", model, "--seed", "3"});
        QVERIFY2(r.code == 0, r.err.constData());
        const Run info = cli({"inspect", model});
        QCOMPARE(info.code, 0);
        QVERIFY(json(info.out)["complete"].toBool());
        const QString png = tmp_.filePath("out.png"), trace = tmp_.filePath("run.safetensors");
        r = cli({"generate", "--model", model, "--prompt", "a red fox", "--negative-prompt", "blurry", "--steps", "3",
                 "--width", "64", "--height", "64", "--seed", "42", "--scheduler", "euler_a", "--out", png, "--trace",
                 trace});
        QVERIFY2(r.code == 0, r.err.constData());
        QCOMPARE(json(r.out)["seed"].toInteger(), 42);
        const QByteArray bytes = read_all(png);
        QVERIFY(bytes.startsWith("\x89PNG"));
        QVERIFY(bytes.contains("parameters"));
        QVERIFY(bytes.contains("Negative prompt: blurry"));
        QVERIFY(bytes.contains("Steps: 3, Sampler: Euler a, CFG scale: 7.5, Seed: 42, Size: 64x64"));
        const QByteArray t = read_all(trace);
        for (const char* key : {"\"init\"", "\"steps\"", "\"noise_pred\"", "\"pred_x0\"", "\"timesteps\"", "\"sigmas\"",
                                "\"text_embeddings\"", "\"input_ids\"", "\"image\""})
            QVERIFY2(t.contains(key), key);
    }

    // The trained demo model as the GUI makes it: train-demo's files under diffusers' names, the configs
    // of demo.json, sdlens_demo.json for the banner; it loads and generates at its native 128x128.
    void makeDemoModelFromTheBundledWeights() {
        const QString model = tmp_.filePath("demo-model");
        Run r = cli({"make-model", "--preset", "demo", "--out", model});
        QVERIFY2(r.code == 0, r.err.constData());
        const QString src = json(r.out)["weights"].toString();
        QVERIFY2(QFile::exists(src + "/demo.json"), qPrintable(src));
        for (const char* f : {"model_index.json", "scheduler/scheduler_config.json", "tokenizer/vocab.json",
                              "tokenizer/merges.txt", "text_encoder/config.json", "unet/config.json", "vae/config.json"})
            QVERIFY2(QFile::exists(model + "/" + f), f);
        const QStringList copies[] = {{"text_encoder.safetensors", "text_encoder/model.safetensors"},
                                      {"unet.safetensors", "unet/diffusion_pytorch_model.safetensors"},
                                      {"vae.safetensors", "vae/diffusion_pytorch_model.safetensors"}};
        for (const QStringList& c : copies)
            QVERIFY2(read_all(src + "/" + c[0]) == read_all(model + "/" + c[1]), qPrintable(c[1]));
        const QJsonObject demo = json(read_all(src + "/demo.json"));
        const QJsonObject marker = json(read_all(model + "/sdlens_demo.json"));
        QCOMPARE(marker.keys(), (QStringList{"training", "vocabulary"}));
        QCOMPARE(marker["vocabulary"], demo["vocabulary"]);
        QCOMPARE(marker["training"], demo["training"]);
        const QJsonObject vae = json(read_all(model + "/vae/config.json"));
        QCOMPARE(vae["scaling_factor"], demo["vae_config"].toObject()["scaling_factor"]);
        QCOMPARE(vae["_class_name"].toString(), QString("AutoencoderKL"));
        QCOMPARE(json(read_all(model + "/unet/config.json"))["_class_name"].toString(), QString("UNet2DConditionModel"));

        const Run info = cli({"inspect", model});
        QCOMPARE(info.code, 0);
        QVERIFY(json(info.out)["complete"].toBool());
        const QString png = tmp_.filePath("demo.png");
        r = cli({"generate", "--model", model, "--prompt", "a red circle", "--steps", "2", "--width", "128", "--height",
                 "128", "--seed", "1", "--scheduler", "dpmpp_2m", "--guidance", "5", "--dtype", "fp32", "--out", png});
        QVERIFY2(r.code == 0, r.err.constData());
        QVERIFY(read_all(png).startsWith("\x89PNG"));
    }

    void attentionFileHasTheDocumentedShape() {
        const QString maps = tmp_.filePath("maps.safetensors");
        const Run r = cli({"generate", "--model", kData + "/tiny-sd", "--prompt", "a dog wearing hat", "--steps", "3",
                           "--width", "64", "--height", "48", "--seed", "5", "--out", tmp_.filePath("a.png"),
                           "--attention", maps});
        QVERIFY2(r.code == 0, r.err.constData());
        const QByteArray b = read_all(maps);
        quint64 n = 0;
        memcpy(&n, b.constData(), 8);
        const auto header = QJsonDocument::fromJson(b.mid(8, static_cast<int>(n))).object();
        QCOMPARE(header["attention"].toObject()["shape"].toArray(), (QJsonArray{3, 77, 6, 8}));
    }

    void scheduleContract() {
        const Run r = cli({"schedule", "--scheduler", "euler", "--steps", "7"});
        QCOMPARE(r.code, 0);
        const auto o = json(r.out);
        QCOMPARE(o["timesteps"].toArray().size(), 7);
        QCOMPARE(o["sigmas"].toArray().size(), 8);
        QVERIFY(o["init_noise_sigma"].toDouble() > 1.0);
    }

    void lcmScheduleAndGenerate() {
        Run r = cli({"schedule", "--scheduler", "lcm", "--steps", "4"});
        QCOMPARE(r.code, 0);
        const auto o = json(r.out);
        QCOMPARE(o["timesteps"].toArray(), (QJsonArray{999, 759, 499, 259}));
        QCOMPARE(o["sigmas"].toArray().size(), 0);
        QCOMPARE(o["init_noise_sigma"].toDouble(), 1.0);
        QCOMPARE(o["config"].toObject()["original_inference_steps"].toInt(), 50);
        const QString png = tmp_.filePath("lcm.png");
        r = cli({"generate", "--model", kData + "/tiny-sd", "--prompt", "a red fox", "--scheduler", "lcm", "--steps", "4",
                 "--guidance", "1", "--width", "64", "--height", "64", "--seed", "7", "--out", png});
        QVERIFY2(r.code == 0, r.err.constData());
        QVERIFY(read_all(png).contains("Steps: 4, Sampler: LCM, CFG scale: 1, Seed: 7, Size: 64x64"));
    }

    void compareWritesAStripAndOneRunPerValue() {
        const QString strip = tmp_.filePath("strip.png"), dir = tmp_.filePath("runs");
        const Run r = cli({"compare", "--model", kData + "/tiny-sd", "--prompt", "a red fox", "--vary", "guidance",
                           "--values", "1,7.5", "--steps", "2", "--width", "64", "--height", "48", "--seed", "3",
                           "--out", strip, "--out-dir", dir});
        QVERIFY2(r.code == 0, r.err.constData());
        const auto o = json(r.out);
        QCOMPARE(o["vary"].toString(), QString("guidance"));
        QCOMPARE(o["seed"].toInteger(), 3);
        const auto runs = o["runs"].toArray();
        QCOMPARE(runs.size(), 2);
        const auto second = runs[1].toObject();
        QCOMPARE(second["label"].toString(), QString("guidance 7.5"));
        QCOMPARE(second["guidance"].toDouble(), 7.5);
        QCOMPARE(second["latent_difference"].toArray().size(), 2);
        QVERIFY(second["image_difference"].toDouble() > 0);
        QCOMPARE(runs[0].toObject()["image_difference"].toDouble(), 0.0);
        const QByteArray png = read_all(strip);
        QVERIFY(png.startsWith("\x89PNG"));
        // IHDR: big-endian width and height at bytes 16 and 20.
        QCOMPARE(qFromBigEndian<quint32>(png.constData() + 16), quint32(2 * 64));
        QCOMPARE(qFromBigEndian<quint32>(png.constData() + 20), quint32(48));
        QVERIFY(png.contains("comparison"));
        for (const char* name : {"run-1.png", "run-2.png"})
            QVERIFY2(QFile::exists(dir + "/" + name), name);
    }

    // The bad-input table of the hardening issue.
    void missingPath() { expectError({"inspect", tmp_.filePath("nowhere")}, 1, "nowhere"); }
    void randomBytesAsModel() {
        const QString f = tmp_.filePath("random.safetensors");
        QByteArray junk;
        for (int i = 0; i < 4096; ++i)
            junk.append(static_cast<char>((i * 7919) & 0xff));
        write_all(f, junk);
        expectError({"inspect", f}, 1, "random.safetensors");
    }
    void truncatedWeights() {
        const QString m = tmp_.filePath("trunc");
        copy_model(m);
        const QString f = m + "/unet/diffusion_pytorch_model.safetensors";
        write_all(f, read_all(f).left(100000));
        expectError({"inspect", m}, 1, "diffusion_pytorch_model.safetensors");
    }
    void headerLengthBeyondFile() {
        const QString m = tmp_.filePath("hlen");
        copy_model(m);
        const QString f = m + "/vae/diffusion_pytorch_model.safetensors";
        QByteArray b = read_all(f);
        const quint64 huge = 1ull << 40;
        memcpy(b.data(), &huge, 8);
        write_all(f, b);
        expectError({"inspect", m}, 1, "header");
    }
    void brokenJson() {
        const QString m = tmp_.filePath("json");
        copy_model(m);
        edit_header(m + "/vae/diffusion_pytorch_model.safetensors", [](QByteArray h) { return h.left(h.size() / 2); });
        expectError({"inspect", m}, 1, "json");
    }
    void offsetsOutsideTheData() {
        const QString m = tmp_.filePath("offsets");
        copy_model(m);
        edit_header(m + "/text_encoder/model.safetensors", [](QByteArray h) {
            auto o = QJsonDocument::fromJson(h).object();
            auto first = o.begin();
            if (first.key() == "__metadata__")
                ++first;
            auto t = first.value().toObject();
            t["data_offsets"] = QJsonArray{0, 1e12};
            o[first.key()] = t;
            return QJsonDocument(o).toJson(QJsonDocument::Compact);
        });
        expectGenerateError(m, "offset");
    }
    void wrongTensorShape() {
        const QString m = tmp_.filePath("shape");
        copy_model(m);
        // conv_in.weight [32, 4, 3, 3] declared as [4, 32, 3, 3]: same byte length, wrong shape.
        edit_header(m + "/unet/diffusion_pytorch_model.safetensors", [](QByteArray h) {
            auto o = QJsonDocument::fromJson(h).object();
            auto t = o["conv_in.weight"].toObject();
            t["shape"] = QJsonArray{4, 32, 3, 3};
            o["conv_in.weight"] = t;
            return QJsonDocument(o).toJson(QJsonDocument::Compact);
        });
        expectGenerateError(m, "conv_in.weight");
    }
    void missingTensor() {
        const QString m = tmp_.filePath("missing");
        copy_model(m);
        edit_header(m + "/unet/diffusion_pytorch_model.safetensors", [](QByteArray h) {
            auto o = QJsonDocument::fromJson(h).object();
            o.remove("conv_out.bias");
            return QJsonDocument(o).toJson(QJsonDocument::Compact);
        });
        expectGenerateError(m, "conv_out.bias");
    }
    void badAndMissingConfig() {
        const QString m = tmp_.filePath("config");
        copy_model(m);
        auto config = QJsonDocument::fromJson(read_all(m + "/unet/config.json")).object();
        config["layers_per_block"] = -2;
        write_all(m + "/unet/config.json", QJsonDocument(config).toJson());
        expectGenerateError(m, "layers_per_block");
        QFile::remove(m + "/unet/config.json");
        expectError({"inspect", m}, 1, "config.json");
    }
    void nonImageAsImage() {
        const QString f = tmp_.filePath("notes.png");
        write_all(f, "not an image at all");
        expectError({"generate", "--model", kData + "/tiny-sd", "--prompt", "x", "--image", f, "--width", "128",
                     "--height", "128", "--steps", "2", "--seed", "1", "--out", tmp_.filePath("never.png")},
                    1, "notes.png");
    }
    void sizeNotMultipleOf8() {
        expectError({"generate", "--model", kData + "/tiny-sd", "--prompt", "x", "--width", "100", "--seed", "1"}, 2,
                    "multiple");
    }
    void zeroSteps() {
        expectError({"generate", "--model", kData + "/tiny-sd", "--prompt", "x", "--steps", "0", "--seed", "1"}, 2,
                    "steps");
    }
    void unknownScheduler() {
        expectError({"schedule", "--scheduler", "warp", "--steps", "10"}, 2, "warp");
        expectError({"generate", "--model", kData + "/tiny-sd", "--prompt", "x", "--scheduler", "warp", "--steps",
                     "1", "--width", "64", "--height", "64", "--seed", "1", "--out", tmp_.filePath("never.png")},
                    2, "warp");
    }
    void lcmRefusesMoreStepsThanItsDistillationSchedule() {
        expectError({"schedule", "--scheduler", "lcm", "--steps", "51"}, 1, "original_inference_steps");
        expectError({"schedule", "--scheduler", "lcm", "--steps", "4", "--karras"}, 2, "lcm");
        expectError({"generate", "--model", kData + "/tiny-sd", "--prompt", "x", "--scheduler", "lcm", "--steps", "60",
                     "--width", "64", "--height", "64", "--seed", "1", "--out", tmp_.filePath("never.png")},
                    1, "at most 50 steps");
    }
    void badComparisons() {
        const QStringList base = {"compare", "--model", kData + "/tiny-sd", "--prompt", "x", "--steps", "1",
                                  "--width", "64", "--height", "64", "--seed", "1", "--out", tmp_.filePath("never.png")};
        expectError(base + QStringList{"--vary", "seed", "--values", "1,2"}, 2, "seed");
        expectError(base + QStringList{"--vary", "scheduler", "--value", "lms", "--value", "warp"}, 2, "warp");
        expectError(base + QStringList{"--vary", "guidance", "--value", "7.5"}, 2, "two");
    }
    void tooLargeForMemoryIsRefusedUpFront() {
        expectError({"generate", "--model", kData + "/tiny-sd", "--prompt", "x", "--width", "16384", "--height",
                     "16384", "--steps", "1", "--seed", "1", "--out", tmp_.filePath("never.png")},
                    1, "GiB");
    }
    void unknownTensorKey() {
        expectError({"unet", "--model", kData + "/tiny-sd", "--sample", kData + "/reference.safetensors:nope",
                     "--context", kData + "/reference.safetensors:unet.context", "--timestep", "1", "--out",
                     tmp_.filePath("never.safetensors")},
                    1, "nope");
    }
    void badDemoModels() {
        // A weights folder lacking one of train-demo's files is named before anything is written.
        const QString weights = tmp_.filePath("demo-weights");
        QVERIFY(QDir().mkpath(weights));
        write_all(weights + "/demo.json", "{}");
        write_all(weights + "/text_encoder.safetensors", "");
        write_all(weights + "/vae.safetensors", "");
        const QString out = tmp_.filePath("never-demo");
        expectError({"make-model", "--preset", "demo", "--out", out, "--weights", weights}, 1, "unet.safetensors");
        QVERIFY(!QFile::exists(out));
        expectError({"make-model", "--preset", "demo", "--out", out, "--dtype", "fp32"}, 2, "fp16");
        expectError({"make-model", "--preset", "demo", "--out", out, "--seed", "1"}, 2, "--seed");
        expectError({"make-model", "--preset", "tiny", "--out", out, "--weights", weights}, 2, "--preset demo");
        QVERIFY(!QFile::exists(out));
    }
    // Whether this LibTorch lacks CUDA (Debian's) or has it with no GPU (PyPI's on this machine), the
    // answer is one line naming the cause, exit 1.
    void cudaWithoutAGpu() {
        if (torch::cuda::is_available())
            QSKIP("a GPU is visible: --device cuda works here");
        expectError({"encode-text", "--model", kData + "/tiny-sd", "--out", tmp_.filePath("never.safetensors"),
                     "--device", "cuda", "a cat"},
                    1, "--device cuda");
    }
    // The pipeline's speed options: refused where they cannot apply, on one line, before any work.
    void pipelineSpeedOptionsAreChecked() {
        const QStringList run{"generate", "--model", kData + "/tiny-sd", "--prompt", "x", "--steps", "1",
                              "--width", "64", "--height", "64", "--seed", "1", "--out", tmp_.filePath("never.png")};
        expectError(run + QStringList{"--cuda-graph"}, 2, "--device cuda");
        expectError(run + QStringList{"--memory-format", "nhwc"}, 2, "--memory-format");
    }
    void unknownFlagAndCommand() {
        expectError({"tokenize", "--frobnicate", "1", "x"}, 2, "frobnicate");
        expectError({"teleport"}, 2, "teleport");
    }
    void pickleIsRefused() {
        const QString f = tmp_.filePath("model.ckpt");
        write_all(f, QByteArray("\x80\x02}q\x00.", 6));
        expectError({"inspect", f}, 1, "safetensors");
    }

    // Textual-inversion embeddings: tokenize expands triggers without loading a model, encode-text encodes a
    // trigger exactly like the words whose rows it copies, generate lists them in its trace; bad files are
    // refused on one line.
private:
    QString embeddingFile(const QString& name, const std::string& key, const std::vector<int64_t>& shape,
                          sdl::DType dtype = sdl::DType::F32) {
        size_t count = 1;
        for (int64_t d : shape)
            count *= static_cast<size_t>(d);
        const std::vector<float> zeros(count);
        const QString path = tmp_.filePath(name);
        sdl::write_safetensors(path.toStdString(), {{key, dtype, shape, zeros.data(), count * sdl::dtype_size(dtype)}});
        return path;
    }
    // redfox.safetensors: the tiny model's own F16 rows of "red</w>" and "fox</w>", as a kohya file.
    QString redfoxFile() {
        const auto ids = json(cli({"tokenize", "red fox"}).out.trimmed())["input_ids"].toArray();
        const auto te = sdl::SafetensorsFile::open((kData + "/tiny-sd/text_encoder/model.safetensors").toStdString());
        const sdl::TensorView& table = te->at("text_model.embeddings.token_embedding.weight");
        const size_t row = static_cast<size_t>(table.shape[1]) * 2;
        std::vector<uint8_t> rows;
        for (int i : {1, 2}) {
            const uint8_t* at = table.data + static_cast<size_t>(ids[i].toInt()) * row;
            rows.insert(rows.end(), at, at + row);
        }
        const QString path = tmp_.filePath("redfox.safetensors");
        sdl::write_safetensors(path.toStdString(),
                               {{"emb_params", sdl::DType::F16, {2, table.shape[1]}, rows.data(), rows.size()}});
        return path;
    }

private slots:
    void tokenizeExpandsTriggersWithoutAModel() {
        const QString f = embeddingFile("cat-toy.safetensors", "<cat-toy>", {3, 768});
        const Run r = cli({"tokenize", "--embedding", f, "a <Cat-Toy> photo", "a photo"});
        QVERIFY2(r.code == 0, r.err.constData());
        const auto lines = r.out.trimmed().split('\n');
        const auto o = json(lines[0]);
        QCOMPARE(o["untruncated_ids"].toArray().size(), 7);
        QCOMPARE(o["input_ids"].toArray()[2].toInt(), 49408);
        QCOMPARE(o["input_ids"].toArray()[4].toInt(), 49410);
        QCOMPARE(o["tokens"].toArray()[3].toString(), QString("<cat-toy:1>"));
        QCOMPARE(o["embedding"].toArray()[2].toString(), QString("<cat-toy>"));
        QCOMPARE(o["embedding"].toArray()[5].toString(), QString());
        QVERIFY(!cli({"tokenize", "a photo"}).out.contains("embedding"));
    }
    void encodeTextTriggerEqualsTheWords() {
        const QString out = tmp_.filePath("redfox-text.safetensors");
        const Run r = cli({"encode-text", "--model", kData + "/tiny-sd", "--dtype", "fp32", "--embedding", redfoxFile(),
                           "--out", out, "a photo of RedFox", "a photo of red fox"});
        QVERIFY2(r.code == 0, r.err.constData());
        const auto f = sdl::SafetensorsFile::open(out.toStdString());
        const sdl::TensorView& e = f->at("embeddings");
        QCOMPARE(e.shape, (std::vector<int64_t>{2, 77, 32}));
        // Equal to float32 rounding, not bit for bit: a BLAS may compute the two rows of one product
        // with different kernels (OpenBLAS' Haswell kernel here, under OPENBLAS_CORETYPE=Haswell: 1.9e-6).
        const auto rows = sdl::to_tensor(e);
        QVERIFY((rows[0] - rows[1]).abs().max().item<double>() < 1e-5);
        QVERIFY(f->metadata().at("embeddings").find("redfox.safetensors") != std::string::npos);
    }
    void generateListsEmbeddingsInTheTrace() {
        const QString trace = tmp_.filePath("redfox-trace.safetensors");
        const Run r = cli({"generate", "--model", kData + "/tiny-sd", "--embedding", redfoxFile(), "--prompt",
                           "a redfox", "--steps", "1", "--width", "64", "--height", "64", "--seed", "1", "--out",
                           tmp_.filePath("redfox.png"), "--trace", trace});
        QVERIFY2(r.code == 0, r.err.constData());
        QVERIFY(read_all(trace).contains("redfox.safetensors"));
    }
    void badEmbeddings() {
        const QStringList tok = {"tokenize", "x", "--embedding"};
        const QStringList gen = {"generate", "--model", kData + "/tiny-sd", "--prompt", "x", "--steps", "1", "--width",
                                 "64", "--height", "64", "--seed", "1", "--out", tmp_.filePath("never.png"),
                                 "--embedding"};
        expectError(gen + QStringList{embeddingFile("wide.safetensors", "emb_params", {2, 768})}, 1, "768");
        expectError(tok + QStringList{embeddingFile("sd2.safetensors", "emb_params", {2, 1024})}, 1, "2.x");
        const QString sdxl = tmp_.filePath("sdxl-emb.safetensors");
        const std::vector<float> g(2 * 1280), l(2 * 768);
        sdl::write_safetensors(sdxl.toStdString(), {{"clip_g", sdl::DType::F32, {2, 1280}, g.data(), g.size() * 4},
                                                    {"clip_l", sdl::DType::F32, {2, 768}, l.data(), l.size() * 4}});
        expectError(tok + QStringList{sdxl}, 1, "SDXL");
        const QString empty = tmp_.filePath("empty-emb.safetensors");
        write_all(empty, QByteArray());
        expectError(tok + QStringList{empty}, 1, "empty-emb.safetensors");
        const QString nan = tmp_.filePath("nan-emb.safetensors");
        const float values[2] = {1.0f, std::numeric_limits<float>::quiet_NaN()};
        sdl::write_safetensors(nan.toStdString(), {{"emb_params", sdl::DType::F32, {1, 2}, values, sizeof values}});
        expectError(tok + QStringList{nan}, 1, "NaN");
        const QString pt = tmp_.filePath("redfox.pt");
        write_all(pt, QByteArray("\x80\x02}q\x00.", 6));
        expectError(tok + QStringList{pt}, 1, "string_to_param");
        const QString a = embeddingFile("RedFox.safetensors", "emb_params", {1, 32});
        const QString b = embeddingFile("other.safetensors", "redfox", {32});
        expectError(tok + QStringList{a, "--embedding", b}, 1, "two embeddings");
        expectError(tok + QStringList{embeddingFile("layout.safetensors", "weight", {4, 32, 3})}, 1, "dimensions");
        const QString two = tmp_.filePath("two-emb.safetensors");
        sdl::write_safetensors(two.toStdString(), {{"a", sdl::DType::F32, {1, 2}, values, sizeof values},
                                                   {"b", sdl::DType::F32, {1, 2}, values, sizeof values}});
        expectError(tok + QStringList{two}, 1, "emb_params");
        expectError(tok + QStringList{tmp_.filePath("no-such-emb.safetensors")}, 1, "no-such-emb");
    }

    // VAEs: a swapped-in VAE is named in the PNG, compared side by side, described by inspect.
    void generateWithAnotherVaeNamesIt() {
        const QString vae = tmp_.filePath("vae-ft-mse.safetensors"), out = tmp_.filePath("vae-swap.png");
        vae_fixtures::write_original_vae(vae.toStdString(), "");
        const Run r = cli({"generate", "--model", kData + "/tiny-sd", "--vae", vae, "--prompt", "a red fox", "--steps",
                           "2", "--width", "64", "--height", "64", "--seed", "1", "--out", out});
        QVERIFY2(r.code == 0, r.err.constData());
        QVERIFY(read_all(out).contains("VAE: vae-ft-mse.safetensors"));
    }
    void vaeComparisonWritesImagesAndMetrics() {
        const QString vae = tmp_.filePath("vae-cmp.safetensors"), png = tmp_.filePath("vae-src.png");
        vae_fixtures::write_original_vae(vae.toStdString(), "first_stage_model.");
        QCOMPARE(cli({"generate", "--model", kData + "/tiny-sd", "--prompt", "x", "--steps", "1", "--width", "64",
                      "--height", "48", "--seed", "2", "--out", png})
                     .code,
                 0);
        const QString dir = tmp_.filePath("vae-cmp");
        const Run r = cli({"vae", "--model", kData + "/tiny-sd", "--vae", vae, "--vae", kData + "/tiny-sd/vae",
                           "--image", png, "--out-dir", dir, "--dtype", "fp32"});
        QVERIFY2(r.code == 0, r.err.constData());
        const auto o = json(r.out);
        QCOMPARE(o["width"].toInt(), 64);
        const auto vaes = o["vaes"].toArray();
        QCOMPARE(vaes.size(), 3);
        QCOMPARE(vaes[0].toObject()["label"].toString(), QString("model's VAE"));
        QCOMPARE(vaes[1].toObject()["spelling"].toString(), QString("original (CompVis)"));
        for (const auto& v : vaes) {
            const auto e = v.toObject();
            QVERIFY(e["psnr"].toDouble() > 0);
            QCOMPARE(e["latent_mean"].toArray().size(), 4);
            QCOMPARE(e["psnr"].toDouble(), vaes[0].toObject()["psnr"].toDouble());  // same weights, three layouts
            QVERIFY(QFile::exists(e["reconstruction"].toString()));
            QVERIFY(QFile::exists(e["difference"].toString()));
        }
        expectError({"vae", "--model", kData + "/tiny-sd", "--vae", vae, "--vae", vae, "--image", png, "--out",
                     tmp_.filePath("x.safetensors")},
                    2, "--out-dir");
    }
    void compareVaesDecodesOneGeneration() {
        const QString strip = tmp_.filePath("vae-strip.png");
        const Run r = cli({"compare", "--model", kData + "/tiny-sd", "--prompt", "a red fox", "--vary", "vae", "--value",
                           "model", "--value", kData + "/tiny-sd.single-file.safetensors", "--steps", "2", "--width",
                           "64", "--height", "48", "--seed", "3", "--out", strip});
        QVERIFY2(r.code == 0, r.err.constData());
        const auto runs = json(r.out)["runs"].toArray();
        QCOMPARE(runs.size(), 2);
        QCOMPARE(runs[1].toObject()["label"].toString(), QString("vae tiny-sd.single-file.safetensors"));
        QCOMPARE(runs[1].toObject()["latent_difference"].toArray()[1].toDouble(), 0.0);
        QCOMPARE(qFromBigEndian<quint32>(read_all(strip).constData() + 16), quint32(2 * 64));
        expectError({"compare", "--model", kData + "/tiny-sd", "--prompt", "x", "--vary", "vae", "--vae", "a",
                     "--value", "model", "--value", "b"},
                    2, "--vae");
    }
    void inspectNamesTheVaeSpelling() {
        const QString m = tmp_.filePath("old-names");
        vae_fixtures::copy_model(m.toStdString(), vae_fixtures::to_2022_names(false));
        Run r = cli({"inspect", m});
        QCOMPARE(r.code, 0);
        QCOMPARE(json(r.out)["components"].toObject()["vae"].toObject()["spelling"].toString(),
                 QString("diffusers (2022 attention names)"));
        const QString vae = tmp_.filePath("inspect-vae.safetensors");
        vae_fixtures::write_original_vae(vae.toStdString(), "");
        r = cli({"inspect", vae});
        QCOMPARE(r.code, 0);
        const auto o = json(r.out);
        QCOMPARE(o["layout"].toString(), QString("vae"));
        QCOMPARE(o["spelling"].toString(), QString("original (CompVis)"));
        QVERIFY(o["complete"].toBool());
    }
    void badVaes() {
        const QString misshapen = tmp_.filePath("misshapen-vae.safetensors");
        vae_fixtures::rewrite((kData + "/tiny-sd/vae/diffusion_pytorch_model.safetensors").toStdString(),
                              misshapen.toStdString(), [](const sdl::TensorView& v) {
                                  auto shape = v.shape;
                                  if (v.name == "encoder.conv_in.bias")
                                      shape = {2, 16};
                                  return vae_fixtures::Renamed{v.name, shape};
                              });
        const QStringList gen = {"generate", "--model", kData + "/tiny-sd", "--prompt", "x", "--steps", "1", "--width",
                                 "64", "--height", "64", "--seed", "1", "--out", tmp_.filePath("never.png"), "--vae"};
        expectError(gen + QStringList{misshapen}, 1, "encoder.conv_in.bias");
        const QString truncated = tmp_.filePath("truncated-vae.safetensors");
        vae_fixtures::write_original_vae(truncated.toStdString(), "");
        write_all(truncated, read_all(truncated).left(50000));
        expectError(gen + QStringList{truncated}, 1, "truncated-vae.safetensors");
        const QString lora = tmp_.filePath("lora.safetensors");
        const float w[4] = {};
        sdl::write_safetensors(lora.toStdString(), {{"lora_unet_down_blocks_0_attentions_0_proj_in.lora_down.weight",
                                                     sdl::DType::F32, {2, 2}, w, sizeof w}});
        expectError(gen + QStringList{lora}, 1, "LoRA");
        expectError(gen + QStringList{tmp_.filePath("no-vae")}, 1, "no-vae");
    }

    // LoRAs: applied by generate/compare/encode-text/unet, named in the PNG and the trace, compared by
    // strength, described by inspect; bad ones refused in one line.
private:
    // A kohya LoRA for every kind of tiny-sd layer, written once per name.
    QString loraFile(const QString& name) {
        const QString path = tmp_.filePath(name);
        if (!QFile::exists(path))
            lora_fixtures::write_lora(path.toStdString(), lora_fixtures::tiny_layers(), lora_fixtures::Spelling::Kohya);
        return path;
    }

private slots:
    void generateWithLorasNamesThem() {
        const QString a = loraFile("style.safetensors"), out = tmp_.filePath("lora.png"), trace = tmp_.filePath("lora-trace.safetensors");
        fs::create_directories(tmp_.filePath("dir:with:colons").toStdString());
        const QString b = tmp_.filePath("dir:with:colons/detail.safetensors");
        fs::copy_file(a.toStdString(), b.toStdString());
        const Run r = cli({"generate", "--model", kData + "/tiny-sd", "--prompt", "a red fox", "--steps", "2", "--width",
                           "64", "--height", "64", "--seed", "1", "--out", out, "--trace", trace, "--lora", a + ":0.8",
                           "--lora", b});
        QVERIFY2(r.code == 0, r.err.constData());
        const auto loras = json(r.out)["loras"].toArray();
        QCOMPARE(loras.size(), 2);
        QCOMPARE(loras[0].toObject()["strength"].toDouble(), 0.8);
        QCOMPARE(loras[1].toObject()["path"].toString(), b);
        QCOMPARE(loras[1].toObject()["strength"].toDouble(), 1.0);
        QCOMPARE(loras[0].toObject()["format"].toString(), QString("kohya"));
        QVERIFY(read_all(out).contains("Lora: \"style:0.8, detail:1\""));
        QVERIFY(read_all(trace).contains("\"loras\""));
    }
    void compareVariesTheLoraStrength() {
        const QString a = loraFile("style.safetensors"), strip = tmp_.filePath("lora-strip.png");
        const Run r = cli({"compare", "--model", kData + "/tiny-sd", "--prompt", "a red fox", "--vary", "lora",
                           "--values", "0,0.5,1", "--lora", a, "--steps", "2", "--width", "64", "--height", "48",
                           "--seed", "3", "--out", strip});
        QVERIFY2(r.code == 0, r.err.constData());
        const auto runs = json(r.out)["runs"].toArray();
        QCOMPARE(runs.size(), 3);
        QCOMPARE(runs[1].toObject()["label"].toString(), QString("lora 0.5"));
        QCOMPARE(runs[2].toObject()["lora_strength"].toDouble(), 1.0);
        QVERIFY(runs[2].toObject()["image_difference"].toDouble() > 0);
        QCOMPARE(qFromBigEndian<quint32>(read_all(strip).constData() + 16), quint32(3 * 64));
        expectError({"compare", "--model", kData + "/tiny-sd", "--prompt", "x", "--vary", "lora", "--values", "0,1",
                     "--steps", "1", "--width", "64", "--height", "64", "--seed", "1", "--out", tmp_.filePath("never.png")},
                    2, "exactly one --lora");
    }
    void inspectDescribesALora() {
        const Run r = cli({"inspect", loraFile("style.safetensors")});
        QVERIFY2(r.code == 0, r.err.constData());
        const auto o = json(r.out);
        QCOMPARE(o["layout"].toString(), QString("lora"));
        QCOMPARE(o["format"].toString(), QString("kohya"));
        QCOMPARE(o["rank"].toInt(), 4);
        QCOMPARE(o["alpha"].toDouble(), 2.0);
        const auto networks = o["networks"].toObject();
        QCOMPARE(networks["text_encoder"].toObject()["layers"].toInt(), 30);
        const auto unet = networks["unet"].toObject();
        QCOMPARE(o["layers"].toInt(), 30 + unet["layers"].toInt());
        QVERIFY(unet["levels"].toObject()["mid"].toInt() > 0);
    }
    void networksAloneTakeLoras() {
        const QString a = loraFile("style.safetensors");
        const QString plain = tmp_.filePath("emb.safetensors"), with = tmp_.filePath("emb-lora.safetensors");
        QCOMPARE(cli({"encode-text", "--model", kData + "/tiny-sd", "--out", plain, "a red fox"}).code, 0);
        const Run r = cli({"encode-text", "--model", kData + "/tiny-sd", "--out", with, "--lora", a + ":1.5", "a red fox"});
        QVERIFY2(r.code == 0, r.err.constData());
        QVERIFY(r.err.contains("U-Net layers do not act here"));
        const auto metadata = sdl::SafetensorsFile::open(with.toStdString())->metadata();
        QVERIFY(metadata.at("loras").find("\"strength\":1.5") != std::string::npos);
        QVERIFY(read_all(with) != read_all(plain));
    }
    void badLoras() {
        const QStringList gen = {"generate", "--model", kData + "/tiny-sd", "--prompt", "x", "--steps", "1", "--width",
                                 "64", "--height", "64", "--seed", "1", "--out", tmp_.filePath("never.png"), "--lora"};
        const QString loha = tmp_.filePath("loha.safetensors");
        const float w[4] = {};
        sdl::write_safetensors(loha.toStdString(), {{"lora_unet_down_blocks_0_attentions_0_proj_in.hada_w1_a",
                                                     sdl::DType::F32, {2, 2}, w, sizeof w}});
        expectError(gen + QStringList{loha}, 1, "LoHa");
        const QString sdxl = tmp_.filePath("sdxl-lora.safetensors");
        sdl::write_safetensors(sdxl.toStdString(), {{"lora_te2_text_model_encoder_layers_0_mlp_fc1.lora_down.weight",
                                                     sdl::DType::F32, {2, 2}, w, sizeof w}});
        expectError(gen + QStringList{sdxl}, 1, "SDXL");
        expectError(gen + QStringList{tmp_.filePath("absent-lora.safetensors")}, 1, "absent-lora.safetensors");
        expectError(gen + QStringList{loraFile("style.safetensors") + ":nan"}, 2, "finite");
        expectError(gen + QStringList{":0.5"}, 2, "FILE[:STRENGTH]");
        expectError(gen + QStringList{kData + "/tiny-sd.single-file.safetensors"}, 1, "not a LoRA");
        const QString pickle = tmp_.filePath("lora.ckpt");
        write_all(pickle, QByteArray("\x80\x02}q\x00.", 6));
        expectError(gen + QStringList{pickle}, 1, "pickle");
        // A text-encoder layer of the tiny model (32 wide): rank 2 down, rank 3 up; then NaN; then unplaced keys.
        const std::string q = "lora_te_text_model_encoder_layers_0_self_attn_q_proj";
        std::vector<float> down(2 * 32, 0.01f), up(32 * 3, 0.01f);
        const QString mismatch = tmp_.filePath("rank-mismatch.safetensors");
        sdl::write_safetensors(mismatch.toStdString(),
                               {{q + ".lora_down.weight", sdl::DType::F32, {2, 32}, down.data(), down.size() * 4},
                                {q + ".lora_up.weight", sdl::DType::F32, {32, 3}, up.data(), up.size() * 4}});
        expectError(gen + QStringList{mismatch}, 1, "rank");
        std::vector<float> up2(32 * 2, 0.01f);
        up2[5] = std::numeric_limits<float>::quiet_NaN();
        const QString nan = tmp_.filePath("nan-lora.safetensors");
        sdl::write_safetensors(nan.toStdString(),
                               {{q + ".lora_down.weight", sdl::DType::F32, {2, 32}, down.data(), down.size() * 4},
                                {q + ".lora_up.weight", sdl::DType::F32, {32, 2}, up2.data(), up2.size() * 4}});
        expectError(gen + QStringList{nan}, 1, "NaN");
        const QString unknown = tmp_.filePath("unknown-lora.safetensors");
        sdl::write_safetensors(unknown.toStdString(),
                               {{"lora_unet_warp_drive.lora_down.weight", sdl::DType::F32, {2, 32}, down.data(),
                                 down.size() * 4},
                                {"lora_unet_warp_drive.lora_up.weight", sdl::DType::F32, {32, 2}, up2.data(),
                                 up2.size() * 4}});
        expectError(gen + QStringList{unknown}, 1, "warp_drive");
        const QString empty = tmp_.filePath("empty-lora.safetensors");
        write_all(empty, QByteArray());
        expectError(gen + QStringList{empty}, 1, "empty-lora.safetensors");
    }

    // Odd but valid prompts work.
    void oddPromptsWork() {
        QString long_prompt;
        for (int i = 0; i < 2000; ++i)
            long_prompt += "word ";
        const Run r = cli({"tokenize", "", long_prompt, QString::fromUtf8("a \xF0\x9F\x90\xB6 dog"),
                           QString::fromLatin1("caf\xE9")});
        QCOMPARE(r.code, 0);
        const auto lines = r.out.trimmed().split('\n');
        QCOMPARE(lines.size(), 4);
        QVERIFY(json(lines[1])["truncated"].toBool());
    }

    // Models already on the computer, in a hub cache as huggingface_hub writes it.
private:
    static QString hubRepo(const QString& cache, const QString& name, const QString& commit) {
        return QString::fromStdString(sdl::test::add_hub_snapshot(cache.toStdString(), "owner", name.toStdString(),
                                                                  (kData + "/tiny-sd").toStdString(),
                                                                  commit.toStdString())
                                          .string());
    }

private slots:
    void modelsListsHubAndFolders() {
        const QString cache = tmp_.filePath("hf-cache");
        const QString commit(40, 'a');
        hubRepo(cache, "tiny", commit);
        const QString dir = tmp_.filePath("checkpoints");
        fs::create_directories(dir.toStdString());
        fs::create_symlink((kData + "/tiny-sd.single-file.safetensors").toStdString(),
                           (dir + "/tiny.safetensors").toStdString());
        qputenv("HF_HUB_CACHE", cache.toUtf8());
        qputenv("SDLENS_MODELS", (tmp_.filePath("nothing-here-either") + ":" + dir).toUtf8());
        fs::create_directories(tmp_.filePath("nothing-here-either").toStdString());
        const Run r = cli({"models"});
        QCOMPARE(r.code, 0);
        const auto lines = r.out.trimmed().split('\n');
        QCOMPARE(lines.size(), 2);
        const auto hub = json(lines[0]);
        QCOMPARE(hub["id"].toString(), QString("owner/tiny"));
        QCOMPARE(hub["layout"].toString(), QString("hub-cache diffusers"));
        QCOMPARE(hub["family"].toString(), QString("sd1"));
        QCOMPARE(hub["precision"].toString(), QString("fp16"));
        QVERIFY(hub["complete"].toBool());
        QVERIFY(hub["size_bytes"].toDouble() > 1e6);
        QCOMPARE(hub["path"].toString(), cache + "/models--owner--tiny/snapshots/" + commit);
        const auto file = json(lines[1]);
        QCOMPARE(file["path"].toString(), dir + "/tiny.safetensors");
        QCOMPARE(file["layout"].toString(), QString("single-file"));
        QVERIFY(!file.contains("id"));

        qunsetenv("SDLENS_MODELS");
        const Run only_dir = cli({"models", "--no-hub", "--models-dir", dir});
        QCOMPARE(only_dir.code, 0);
        QCOMPARE(only_dir.out.trimmed().split('\n').size(), 1);
        expectError({"models", "--models-dir", tmp_.filePath("absent")}, 1, "absent");
        expectError({"models", "extra"}, 2, "extra");

        // The id it lists opens as a model.
        const Run inspect = cli({"inspect", "owner/tiny"});
        QCOMPARE(inspect.code, 0);
        QVERIFY(json(inspect.out)["complete"].toBool());
        QCOMPARE(cli({"tokenize", "--model", "owner/tiny", "a dog"}).code, 0);
        QCOMPARE(cli({"schedule", "--model", "owner/tiny", "--steps", "4"}).code, 0);
        qunsetenv("HF_HUB_CACHE");
    }

    void generateNamesTheDownloadForAnAbsentRepo() {
        qputenv("HF_HUB_CACHE", tmp_.filePath("empty-hf-cache").toUtf8());
        expectGenerateError("owner/missing", "`huggingface-cli download owner/missing`");
        qunsetenv("HF_HUB_CACHE");
    }

    void generateRefusesARefToAMissingSnapshot() {
        const QString cache = tmp_.filePath("hf-cache-moved");
        hubRepo(cache, "moved", QString(40, 'c'));
        sdl::test::write_ref((cache + "/models--owner--moved").toStdString(), "main", std::string(40, 'd'));
        qputenv("HF_HUB_CACHE", cache.toUtf8());
        expectGenerateError("owner/moved", std::string(40, 'd').c_str());
        qunsetenv("HF_HUB_CACHE");
    }

    void generateRefusesASnapshotWithABrokenLink() {
        const QString cache = tmp_.filePath("hf-cache-broken");
        const QString snapshot = hubRepo(cache, "broken", QString(40, 'b'));
        const fs::path unet = (snapshot + "/unet/diffusion_pytorch_model.safetensors").toStdString();
        fs::remove(unet.parent_path() / fs::read_symlink(unet));
        qputenv("HF_HUB_CACHE", cache.toUtf8());
        expectGenerateError("owner/broken", snapshot + "/unet/diffusion_pytorch_model.safetensors: links to");
        expectGenerateError("owner/broken", "the download of owner/broken was interrupted");
        qunsetenv("HF_HUB_CACHE");
    }
};

QTEST_GUILESS_MAIN(TestCli)
#include "test_cli.moc"
