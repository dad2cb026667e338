// Textual-inversion triggers in the tokenizer: a trigger becomes its vectors' ids in place of its own
// tokens, counted against the 77, matched as a whole word in any case, before pre-tokenization.
#include "core/tokenizer/clip_tokenizer.h"
#include "core/util/error.h"

#include <QtTest>

namespace {

const std::string kData = SDLENS_TEST_DATA;

std::vector<int64_t> body(const sdl::TokenizedPrompt& t) {
    return {t.untruncated_ids.begin() + 1, t.untruncated_ids.end() - 1};
}

} // namespace

class TestEmbeddingTriggers : public QObject {
    Q_OBJECT
    std::unique_ptr<sdl::ClipTokenizer> base_;
    int64_t first_ = 0;

    const sdl::ClipTokenizer& base() const { return *base_; }

private slots:
    void initTestCase() {
        base_ = std::make_unique<sdl::ClipTokenizer>(sdl::ClipTokenizer::from_vocab_merges(
            kData + "/tiny-sd/tokenizer/vocab.json", kData + "/tiny-sd/tokenizer/merges.txt"));
        first_ = base().first_embedding_id();
        QCOMPARE(first_, int64_t{49408});
    }

    // "a photo of redfox" with a 2-vector redfox is as long as "a photo of red fox".
    void triggerBecomesItsVectors() {
        const auto t = base().with_embeddings({{"redfox", 2}});
        const auto p = t.encode("a photo of redfox");
        const auto spelled = base().encode("a photo of red fox");
        QCOMPARE(p.untruncated_ids.size(), spelled.untruncated_ids.size());
        const std::vector<int64_t> expected = {sdl::ClipTokenizer::kBos, 320, 1125, 539, first_, first_ + 1,
                                               sdl::ClipTokenizer::kEos};
        QCOMPARE(p.untruncated_ids, expected);
        QCOMPARE(p.tokens[4], std::string("<redfox:0>"));
        QCOMPARE(p.tokens[5], std::string("<redfox:1>"));
        QCOMPARE(p.attention_mask, spelled.attention_mask);
        QCOMPARE(p.embedding.size(), size_t{77});
        for (size_t i = 0; i < p.embedding.size(); ++i)
            QCOMPARE(p.embedding[i], std::string(i == 4 || i == 5 ? "redfox" : ""));
        QCOMPARE(t.token_string(first_ + 1), std::string("<redfox:1>"));
        QVERIFY_THROWS_EXCEPTION(sdl::Error, t.token_string(first_ + 2));
        // The original is untouched: it still spells the word out and knows no extra ids.
        QVERIFY(base().encode("a photo of redfox").untruncated_ids.size() > 5);
        QVERIFY(std::all_of(spelled.embedding.begin(), spelled.embedding.end(), [](const auto& s) { return s.empty(); }));
        QVERIFY_THROWS_EXCEPTION(sdl::Error, base().token_string(first_));
    }

    void anyCaseMatches() {
        const auto t = base().with_embeddings({{"RedFox", 1}});
        for (const char* prompt : {"redfox", "REDFOX", "RedFox", "rEdFoX"})
            QCOMPARE(body(t.encode(prompt)), std::vector<int64_t>{first_});
        QCOMPARE(t.encode("REDFOX").embedding[1], std::string("RedFox"));
    }

    void onlyWholeWordsMatch() {
        const auto t = base().with_embeddings({{"redfox", 1}});
        for (const char* prompt : {"redfoxes", "theredfox", "redfox2", "2redfox"})
            QCOMPARE(body(t.encode(prompt)), body(base().encode(prompt)));
        for (const char* prompt : {"redfox,", "(redfox)", "redfox's", "a-redfox"}) {
            const auto ids = body(t.encode(prompt));
            QVERIFY2(std::count(ids.begin(), ids.end(), first_) == 1, prompt);
        }
    }

    // diffusers' "<cat-toy>" would be five tokens to CLIP's pre-tokenizer; it must stay whole.
    void bracketedTriggersMatchWhole() {
        QVERIFY(body(base().encode("<cat-toy>")).size() > 1);
        const auto t = base().with_embeddings({{"<cat-toy>", 1}});
        QCOMPARE(body(t.encode("<cat-toy>")), std::vector<int64_t>{first_});
        const auto p = t.encode("a <Cat-Toy> on a<cat-toy>");
        QCOMPARE(std::count(p.input_ids.begin(), p.input_ids.end(), first_), 2);
        QCOMPARE(t.token_string(first_), std::string("<cat-toy:0>"));
    }

    void triggerWinsOverAVocabularyWord() {
        const auto t = base().with_embeddings({{"dog", 1}});
        QCOMPARE(body(t.encode("a dog")), (std::vector<int64_t>{320, first_}));
    }

    void longestTriggerWinsAndIdsFollowTheOrderGiven() {
        const auto t = base().with_embeddings({{"cat", 1}, {"cat-toy", 3}});
        QCOMPARE(body(t.encode("cat-toy")), (std::vector<int64_t>{first_ + 1, first_ + 2, first_ + 3}));
        const auto ids = body(t.encode("cat toy"));
        QCOMPARE(ids.front(), first_);
        QCOMPARE(ids.size(), size_t{2});
    }

    // 74 one-token words and a 2-vector trigger: 76 positions for 75 places, so the second vector goes.
    void vectorsCountAgainstTheLimit() {
        std::string words;
        for (int i = 0; i < 74; ++i)
            words += "a ";
        const auto t = base().with_embeddings({{"redfox", 2}});
        const auto p = t.encode(words + "redfox");
        const auto spelled = base().encode(words + "red fox");
        QVERIFY(p.truncated);
        QVERIFY(spelled.truncated);
        QCOMPARE(p.untruncated_ids.size(), size_t{78});
        QCOMPARE(p.input_ids[75], first_);
        QCOMPARE(p.input_ids[76], sdl::ClipTokenizer::kEos);
        QCOMPARE(p.embedding[75], std::string("redfox"));
        QCOMPARE(p.embedding[76], std::string());
        QVERIFY(!t.encode(words + "fox").truncated);
    }

    void specialTokensStillSplit() {
        const auto t = base().with_embeddings({{"redfox", 1}});
        QCOMPARE(body(t.encode("redfox<|endoftext|>redfox")),
                 (std::vector<int64_t>{first_, sdl::ClipTokenizer::kEos, first_}));
    }

    void replacingAndRemoving() {
        const auto t = base().with_embeddings({{"redfox", 2}});
        const auto other = t.with_embeddings({{"sks", 1}});
        QCOMPARE(body(other.encode("sks redfox")).front(), first_);
        QCOMPARE(body(other.encode("redfox")), body(base().encode("redfox")));
        const auto none = t.with_embeddings({});
        QCOMPARE(none.encode("a photo of redfox").input_ids, base().encode("a photo of redfox").input_ids);
        QVERIFY_THROWS_EXCEPTION(sdl::Error, none.token_string(first_));
    }

    void badTriggersAreRefused() {
        const auto message = [&](const std::vector<sdl::EmbeddingTrigger>& e) {
            try {
                base().with_embeddings(e);
            } catch (const sdl::Error& err) {
                return std::string(err.what());
            }
            return std::string();
        };
        QVERIFY(message({{"", 1}}).find("empty") != std::string::npos);
        QVERIFY(message({{"red fox", 1}}).find("whitespace") != std::string::npos);
        QVERIFY(message({{"redfox", 0}}).find("no vectors") != std::string::npos);
        QVERIFY(message({{"RedFox", 1}, {"redfox", 2}}).find("two embeddings") != std::string::npos);
        QVERIFY(message({{"x<|endoftext|>", 1}}).find("end token") != std::string::npos);
    }
};

QTEST_GUILESS_MAIN(TestEmbeddingTriggers)
#include "test_embedding_triggers.moc"
