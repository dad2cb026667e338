// Textual inversion end to end on the tiny model: an embedding whose vectors are the vocabulary rows
// of "red</w>" and "fox</w>" must encode exactly like the spelled-out words; removing embeddings gives
// the original encoder back bit for bit; a bad file changes nothing.
#include "core/io/safetensors.h"
#include "core/io/tensor_io.h"
#include "core/pipeline/pipeline.h"
#include "core/util/error.h"

#include <QTemporaryDir>
#include <QtTest>

namespace {

const std::string kData = SDLENS_TEST_DATA;

double max_abs(const torch::Tensor& a, const torch::Tensor& b) {
    return (a.to(torch::kFloat64) - b.to(torch::kFloat64)).abs().max().item<double>();
}

struct Quiet : sdl::PipelineObserver {};

} // namespace

class TestTextualInversion : public QObject {
    Q_OBJECT
    QTemporaryDir tmp_;
    std::unique_ptr<sdl::StableDiffusion> sd_;
    std::string redfox_;  // kohya file: the rows of "red</w>" and "fox</w>"

    static sdl::RuntimeOptions fp32() {
        sdl::RuntimeOptions o;
        o.dtype = "fp32";
        return o;
    }

    // The token embedding rows of words that are one token each, as stored in the model file.
    torch::Tensor rows(const std::vector<std::string>& words) {
        const auto file = sdl::SafetensorsFile::open(kData + "/tiny-sd/text_encoder/model.safetensors");
        const auto table = sdl::to_tensor(file->at("text_model.embeddings.token_embedding.weight"), torch::kFloat32);
        std::vector<torch::Tensor> out;
        for (const auto& w : words) {
            const auto ids = sd_->tokenizer().encode_ids(w);
            if (ids.size() != 1)
                throw std::runtime_error(w + " is not one token");
            out.push_back(table[ids[0]]);
        }
        return torch::stack(out);
    }

private slots:
    void initTestCase() {
        QVERIFY(tmp_.isValid());
        sd_ = sdl::StableDiffusion::load(kData + "/tiny-sd", fp32());
        redfox_ = tmp_.filePath("redfox.safetensors").toStdString();
        sdl::save_tensors(redfox_, {{"emb_params", rows({"red", "fox"})}});
    }

    void triggerEncodesExactlyLikeTheSpelledOutWords() {
        const auto before = sd_->encode_prompt("a photo of red fox");
        const auto before_skip = sd_->encode_prompt("a photo of red fox", 2);
        const auto infos = sd_->set_embeddings({redfox_});
        QCOMPARE(infos.size(), size_t{1});
        QCOMPARE(infos[0].trigger, std::string("redfox"));
        QCOMPARE(infos[0].vectors, 2);
        QCOMPARE(infos[0].format, std::string("kohya (emb_params)"));
        QCOMPARE(sd_->embeddings().size(), size_t{1});

        const auto t = sd_->tokenizer().encode("a photo of RedFox");
        QCOMPARE(t.input_ids[4], sd_->tokenizer().first_embedding_id());
        QCOMPARE(t.embedding[4], std::string("redfox"));
        QCOMPARE(t.embedding[5], std::string("redfox"));

        const auto trigger = sd_->encode_prompt("a photo of RedFox");
        qInfo("max |redfox - red fox| = %g (fp32)", max_abs(trigger, before));
        QVERIFY(torch::equal(trigger, before));
        QVERIFY(torch::equal(sd_->encode_prompt("a photo of redfox", 2), before_skip));
        QVERIFY(torch::equal(sd_->encode_prompt("a photo of red fox"), before));
        const auto states = sd_->text_hidden_states("a photo of redfox");
        const auto spelled = sd_->text_hidden_states("a photo of red fox");
        QCOMPARE(states.size(), spelled.size());
        for (size_t i = 0; i < states.size(); ++i)
            QVERIFY(torch::equal(states[i], spelled[i]));
        sd_->set_embeddings({});
    }

    // The same image from the trigger as from the words: generate goes through the same encoder.
    void generateUsesTheEmbedding() {
        sd_->set_embeddings({redfox_});
        sdl::GenerateRequest r;
        r.width = r.height = 64;
        r.steps = 2;
        r.seed = 7;
        Quiet q;
        r.prompt = "a photo of redfox";
        const auto with_trigger = sd_->generate(r, q);
        r.prompt = "a photo of red fox";
        const auto with_words = sd_->generate(r, q);
        QVERIFY(torch::equal(with_trigger, with_words));
        sd_->set_embeddings({});
    }

    void removingRestoresTheOriginalBitForBit() {
        const auto original = sd_->encode_prompt("a photo of redfox");
        const auto original_ids = sd_->tokenizer().encode("a photo of redfox").input_ids;
        sd_->set_embeddings({redfox_});
        QVERIFY(!torch::equal(sd_->encode_prompt("a photo of redfox"), original));
        QVERIFY(sd_->set_embeddings({}).empty());
        QVERIFY(sd_->embeddings().empty());
        QCOMPARE(sd_->tokenizer().encode("a photo of redfox").input_ids, original_ids);
        QVERIFY(torch::equal(sd_->encode_prompt("a photo of redfox"), original));
    }

    // A 2-vector trigger after 74 words: the prompt is cut after its first vector, as the spelled-out
    // words are cut after "red".
    void vectorsCountAgainst77() {
        std::string words;
        for (int i = 0; i < 74; ++i)
            words += "a ";
        sd_->set_embeddings({redfox_});
        QVERIFY(sd_->tokenizer().encode(words + "redfox").truncated);
        QVERIFY(torch::equal(sd_->encode_prompt(words + "redfox"), sd_->encode_prompt(words + "red fox")));
        sd_->set_embeddings({});
    }

    void badFileChangesNothing() {
        sd_->set_embeddings({redfox_});
        const auto loaded = sd_->encode_prompt("redfox");
        const std::string wide = tmp_.filePath("wide.safetensors").toStdString();
        sdl::save_tensors(wide, {{"emb_params", torch::zeros({1, 768})}});
        try {
            sd_->set_embeddings({wide});
            QFAIL("a 768-wide embedding was accepted by a 32-wide model");
        } catch (const sdl::Error& e) {
            const std::string m = e.what();
            QVERIFY2(m.find("768") != std::string::npos && m.find("32") != std::string::npos, e.what());
        }
        QCOMPARE(sd_->embeddings().size(), size_t{1});
        QVERIFY(torch::equal(sd_->encode_prompt("redfox"), loaded));
        QVERIFY_EXCEPTION_THROWN(sd_->set_embeddings({redfox_, redfox_}), sdl::Error);
        QCOMPARE(sd_->embeddings().size(), size_t{1});
        sd_->set_embeddings({});
    }

    void loadTakesEmbeddingsFromTheOptions() {
        auto o = fp32();
        o.embeddings = {redfox_};
        const auto sd = sdl::StableDiffusion::load(kData + "/tiny-sd", o);
        QCOMPARE(sd->embeddings().size(), size_t{1});
        QVERIFY(torch::equal(sd->encode_prompt("a redfox"), sd_->encode_prompt("a red fox")));
    }
};

QTEST_GUILESS_MAIN(TestTextualInversion)
#include "test_textual_inversion.moc"
