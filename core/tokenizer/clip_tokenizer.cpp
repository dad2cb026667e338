#include "core/tokenizer/clip_tokenizer.h"

#include "core/tokenizer/unicode.h"
#include "core/util/error.h"
#include "core/util/resources.h"

#include <nlohmann/json.hpp>
#include <zlib.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <fstream>
#include <mutex>
#include <queue>
#include <sstream>
#include <unordered_set>

namespace sdl {

namespace {

const std::string kBosToken = "<|startoftext|>";
const std::string kEosToken = "<|endoftext|>";
const std::string kWordEnd = "</w>";
// OpenAI's file holds more merges than CLIP was trained with; CLIP uses the first
// 49152 - 256 - 2 (its vocabulary size less the byte tokens and the two specials).
constexpr size_t kBpeGzMerges = 49152 - 256 - 2;
// Ids index a dense table; a corrupt file with a huge id must not allocate gigabytes.
constexpr int64_t kMaxTokenId = 10'000'000;
// Each distinct word is cached; a pasted book must not grow the cache without bound.
constexpr size_t kMaxCacheEntries = 100'000;

// GPT-2's reversible byte-to-unicode table: printable Latin-1 bytes stand for themselves, the
// others (controls, space, soft hyphen) are moved to U+0100 upwards so no token holds whitespace.
// Returned in CLIP's vocabulary order: the printable bytes first, then the moved ones.
std::vector<std::pair<unsigned char, std::string>> byte_unicode_in_vocab_order() {
    auto printable = [](int b) { return (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE); };
    std::vector<std::pair<unsigned char, std::string>> out;
    for (int b = 0; b < 256; ++b) {
        if (printable(b)) {
            std::string s;
            unicode::append_utf8(static_cast<char32_t>(b), s);
            out.emplace_back(static_cast<unsigned char>(b), s);
        }
    }
    char32_t next = 256;
    for (int b = 0; b < 256; ++b) {
        if (!printable(b)) {
            std::string s;
            unicode::append_utf8(next++, s);
            out.emplace_back(static_cast<unsigned char>(b), s);
        }
    }
    return out;
}

std::string read_file(const std::string& path, const char* what) {
    std::ifstream in(path, std::ios::binary);
    if (!in)
        throw Error("cannot open " + std::string(what) + " '" + path + "'");
    std::ostringstream ss;
    ss << in.rdbuf();
    if (in.bad())
        throw Error("cannot read " + std::string(what) + " '" + path + "'");
    return ss.str();
}

std::string read_gz(const std::string& path) {
    gzFile f = gzopen(path.c_str(), "rb");
    if (!f)
        throw Error("cannot open CLIP vocabulary '" + path + "'");
    std::string out;
    std::array<char, 1 << 16> buf;
    for (;;) {
        const int n = gzread(f, buf.data(), static_cast<unsigned>(buf.size()));
        if (n < 0) {
            int code = 0;
            const std::string msg = gzerror(f, &code);
            gzclose(f);
            throw Error("CLIP vocabulary '" + path + "' is not a valid gzip file: " + msg);
        }
        if (n == 0)
            break;
        out.append(buf.data(), static_cast<size_t>(n));
    }
    gzclose(f);
    return out;
}

std::vector<std::string> split_lines(const std::string& text, size_t max_lines = SIZE_MAX) {
    std::vector<std::string> lines;
    size_t start = 0;
    while (start < text.size() && lines.size() < max_lines) {
        size_t end = text.find('\n', start);
        if (end == std::string::npos)
            end = text.size();
        std::string line = text.substr(start, end - start);
        if (!line.empty() && line.back() == '\r')
            line.pop_back();
        lines.push_back(std::move(line));
        start = end + 1;
    }
    return lines;
}

using Merge = std::pair<std::string, std::string>;

Merge parse_merge(const std::string& line, const std::string& where) {
    const size_t space = line.find(' ');
    if (space == std::string::npos || space == 0 || space + 1 == line.size() ||
        line.find(' ', space + 1) != std::string::npos)
        throw Error(where + ": expected a merge 'A B', found '" + line + "'");
    return {line.substr(0, space), line.substr(space + 1)};
}

// json.dumps(..., ensure_ascii=False) string escaping, so a saved vocab.json is byte-identical to
// the one Stable Diffusion ships.
void append_json_string(const std::string& s, std::string& out) {
    static const char* hex = "0123456789abcdef";
    out.push_back('"');
    for (unsigned char c : s) {
        switch (c) {
        case '"': out += "\\\""; break;
        case '\\': out += "\\\\"; break;
        case '\n': out += "\\n"; break;
        case '\r': out += "\\r"; break;
        case '\t': out += "\\t"; break;
        case '\b': out += "\\b"; break;
        case '\f': out += "\\f"; break;
        default:
            if (c < 0x20) {
                out += "\\u00";
                out.push_back(hex[c >> 4]);
                out.push_back(hex[c & 15]);
            } else {
                out.push_back(static_cast<char>(c));
            }
        }
    }
    out.push_back('"');
}

void write_file(const std::string& path, const std::string& data) {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    if (!out)
        throw Error("cannot write '" + path + "'");
    out.write(data.data(), static_cast<std::streamsize>(data.size()));
    out.close();
    if (!out)
        throw Error("cannot write '" + path + "' (disk full?)");
}

// vocab.json is a flat {token: id} object of ~49k entries. Reading it through SAX events straight
// into a vector avoids building (and then freeing) a DOM of that size: several times faster, and it
// leaves no heap of freed nodes for the first encode() to pay for.
class VocabReader : public nlohmann::json::json_sax_t {
public:
    explicit VocabReader(std::string path) : path_(std::move(path)) {}
    std::vector<std::pair<std::string, int64_t>> tokens;

    bool start_object(std::size_t) override { return ++depth_ == 1 || fail("nested object"); }
    bool end_object() override { return --depth_ == 0 || fail("nested object"); }
    bool key(string_t& k) override {
        key_ = std::move(k);
        return true;
    }
    bool number_integer(number_integer_t v) override { return add(v); }
    bool number_unsigned(number_unsigned_t v) override {
        // Anything past the limit is reported as just past it by the vocabulary check.
        return add(static_cast<int64_t>(std::min<number_unsigned_t>(v, kMaxTokenId + 1)));
    }
    bool null() override { return fail("null"); }
    bool boolean(bool) override { return fail("a boolean"); }
    bool number_float(number_float_t, const string_t&) override { return fail("a non-integer number"); }
    bool string(string_t&) override { return fail("a string"); }
    bool binary(binary_t&) override { return fail("binary data"); }
    bool start_array(std::size_t) override { return fail("an array"); }
    bool end_array() override { return fail("an array"); }
    bool parse_error(std::size_t, const std::string&, const nlohmann::json::exception& e) override {
        throw Error("vocabulary '" + path_ + "' is not valid JSON: " + e.what());
    }

private:
    bool add(int64_t id) {
        if (depth_ != 1)
            return fail("a number");
        tokens.emplace_back(std::move(key_), id);
        return true;
    }
    [[noreturn]] bool fail(const std::string& found) const {
        throw Error("vocabulary '" + path_ + "' must be a JSON object of token: id, found " + found +
                    (key_.empty() ? std::string() : " at '" + key_ + "'"));
    }

    std::string path_;
    std::string key_;
    int depth_ = 0;
};

std::vector<std::pair<std::string, int64_t>> parse_vocab_json(const std::string& path) {
    const std::string text = read_file(path, "vocabulary");
    VocabReader reader(path);
    nlohmann::json::sax_parse(text, &reader);
    return std::move(reader.tokens);
}

uint64_t pair_key(int32_t a, int32_t b) {
    return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b);
}

} // namespace

struct ClipTokenizer::Impl {
    struct MergeInfo {
        int32_t rank;
        int32_t merged;
    };

    std::string source;  // named in errors
    std::vector<std::string> id_to_token;  // "" where no token has the id
    std::unordered_map<std::string, int32_t> vocab;
    std::vector<std::pair<int32_t, int32_t>> merges;  // by rank
    std::unordered_map<uint64_t, MergeInfo> merge_table;
    std::array<int32_t, 256> byte_id{};
    std::array<int32_t, 256> byte_end_id{};  // the byte ending a word ("a</w>")
    int32_t bos = 0;
    int32_t eos = 0;

    mutable std::mutex cache_mutex;
    mutable std::unordered_map<std::string, std::vector<int32_t>> cache;

    Impl(const std::string& src, const std::vector<std::pair<std::string, int64_t>>& tokens,
         const std::vector<Merge>& merge_list);

    int32_t id_of(const std::string& token, const char* role) const {
        const auto it = vocab.find(token);
        if (it == vocab.end())
            throw Error(source + ": " + role + " '" + token + "' is not in the vocabulary");
        return it->second;
    }
    std::vector<int32_t> bpe(const std::string& word) const;
    void encode_words(const std::u32string& text, std::vector<int64_t>& ids) const;
};

ClipTokenizer::Impl::Impl(const std::string& src, const std::vector<std::pair<std::string, int64_t>>& tokens,
                          const std::vector<Merge>& merge_list)
    : source(src) {
    for (const auto& [token, id] : tokens) {
        if (token.empty())
            throw Error(source + ": the vocabulary has an empty token");
        if (id < 0 || id > kMaxTokenId)
            throw Error(source + ": token '" + token + "' has id " + std::to_string(id) + ", expected 0.." +
                        std::to_string(kMaxTokenId));
        if (static_cast<size_t>(id) >= id_to_token.size())
            id_to_token.resize(static_cast<size_t>(id) + 1);
        if (!id_to_token[id].empty())
            throw Error(source + ": tokens '" + id_to_token[id] + "' and '" + token + "' share id " +
                        std::to_string(id));
        id_to_token[id] = token;
        if (!vocab.emplace(token, static_cast<int32_t>(id)).second)
            throw Error(source + ": token '" + token + "' appears twice in the vocabulary");
    }
    for (const auto& [byte, text] : byte_unicode_in_vocab_order()) {
        byte_id[byte] = id_of(text, "byte token");
        byte_end_id[byte] = id_of(text + kWordEnd, "byte token");
    }
    bos = id_of(kBosToken, "start token");
    eos = id_of(kEosToken, "end token");
    merges.reserve(merge_list.size());
    merge_table.reserve(merge_list.size());
    for (size_t rank = 0; rank < merge_list.size(); ++rank) {
        const auto& [a, b] = merge_list[rank];
        const std::string where = "merge " + std::to_string(rank + 1) + " '" + a + " " + b + "'";
        const auto ia = vocab.find(a), ib = vocab.find(b), iab = vocab.find(a + b);
        if (ia == vocab.end() || ib == vocab.end() || iab == vocab.end())
            throw Error(source + ": " + where + " uses or makes a token that is not in the vocabulary");
        merges.emplace_back(ia->second, ib->second);
        // The first (lowest-rank) occurrence of a pair wins, as a rank lookup expects.
        merge_table.emplace(pair_key(ia->second, ib->second),
                            MergeInfo{static_cast<int32_t>(rank), iab->second});
    }
}

struct ClipTokenizer::Embeddings {
    struct Trigger {
        std::u32string text;  // NFC, lower-cased: as it appears in the normalized prompt
        int64_t first_id;
        int vectors;
    };
    std::vector<Trigger> triggers;      // longest first, so that the longest trigger at a position wins
    int64_t first_id = 0;
    std::vector<std::string> names;     // per extra id: "<redfox:0>"
    std::vector<std::string> trigger_of;  // per extra id: the trigger as given

    // Appends the ids of lower-cased text, its triggers as their vectors' ids, the rest through BPE.
    void encode(const std::u32string& text, const ClipTokenizer::Impl& impl, std::vector<int64_t>& ids) const;
};

namespace {

bool is_word_char(char32_t c) { return unicode::is_letter(c) || unicode::is_number(c); }

// transformers' normalizer: NFC, then lower-case. Its whitespace collapse is left out: the
// pre-tokenizer drops whitespace anyway.
std::u32string normalized(std::u32string part) {
    unicode::nfc(part);
    std::u32string lower;
    lower.reserve(part.size());
    for (char32_t c : part)
        unicode::append_lower(c, lower);
    return lower;
}

} // namespace

// A trigger is a whole word: it does not continue a word of letters or digits on either side.
// Punctuation next to it separates, as CLIP's pre-tokenizer would split there too.
void ClipTokenizer::Embeddings::encode(const std::u32string& text, const ClipTokenizer::Impl& impl,
                                       std::vector<int64_t>& ids) const {
    size_t segment = 0;
    for (size_t i = 0; i < text.size(); ++i) {
        if (i > 0 && is_word_char(text[i - 1]) && is_word_char(text[i]))
            continue;
        for (const Trigger& t : triggers) {
            const size_t end = i + t.text.size();
            if (end > text.size() || text.compare(i, t.text.size(), t.text) != 0)
                continue;
            if (end < text.size() && is_word_char(text[end - 1]) && is_word_char(text[end]))
                continue;
            impl.encode_words(text.substr(segment, i - segment), ids);
            for (int k = 0; k < t.vectors; ++k)
                ids.push_back(t.first_id + k);
            segment = end;
            i = end - 1;
            break;
        }
    }
    impl.encode_words(text.substr(segment), ids);
}

// Byte-pair merging of one pre-tokenized word: repeatedly merge the adjacent pair of lowest rank
// (leftmost first). A heap over a linked list keeps a long word O(n log n) instead of O(n^2).
std::vector<int32_t> ClipTokenizer::Impl::bpe(const std::string& word) const {
    struct Symbol {
        int32_t id;
        int prev, next;
    };
    struct Candidate {
        int32_t rank;
        int pos;
        int32_t left, right;
        bool operator>(const Candidate& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
    };
    const int n = static_cast<int>(word.size());
    std::vector<Symbol> sym(static_cast<size_t>(n));
    for (int i = 0; i < n; ++i) {
        const auto byte = static_cast<unsigned char>(word[i]);
        sym[i] = {i == n - 1 ? byte_end_id[byte] : byte_id[byte], i - 1, i + 1 < n ? i + 1 : -1};
    }
    std::priority_queue<Candidate, std::vector<Candidate>, std::greater<>> heap;
    auto consider = [&](int pos) {
        if (pos < 0 || sym[pos].next < 0)
            return;
        const int32_t l = sym[pos].id, r = sym[sym[pos].next].id;
        const auto it = merge_table.find(pair_key(l, r));
        if (it != merge_table.end())
            heap.push({it->second.rank, pos, l, r});
    };
    for (int i = 0; i + 1 < n; ++i)
        consider(i);
    while (!heap.empty()) {
        const Candidate c = heap.top();
        heap.pop();
        Symbol& s = sym[c.pos];
        // A symbol only ever grows, so an unchanged id pair means the candidate is still current.
        if (s.id != c.left || s.next < 0 || sym[s.next].id != c.right)
            continue;
        const int gone = s.next;
        s.id = merge_table.at(pair_key(c.left, c.right)).merged;
        s.next = sym[gone].next;
        if (s.next >= 0)
            sym[s.next].prev = c.pos;
        sym[gone].id = -1;
        consider(s.prev);
        consider(c.pos);
    }
    std::vector<int32_t> ids;
    for (int i = n > 0 ? 0 : -1; i >= 0; i = sym[i].next)
        ids.push_back(sym[i].id);
    return ids;
}

// CLIP's pre-tokenization pattern without its special-token alternatives (those are split off
// before): 's|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+, applied to lower-cased text.
// Each match is one word for BPE; whitespace only separates.
void ClipTokenizer::Impl::encode_words(const std::u32string& text, std::vector<int64_t>& ids) const {
    const size_t end = text.size();
    auto is_other = [](char32_t c) {
        return !unicode::is_whitespace(c) && !unicode::is_letter(c) && !unicode::is_number(c);
    };
    auto contraction = [&](size_t i) -> size_t {
        if (text[i] != U'\'' || i + 1 >= end)
            return 0;
        const char32_t a = text[i + 1];
        if (a == U's' || a == U't' || a == U'm' || a == U'd')
            return 2;
        if (i + 2 < end) {
            const char32_t b = text[i + 2];
            if ((a == U'r' && b == U'e') || (a == U'v' && b == U'e') || (a == U'l' && b == U'l'))
                return 3;
        }
        return 0;
    };
    std::string word;
    size_t i = 0;
    while (i < end) {
        const char32_t c = text[i];
        size_t j = i + 1;
        if (unicode::is_whitespace(c)) {
            ++i;
            continue;
        }
        if (const size_t len = contraction(i)) {
            j = i + len;
        } else if (unicode::is_letter(c)) {
            while (j < end && unicode::is_letter(text[j]))
                ++j;
        } else if (!unicode::is_number(c)) {
            while (j < end && is_other(text[j]))
                ++j;
        }
        word.clear();
        for (size_t k = i; k < j; ++k)
            unicode::append_utf8(text[k], word);
        auto it = cache.find(word);
        if (it == cache.end()) {
            if (cache.size() >= kMaxCacheEntries)
                cache.clear();
            it = cache.emplace(word, bpe(word)).first;
        }
        ids.insert(ids.end(), it->second.begin(), it->second.end());
        i = j;
    }
}

ClipTokenizer ClipTokenizer::from_vocab_merges(const std::string& vocab_json, const std::string& merges_txt) {
    const std::vector<std::pair<std::string, int64_t>> tokens = parse_vocab_json(vocab_json);
    std::vector<Merge> merges;
    const auto lines = split_lines(read_file(merges_txt, "merges file"));
    for (size_t i = 0; i < lines.size(); ++i) {
        if ((i == 0 && lines[i].rfind("#version", 0) == 0) || lines[i].empty())
            continue;
        merges.push_back(parse_merge(lines[i], "merges file '" + merges_txt + "' line " + std::to_string(i + 1)));
    }
    ClipTokenizer t;
    t.impl_ = std::make_shared<Impl>("tokenizer '" + vocab_json + "' + '" + merges_txt + "'", tokens, merges);
    return t;
}

ClipTokenizer ClipTokenizer::from_tokenizer_json(const std::string& tokenizer_json) {
    const std::string where = "tokenizer '" + tokenizer_json + "'";
    nlohmann::json doc;
    try {
        doc = nlohmann::json::parse(read_file(tokenizer_json, "tokenizer"));
    } catch (const nlohmann::json::exception& e) {
        throw Error(where + " is not valid JSON: " + e.what());
    }
    const auto model = doc.is_object() ? doc.find("model") : doc.end();
    if (model == doc.end() || !model->is_object())
        throw Error(where + " has no \"model\" object");
    if (model->contains("type") && model->at("type") != "BPE")
        throw Error(where + ": model type is " + model->at("type").dump() + ", expected \"BPE\"");
    if (model->contains("end_of_word_suffix") && model->at("end_of_word_suffix") != kWordEnd)
        throw Error(where + ": end_of_word_suffix is " + model->at("end_of_word_suffix").dump() +
                    ", expected \"</w>\" (not a CLIP tokenizer)");
    const auto vocab = model->find("vocab");
    const auto merges_json = model->find("merges");
    if (vocab == model->end() || !vocab->is_object())
        throw Error(where + " has no model.vocab object");
    if (merges_json == model->end() || !merges_json->is_array())
        throw Error(where + " has no model.merges array");

    std::vector<std::pair<std::string, int64_t>> tokens;
    std::unordered_set<std::string> seen;
    for (const auto& [token, id] : vocab->items()) {
        if (!id.is_number_integer())
            throw Error(where + ": token '" + token + "' has a non-integer id");
        tokens.emplace_back(token, id.get<int64_t>());
        seen.insert(token);
    }
    // Special tokens may live only in added_tokens.
    if (const auto added = doc.find("added_tokens"); added != doc.end() && added->is_array()) {
        for (const auto& a : *added) {
            if (!a.is_object() || !a.contains("content") || !a.contains("id") || !a["content"].is_string() ||
                !a["id"].is_number_integer())
                throw Error(where + ": malformed entry in added_tokens: " + a.dump());
            const std::string content = a["content"].get<std::string>();
            if (!seen.count(content)) {
                tokens.emplace_back(content, a["id"].get<int64_t>());
                seen.insert(content);
            }
        }
    }
    std::vector<Merge> merges;
    merges.reserve(merges_json->size());
    for (size_t i = 0; i < merges_json->size(); ++i) {
        const auto& m = (*merges_json)[i];
        const std::string at = where + " model.merges[" + std::to_string(i) + "]";
        if (m.is_string()) {
            merges.push_back(parse_merge(m.get<std::string>(), at));
        } else if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string()) {
            merges.emplace_back(m[0].get<std::string>(), m[1].get<std::string>());
        } else {
            throw Error(at + ": expected \"A B\" or [\"A\", \"B\"], found " + m.dump());
        }
    }
    ClipTokenizer t;
    t.impl_ = std::make_shared<Impl>(where, tokens, merges);
    return t;
}

ClipTokenizer ClipTokenizer::from_bpe_gz(const std::string& path) {
    // Only the lines CLIP uses are split out: the file has five times as many.
    const auto lines = split_lines(read_gz(path), kBpeGzMerges + 1);
    // Line 0 is a header; the merges follow.
    if (lines.size() < kBpeGzMerges + 1)
        throw Error("CLIP vocabulary '" + path + "' has " + std::to_string(lines.size()) +
                    " lines, expected at least " + std::to_string(kBpeGzMerges + 1));
    std::vector<Merge> merges;
    merges.reserve(kBpeGzMerges);
    for (size_t i = 1; i <= kBpeGzMerges; ++i)
        merges.push_back(parse_merge(lines[i], "CLIP vocabulary '" + path + "' line " + std::to_string(i + 1)));
    // The vocabulary is implied: bytes, bytes ending a word, one token per merge, the specials.
    std::vector<std::pair<std::string, int64_t>> tokens;
    tokens.reserve(2 * 256 + merges.size() + 2);
    const auto bytes = byte_unicode_in_vocab_order();
    for (const auto& [byte, text] : bytes)
        tokens.emplace_back(text, static_cast<int64_t>(tokens.size()));
    for (const auto& [byte, text] : bytes)
        tokens.emplace_back(text + kWordEnd, static_cast<int64_t>(tokens.size()));
    for (const auto& [a, b] : merges)
        tokens.emplace_back(a + b, static_cast<int64_t>(tokens.size()));
    tokens.emplace_back(kBosToken, static_cast<int64_t>(tokens.size()));
    tokens.emplace_back(kEosToken, static_cast<int64_t>(tokens.size()));
    ClipTokenizer t;
    t.impl_ = std::make_shared<Impl>("CLIP vocabulary '" + path + "'", tokens, merges);
    return t;
}

ClipTokenizer ClipTokenizer::bundled() {
    // Parsed once per process: the GUI and CLI ask for it repeatedly and it takes tens of ms.
    static const ClipTokenizer tokenizer = from_bpe_gz(resource_path("clip/bpe_simple_vocab_16e6.txt.gz").string());
    return tokenizer;
}

std::vector<int64_t> ClipTokenizer::encode_ids(const std::string& text) const {
    const std::u32string raw = unicode::decode_utf8(text);
    // Special tokens are matched in the raw text, before normalization and case-sensitively, as
    // transformers 5 does: "<|endoftext|>" anywhere is the end token, "<|ENDOFTEXT|>" is text.
    static const std::u32string bos_text = U"<|startoftext|>", eos_text = U"<|endoftext|>";
    std::vector<int64_t> ids;
    std::lock_guard<std::mutex> lock(impl_->cache_mutex);
    size_t segment = 0;
    for (size_t i = 0; i <= raw.size(); ++i) {
        const std::u32string* special = nullptr;
        if (i < raw.size() && raw[i] == U'<') {
            if (raw.compare(i, bos_text.size(), bos_text) == 0)
                special = &bos_text;
            else if (raw.compare(i, eos_text.size(), eos_text) == 0)
                special = &eos_text;
        }
        if (!special && i < raw.size())
            continue;
        const std::u32string lower = normalized(raw.substr(segment, i - segment));
        if (embeddings_)
            embeddings_->encode(lower, *impl_, ids);
        else
            impl_->encode_words(lower, ids);
        if (!special)
            break;
        ids.push_back(special == &bos_text ? impl_->bos : impl_->eos);
        segment = i + special->size();
        i = segment - 1;
    }
    return ids;
}

TokenizedPrompt ClipTokenizer::encode(const std::string& prompt) const {
    TokenizedPrompt out;
    out.prompt = prompt;
    const std::vector<int64_t> ids = encode_ids(prompt);
    const int64_t bos = impl_->bos, eos = impl_->eos;

    out.untruncated_ids.reserve(ids.size() + 2);
    out.untruncated_ids.push_back(bos);
    out.untruncated_ids.insert(out.untruncated_ids.end(), ids.begin(), ids.end());
    out.untruncated_ids.push_back(eos);
    out.tokens.reserve(out.untruncated_ids.size());
    for (int64_t id : out.untruncated_ids)
        out.tokens.push_back(token_string(id));

    // Truncation keeps the start and end tokens and drops words from the end.
    const size_t room = kMaxLength - 2;
    out.truncated = ids.size() > room;
    const size_t kept = std::min(ids.size(), room);
    out.input_ids.assign(kMaxLength, eos);
    out.attention_mask.assign(kMaxLength, 0);
    out.input_ids[0] = bos;
    std::copy(ids.begin(), ids.begin() + static_cast<std::ptrdiff_t>(kept), out.input_ids.begin() + 1);
    std::fill(out.attention_mask.begin(), out.attention_mask.begin() + static_cast<std::ptrdiff_t>(kept + 2), 1);
    out.embedding.assign(kMaxLength, std::string());
    if (embeddings_)
        for (size_t i = 0; i < out.input_ids.size(); ++i)
            if (out.input_ids[i] >= embeddings_->first_id)
                out.embedding[i] = embeddings_->trigger_of[out.input_ids[i] - embeddings_->first_id];
    return out;
}

const std::string& ClipTokenizer::token_string(int64_t id) const {
    if (embeddings_ && id >= embeddings_->first_id &&
        id - embeddings_->first_id < static_cast<int64_t>(embeddings_->names.size()))
        return embeddings_->names[id - embeddings_->first_id];
    if (id < 0 || static_cast<size_t>(id) >= impl_->id_to_token.size() || impl_->id_to_token[id].empty())
        throw Error(impl_->source + ": no token has id " + std::to_string(id));
    return impl_->id_to_token[id];
}

size_t ClipTokenizer::vocab_size() const { return impl_->vocab.size(); }

int64_t ClipTokenizer::first_embedding_id() const { return static_cast<int64_t>(impl_->id_to_token.size()); }

ClipTokenizer ClipTokenizer::with_embeddings(const std::vector<EmbeddingTrigger>& embeddings) const {
    ClipTokenizer t;
    t.impl_ = impl_;
    if (embeddings.empty())
        return t;
    auto e = std::make_shared<Embeddings>();
    e->first_id = first_embedding_id();
    int64_t next = e->first_id;
    for (const auto& emb : embeddings) {
        const std::u32string text = normalized(unicode::decode_utf8(emb.trigger));
        if (text.empty())
            throw Error("an embedding has an empty trigger word");
        if (std::any_of(text.begin(), text.end(), unicode::is_whitespace))
            throw Error("embedding trigger '" + emb.trigger + "' has whitespace in it; a trigger is one word");
        if (text.find(U"<|startoftext|>") != std::u32string::npos || text.find(U"<|endoftext|>") != std::u32string::npos)
            throw Error("embedding trigger '" + emb.trigger + "' holds a start or end token, which a prompt never "
                        "spells as text");
        if (emb.vectors < 1)
            throw Error("embedding '" + emb.trigger + "' has no vectors");
        for (const auto& other : e->triggers)
            if (other.text == text)
                throw Error("two embeddings have the trigger '" + emb.trigger + "' (triggers ignore case)");
        e->triggers.push_back({text, next, emb.vectors});
        // "<cat-toy>" reads as "<cat-toy:0>" rather than "<<cat-toy>:0>".
        const bool bracketed = emb.trigger.size() > 2 && emb.trigger.front() == '<' && emb.trigger.back() == '>';
        const std::string stem = bracketed ? emb.trigger.substr(1, emb.trigger.size() - 2) : emb.trigger;
        for (int k = 0; k < emb.vectors; ++k) {
            e->names.push_back("<" + stem + ":" + std::to_string(k) + ">");
            e->trigger_of.push_back(emb.trigger);
        }
        next += emb.vectors;
    }
    std::stable_sort(e->triggers.begin(), e->triggers.end(),
                     [](const auto& a, const auto& b) { return a.text.size() > b.text.size(); });
    t.embeddings_ = std::move(e);
    return t;
}

void ClipTokenizer::save_vocab_merges(const std::string& vocab_json, const std::string& merges_txt) const {
    std::string vocab = "{";
    bool first = true;
    for (size_t id = 0; id < impl_->id_to_token.size(); ++id) {
        if (impl_->id_to_token[id].empty())
            continue;
        if (!first)
            vocab += ", ";
        first = false;
        append_json_string(impl_->id_to_token[id], vocab);
        vocab += ": " + std::to_string(id);
    }
    vocab += "}";
    std::string merges = "#version: 0.2\n";
    for (const auto& [a, b] : impl_->merges)
        merges += impl_->id_to_token[a] + " " + impl_->id_to_token[b] + "\n";
    write_file(vocab_json, vocab);
    write_file(merges_txt, merges);
}

} // namespace sdl
