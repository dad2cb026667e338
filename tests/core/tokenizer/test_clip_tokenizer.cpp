#include "core/tokenizer/clip_tokenizer.h"
#include "core/util/error.h"
#include "core/util/resources.h"

#include <nlohmann/json.hpp>

#include <QtTest>

#include <chrono>
#include <fstream>
#include <sstream>

using nlohmann::json;

namespace {

const std::string kData = SDLENS_TEST_DATA;
const std::string kVocab = kData + "/tiny-sd/tokenizer/vocab.json";
const std::string kMerges = kData + "/tiny-sd/tokenizer/merges.txt";

std::string slurp(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    std::ostringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

void spit(const std::string& path, const std::string& data) {
    std::ofstream out(path, std::ios::binary);
    out << data;
}

std::vector<std::string> merge_lines() {
    std::vector<std::string> out;
    std::istringstream in(slurp(kMerges));
    std::string line;
    std::getline(in, line);  // "#version: 0.2"
    while (std::getline(in, line))
        out.push_back(line);
    return out;
}

// A tokenizer.json in Hugging Face's format, built from the reference vocab.json + merges.txt.
// pair_merges: merges as ["a", "b"] (newer tokenizers) instead of "a b", and the special tokens
// only in added_tokens, so both layouts seen in the wild are covered.
std::string make_tokenizer_json(const std::string& dir, bool pair_merges) {
    json vocab = json::parse(slurp(kVocab));
    json merges = json::array();
    for (const auto& line : merge_lines()) {
        if (!pair_merges) {
            merges.push_back(line);
            continue;
        }
        const auto space = line.find(' ');
        merges.push_back(json::array({line.substr(0, space), line.substr(space + 1)}));
    }
    if (pair_merges) {
        vocab.erase("<|startoftext|>");
        vocab.erase("<|endoftext|>");
    }
    json doc = {
        {"version", "1.0"},
        {"added_tokens",
         json::array({{{"id", 49406}, {"content", "<|startoftext|>"}, {"special", true}},
                      {{"id", 49407}, {"content", "<|endoftext|>"}, {"special", true}}})},
        {"model",
         {{"type", "BPE"}, {"end_of_word_suffix", "</w>"}, {"vocab", vocab}, {"merges", merges}}},
    };
    const std::string path = dir + (pair_merges ? "/pairs.tokenizer.json" : "/strings.tokenizer.json");
    spit(path, doc.dump());
    return path;
}

std::vector<int64_t> ids_of(const json& j) { return j.get<std::vector<int64_t>>(); }

} // namespace

class TestClipTokenizer : public QObject {
    Q_OBJECT

    QTemporaryDir tmp_;
    std::map<std::string, sdl::ClipTokenizer> sources_;
    json reference_;

    const sdl::ClipTokenizer& vm() const { return sources_.at("vocab+merges"); }

private slots:
    void initTestCase() {
        QVERIFY(tmp_.isValid());
        const std::string dir = tmp_.path().toStdString();
        sources_.emplace("vocab+merges", sdl::ClipTokenizer::from_vocab_merges(kVocab, kMerges));
        sources_.emplace("tokenizer.json strings",
                         sdl::ClipTokenizer::from_tokenizer_json(make_tokenizer_json(dir, false)));
        sources_.emplace("tokenizer.json pairs",
                         sdl::ClipTokenizer::from_tokenizer_json(make_tokenizer_json(dir, true)));
        sources_.emplace("bundled", sdl::ClipTokenizer::bundled());
        reference_ = json::parse(slurp(kData + "/tokens.json"));
        QVERIFY(reference_.size() >= 7);
    }

    void referencePrompts_data() {
        QTest::addColumn<QString>("source");
        QTest::addColumn<int>("index");
        for (const auto& [name, tok] : sources_)
            for (size_t i = 0; i < reference_.size(); ++i)
                QTest::addRow("%s #%zu", name.c_str(), i) << QString::fromStdString(name) << int(i);
    }
    void referencePrompts() {
        QFETCH(QString, source);
        QFETCH(int, index);
        const auto& tok = sources_.at(source.toStdString());
        const json& ref = reference_[index];
        const sdl::TokenizedPrompt t = tok.encode(ref["prompt"].get<std::string>());
        QCOMPARE(t.prompt, ref["prompt"].get<std::string>());
        QCOMPARE(t.untruncated_ids, ids_of(ref["untruncated_ids"]));
        QCOMPARE(t.input_ids, ids_of(ref["input_ids"]));
        QCOMPARE(t.tokens, ref["tokens"].get<std::vector<std::string>>());
        const size_t used = std::min<size_t>(t.untruncated_ids.size(), sdl::ClipTokenizer::kMaxLength);
        std::vector<int64_t> mask(sdl::ClipTokenizer::kMaxLength, 0);
        std::fill(mask.begin(), mask.begin() + used, 1);
        QCOMPARE(t.attention_mask, mask);
        QCOMPARE(t.truncated, t.untruncated_ids.size() > size_t(sdl::ClipTokenizer::kMaxLength));
    }

    void bundledVocabularyEqualsVocabJson() {
        const json vocab = json::parse(slurp(kVocab));
        const auto bundled = sdl::ClipTokenizer::bundled();
        QCOMPARE(bundled.vocab_size(), vocab.size());
        for (const auto& [token, id] : vocab.items())
            QCOMPARE(bundled.token_string(id.get<int64_t>()), token);
    }

    void saveWritesTheFilesStableDiffusionShips() {
        const std::string v = tmp_.filePath("vocab.json").toStdString();
        const std::string m = tmp_.filePath("merges.txt").toStdString();
        sdl::ClipTokenizer::bundled().save_vocab_merges(v, m);
        QVERIFY(slurp(v) == slurp(kVocab));
        QVERIFY(slurp(m) == slurp(kMerges));
        const auto reloaded = sdl::ClipTokenizer::from_vocab_merges(v, m);
        const std::string p = reference_[2]["prompt"].get<std::string>();
        QCOMPARE(reloaded.encode(p).input_ids, vm().encode(p).input_ids);
    }

    void emptyPrompt() {
        const auto t = vm().encode("");
        QCOMPARE(t.untruncated_ids, (std::vector<int64_t>{sdl::ClipTokenizer::kBos, sdl::ClipTokenizer::kEos}));
        QCOMPARE(t.input_ids.size(), size_t(77));
        QCOMPARE(t.attention_mask[0], int64_t(1));
        QCOMPARE(t.attention_mask[1], int64_t(1));
        QCOMPARE(t.attention_mask[2], int64_t(0));
        QVERIFY(!t.truncated);
        QVERIFY(vm().encode_ids(" \t\n ").empty());
    }

    void truncationKeepsTheEndToken() {
        std::string prompt;
        for (int i = 0; i < 100; ++i)
            prompt += "a ";
        const auto t = vm().encode(prompt);
        QVERIFY(t.truncated);
        QCOMPARE(t.untruncated_ids.size(), size_t(102));
        QCOMPARE(t.tokens.size(), size_t(102));
        QCOMPARE(t.input_ids.front(), sdl::ClipTokenizer::kBos);
        QCOMPARE(t.input_ids.back(), sdl::ClipTokenizer::kEos);
        for (int i = 1; i < 76; ++i)
            QCOMPARE(t.input_ids[i], int64_t(320));  // "a</w>"
        QCOMPARE(t.attention_mask, std::vector<int64_t>(77, 1));

        // Exactly 75 words fill the window without truncation.
        const auto full = vm().encode(prompt.substr(0, 150));
        QVERIFY(!full.truncated);
        QCOMPARE(full.input_ids, t.input_ids);
    }

    void invalidUtf8BecomesReplacementCharacters() {
        // Each maximal invalid subsequence is one U+FFFD, as Python's errors="replace".
        const std::string bad = "dog \xff\xfe cat \xe6\x97 \xed\xa0\x80 \xc0\xaf end\xf0\x9f";
        const std::string fixed = "dog \uFFFD\uFFFD cat \uFFFD \uFFFD\uFFFD\uFFFD \uFFFD\uFFFD end\uFFFD";
        const auto t = vm().encode(bad);
        QCOMPARE(t.prompt, bad);
        QCOMPARE(t.untruncated_ids, vm().encode(fixed).untruncated_ids);
        QCOMPARE(t.tokens[1], std::string("dog</w>"));
        QVERIFY(vm().encode(std::string("\0\x80\xbf", 3)).untruncated_ids.size() > 2);
    }

    void normalizesLikeTransformers() {
        // NFC: a decomposed accent equals the precomposed letter.
        QCOMPARE(vm().encode_ids("cafe\u0301"), vm().encode_ids("caf\u00e9"));
        // Any Unicode whitespace separates, lower-casing reaches beyond ASCII.
        QCOMPARE(vm().encode_ids("\tA \n  DOG\u3000\u00a0"), vm().encode_ids("a dog"));
        QCOMPARE(vm().encode_ids("\u00c9T\u00c9"), vm().encode_ids("\u00e9t\u00e9"));
        // Hangul composes arithmetically.
        QCOMPARE(vm().encode_ids("\u1100\u1161\u11a8"), vm().encode_ids("\uac01"));
    }

    void preTokenization() {
        auto tokens = [&](const std::string& p) {
            auto t = vm().encode(p).tokens;
            return std::vector<std::string>(t.begin() + 1, t.end() - 1);
        };
        QCOMPARE(tokens("they're here, we'll see"),
                 (std::vector<std::string>{"they</w>", "'re</w>", "here</w>", ",</w>", "we</w>", "'ll</w>",
                                           "see</w>"}));
        QCOMPARE(tokens("2024"), (std::vector<std::string>{"2</w>", "0</w>", "2</w>", "4</w>"}));
        // Inside a run of symbols an apostrophe is not a contraction.
        QCOMPARE(tokens("!!'s"), (std::vector<std::string>{"!!", "'</w>", "s</w>"}));
    }

    void specialTokensInThePrompt() {
        const auto ids = vm().encode_ids("a<|endoftext|>dog <|startoftext|>");
        QCOMPARE(ids, (std::vector<int64_t>{320, sdl::ClipTokenizer::kEos, 1929, sdl::ClipTokenizer::kBos}));
        // Only the exact spelling is special; otherwise it is text like any other.
        const auto upper = vm().encode("<|ENDOFTEXT|>").tokens;
        QCOMPARE(upper, (std::vector<std::string>{"<|startoftext|>", "<", "|</w>", "endof", "text</w>", "|",
                                                  "></w>", "<|endoftext|>"}));
    }

    void longPrompts() {
        std::string prompt;
        for (int i = 0; i < 2000; ++i)
            prompt += "word" + std::to_string(i % 37) + (i % 5 ? " " : ", ");
        const auto t = vm().encode(prompt);
        QVERIFY(t.truncated);
        QVERIFY(t.untruncated_ids.size() > 2000);
        QCOMPARE(t.input_ids.back(), sdl::ClipTokenizer::kEos);

        // One enormous word: BPE must stay fast (no quadratic merging).
        const auto start = std::chrono::steady_clock::now();
        const auto ids = vm().encode_ids(std::string(100000, 'x') + std::string(50000, '!'));
        const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
        QVERIFY(!ids.empty());
        QVERIFY2(s < 2.0, qPrintable(QString("a 150,000-character word took %1 s").arg(s)));
    }

    void typicalPromptIsWellUnderAMillisecond() {
        const std::string prompt = reference_[2]["prompt"].get<std::string>();
        const auto tok = sdl::ClipTokenizer::bundled();
        constexpr int n = 2000;
        size_t total = 0;
        const auto warm_start = std::chrono::steady_clock::now();
        for (int i = 0; i < n; ++i)
            total += tok.encode(prompt).input_ids.size();
        const double warm =
            std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - warm_start).count() / n;
        QCOMPARE(total, size_t(77) * n);
        // A fresh tokenizer has an empty BPE cache: every word is merged from bytes.
        const auto fresh = sdl::ClipTokenizer::from_vocab_merges(kVocab, kMerges);
        const auto start = std::chrono::steady_clock::now();
        fresh.encode(prompt);
        const double cold = std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - start).count();
        qInfo("encode(\"%s\"): %.1f us cached, %.1f us uncached", prompt.c_str(), warm, cold);
        QVERIFY(warm < 1000.0);
        QVERIFY(cold < 1000.0);
    }

    void tokenStringRejectsUnknownIds() {
        QCOMPARE(vm().token_string(320), std::string("a</w>"));
        QVERIFY_THROWS_EXCEPTION(sdl::Error, vm().token_string(-1));
        QVERIFY_THROWS_EXCEPTION(sdl::Error, vm().token_string(49408));
    }

    void badFilesAreErrorsNamingThem() {
        auto expect_error = [](auto fn, const std::string& needle) {
            try {
                fn();
                QFAIL("expected sdl::Error");
            } catch (const sdl::Error& e) {
                QVERIFY2(std::string(e.what()).find(needle) != std::string::npos, e.what());
            }
        };
        const std::string dir = tmp_.path().toStdString();
        expect_error([&] { sdl::ClipTokenizer::from_vocab_merges(dir + "/none.json", kMerges); }, "none.json");
        expect_error([&] { sdl::ClipTokenizer::from_bpe_gz(dir + "/none.gz"); }, "none.gz");

        spit(dir + "/bad.json", "{\"a\": ");
        expect_error([&] { sdl::ClipTokenizer::from_vocab_merges(dir + "/bad.json", kMerges); }, "bad.json");
        expect_error([&] { sdl::ClipTokenizer::from_tokenizer_json(dir + "/bad.json"); }, "bad.json");

        spit(dir + "/bad_merges.txt", "#version: 0.2\ni n\nthis is three\n");
        expect_error([&] { sdl::ClipTokenizer::from_vocab_merges(kVocab, dir + "/bad_merges.txt"); }, "line 3");

        spit(dir + "/unknown_merges.txt", "#version: 0.2\nq\xc3\xa9 zz\n");
        expect_error([&] { sdl::ClipTokenizer::from_vocab_merges(kVocab, dir + "/unknown_merges.txt"); },
                     "not in the vocabulary");

        spit(dir + "/no_specials.json", "{\"a\": 0}");
        expect_error([&] { sdl::ClipTokenizer::from_vocab_merges(dir + "/no_specials.json", kMerges); },
                     "not in the vocabulary");

        spit(dir + "/wordpiece.json", R"({"model": {"type": "WordPiece", "vocab": {}}})");
        expect_error([&] { sdl::ClipTokenizer::from_tokenizer_json(dir + "/wordpiece.json"); }, "WordPiece");

        spit(dir + "/not.gz", "plain text, not gzip");
        expect_error([&] { sdl::ClipTokenizer::from_bpe_gz(dir + "/not.gz"); }, "not.gz");
    }
};

QTEST_GUILESS_MAIN(TestClipTokenizer)
#include "test_clip_tokenizer.moc"
