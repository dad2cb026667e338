// Textual-inversion files: the three layouts people have, and every refusal naming what is wrong.
#include "core/io/embedding_files.h"
#include "core/io/tensor_io.h"
#include "core/util/error.h"

#include <QTemporaryDir>
#include <QtTest>

#include <fstream>

namespace {

std::string error_of(const std::function<void()>& f) {
    try {
        f();
    } catch (const sdl::Error& e) {
        return e.what();
    }
    return "(no error)";
}

bool mentions(const std::string& message, const std::string& what) { return message.find(what) != std::string::npos; }

} // namespace

class TestEmbeddingFiles : public QObject {
    Q_OBJECT
    QTemporaryDir tmp_;

    std::string path(const std::string& name) { return tmp_.filePath(QString::fromStdString(name)).toStdString(); }

    std::string write(const std::string& name, const std::map<std::string, torch::Tensor>& tensors) {
        const std::string p = path(name);
        sdl::save_tensors(p, tensors);
        return p;
    }

    // Refused both alone and in a list, with a message that mentions `what`.
    void expectRefused(const std::string& file, const std::string& what, int64_t hidden = 0) {
        const std::string message = error_of([&] { sdl::read_embedding_files({file}, hidden); });
        QVERIFY2(mentions(message, what), (message + " (expected a mention of '" + what + "')").c_str());
        QVERIFY2(mentions(message, file), (message + " (expected the file's path)").c_str());
    }

private slots:
    void initTestCase() {
        QVERIFY(tmp_.isValid());
        QDir(tmp_.path()).mkpath("multi");
        QDir(tmp_.path()).mkpath("a");
        QDir(tmp_.path()).mkpath("b");
    }

    void kohya() {
        const auto v = torch::randn({2, 32});
        const auto e = sdl::read_embedding_file(write("redfox.safetensors", {{"emb_params", v}}));
        QCOMPARE(e.trigger, std::string("redfox"));
        QCOMPARE(e.format, std::string("kohya (emb_params)"));
        QVERIFY(torch::equal(e.vectors, v));
    }

    void a1111SavedAsSafetensors() {
        const auto v = torch::randn({3, 768}).to(torch::kFloat16);
        const auto e = sdl::read_embedding_file(write("Sks-Style.safetensors", {{"string_to_param.*", v}}));
        QCOMPARE(e.trigger, std::string("Sks-Style"));
        QCOMPARE(e.format, std::string("a1111 (string_to_param)"));
        QCOMPARE(e.vectors.scalar_type(), torch::kFloat32);
        QVERIFY(torch::equal(e.vectors, v.to(torch::kFloat32)));
    }

    void diffusersLearnedEmbeds() {
        const auto one = torch::randn({768}).to(torch::kBFloat16);
        auto e = sdl::read_embedding_file(write("learned_embeds.safetensors", {{"<cat-toy>", one}}));
        QCOMPARE(e.trigger, std::string("<cat-toy>"));
        QCOMPARE(e.format, std::string("diffusers (learned_embeds)"));
        QCOMPARE(e.vectors.sizes().vec(), (std::vector<int64_t>{1, 768}));
        QVERIFY(torch::equal(e.vectors[0], one.to(torch::kFloat32)));
        e = sdl::read_embedding_file(write("multi/learned_embeds.safetensors", {{"<toy>", torch::zeros({4, 768})}}));
        QCOMPARE(e.vectors.size(0), int64_t{4});
    }

    void widthMustMatchTheModel() {
        const auto f = write("wide.safetensors", {{"emb_params", torch::zeros({1, 768})}});
        QCOMPARE(sdl::read_embedding_files({f}, 768).size(), size_t{1});
        const std::string message = error_of([&] { sdl::read_embedding_files({f}, 32); });
        QVERIFY2(mentions(message, "768") && mentions(message, "32") && mentions(message, f), message.c_str());
    }

    void otherFamiliesAreNamed() {
        expectRefused(write("sd2.safetensors", {{"emb_params", torch::zeros({2, 1024})}}), "2.x");
        expectRefused(write("sd2-diffusers.safetensors", {{"<x>", torch::zeros({1024})}}), "2.x");
        expectRefused(write("sdxl.safetensors",
                            {{"clip_g", torch::zeros({2, 1280})}, {"clip_l", torch::zeros({2, 768})}}),
                      "SDXL");
        expectRefused(write("sdxl-g.safetensors", {{"emb_params", torch::zeros({2, 1280})}}), "SDXL");
    }

    void damagedFiles() {
        const std::string empty = path("empty.safetensors");
        std::ofstream(empty).close();
        expectRefused(empty, "empty.safetensors");
        auto nan = torch::zeros({2, 32});
        nan[1][3] = std::numeric_limits<float>::quiet_NaN();
        expectRefused(write("nan.safetensors", {{"emb_params", nan}}), "NaN");
        expectRefused(write("none.safetensors", {{"emb_params", torch::zeros({0, 32})}}), "no vectors");
        expectRefused(write("ints.safetensors", {{"emb_params", torch::zeros({2, 32}, torch::kInt64)}}), "float");
        expectRefused(write("cube.safetensors", {{"emb_params", torch::zeros({1, 2, 32})}}), "dimensions");
        expectRefused(write("long.safetensors", {{"emb_params", torch::zeros({76, 32})}}), "75");
        expectRefused(write("huge.safetensors", {{"emb_params", torch::zeros({1, 20000})}}), "20000 wide");
    }

    void picklesGetTheConversionLine() {
        const std::string pt = path("redfox.pt");
        std::ofstream(pt, std::ios::binary) << std::string("PK\x03\x04", 4) << "rest of a zip";
        expectRefused(pt, "string_to_param");
        const std::string disguised = path("disguised.safetensors");
        std::ofstream(disguised, std::ios::binary) << std::string("\x80\x02}q\x00.", 6);
        expectRefused(disguised, "pickle");
    }

    void unknownLayouts() {
        expectRefused(write("two.safetensors", {{"a", torch::zeros({1, 32})}, {"b", torch::zeros({1, 32})}}),
                      "emb_params");
        expectRefused(write("lora.safetensors", {{"lora_te_text_model_encoder_layers_0_mlp_fc1.lora_down.weight",
                                                  torch::zeros({4, 32})},
                                                 {"lora_te_text_model_encoder_layers_0_mlp_fc1.lora_up.weight",
                                                  torch::zeros({37, 4})}}),
                      "--lora");
        expectRefused(write("red fox.safetensors", {{"emb_params", torch::zeros({1, 32})}}), "rename");
    }

    void duplicateTriggersNameBothFiles() {
        const auto a = write("a/RedFox.safetensors", {{"emb_params", torch::zeros({1, 32})}});
        const auto b = write("b/learned_embeds.safetensors", {{"redfox", torch::zeros({32})}});
        const std::string message = error_of([&] { sdl::read_embedding_files({a, b}, 32); });
        QVERIFY2(mentions(message, "two embeddings") && mentions(message, a) && mentions(message, b), message.c_str());
    }

};

QTEST_GUILESS_MAIN(TestEmbeddingFiles)
#include "test_embedding_files.moc"
