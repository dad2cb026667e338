#include "core/tokenizer/unicode.h"

#include <algorithm>

namespace sdl::unicode {

namespace ud = sdl::unicode_data;

namespace {

constexpr char32_t kReplacement = 0xFFFD;

// Hangul syllables compose and decompose arithmetically (Unicode §3.12), so they have no table rows.
constexpr char32_t kSBase = 0xAC00, kLBase = 0x1100, kVBase = 0x1161, kTBase = 0x11A7;
constexpr char32_t kLCount = 19, kVCount = 21, kTCount = 28;
constexpr char32_t kNCount = kVCount * kTCount, kSCount = kLCount * kNCount;

template <typename Row, typename Key>
const Row* find_range(const Row* rows, size_t n, Key cp) {
    const Row* end = rows + n;
    const Row* it = std::upper_bound(rows, end, cp, [](Key c, const Row& r) { return c < r.first; });
    if (it == rows)
        return nullptr;
    --it;
    return cp <= it->last ? it : nullptr;
}

template <typename Row>
const Row* find_cp(const Row* rows, size_t n, char32_t cp) {
    const Row* end = rows + n;
    const Row* it = std::lower_bound(rows, end, cp, [](const Row& r, char32_t c) { return r.cp < c; });
    return it != end && it->cp == cp ? it : nullptr;
}

uint8_t char_class(char32_t cp) {
    const auto* r = find_range(ud::kClassRanges, ud::kClassRangesSize, cp);
    return r ? r->cls : 0;
}

uint8_t combining_class(char32_t cp) {
    if (cp < 0x300)
        return 0;
    const auto* r = find_range(ud::kCombiningRanges, ud::kCombiningRangesSize, cp);
    return r ? r->ccc : 0;
}

void decompose(char32_t cp, std::u32string& out) {
    if (cp >= kSBase && cp < kSBase + kSCount) {
        const char32_t s = cp - kSBase;
        out.push_back(kLBase + s / kNCount);
        out.push_back(kVBase + (s % kNCount) / kTCount);
        if (s % kTCount)
            out.push_back(kTBase + s % kTCount);
        return;
    }
    const auto* d = find_cp(ud::kDecompositions, ud::kDecompositionsSize, cp);
    if (!d) {
        out.push_back(cp);
        return;
    }
    decompose(d->first, out);
    if (d->second)
        decompose(d->second, out);
}

// 0 when the pair has no primary composite.
char32_t compose(char32_t a, char32_t b) {
    if (a >= kLBase && a < kLBase + kLCount && b >= kVBase && b < kVBase + kVCount)
        return kSBase + ((a - kLBase) * kVCount + (b - kVBase)) * kTCount;
    if (a >= kSBase && a < kSBase + kSCount && (a - kSBase) % kTCount == 0 && b > kTBase &&
        b < kTBase + kTCount)
        return a + (b - kTBase);
    const auto* end = ud::kCompositions + ud::kCompositionsSize;
    const auto* it = std::lower_bound(ud::kCompositions, end, std::make_pair(a, b),
                                      [](const ud::Composition& c, const std::pair<char32_t, char32_t>& k) {
                                          return c.first < k.first || (c.first == k.first && c.second < k.second);
                                      });
    return it != end && it->first == a && it->second == b ? it->composite : 0;
}

} // namespace

std::u32string decode_utf8(std::string_view bytes) {
    std::u32string out;
    out.reserve(bytes.size());
    const auto* s = reinterpret_cast<const unsigned char*>(bytes.data());
    const size_t n = bytes.size();
    size_t i = 0;
    while (i < n) {
        const unsigned char b = s[i];
        if (b < 0x80) {
            out.push_back(b);
            ++i;
            continue;
        }
        // The allowed range of the second byte rules out overlongs, surrogates and > U+10FFFF up
        // front, which is what makes the replaced subsequences maximal (as Python's).
        size_t len = 0;
        unsigned char lo = 0x80, hi = 0xBF;
        char32_t cp = 0;
        if (b >= 0xC2 && b <= 0xDF) {
            len = 2;
            cp = b & 0x1F;
        } else if (b >= 0xE0 && b <= 0xEF) {
            len = 3;
            cp = b & 0x0F;
            if (b == 0xE0)
                lo = 0xA0;
            else if (b == 0xED)
                hi = 0x9F;
        } else if (b >= 0xF0 && b <= 0xF4) {
            len = 4;
            cp = b & 0x07;
            if (b == 0xF0)
                lo = 0x90;
            else if (b == 0xF4)
                hi = 0x8F;
        } else {
            out.push_back(kReplacement);
            ++i;
            continue;
        }
        size_t j = 1;
        for (; j < len && i + j < n; ++j) {
            const unsigned char c = s[i + j];
            if (c < (j == 1 ? lo : 0x80) || c > (j == 1 ? hi : 0xBF))
                break;
            cp = (cp << 6) | (c & 0x3F);
        }
        out.push_back(j == len ? cp : kReplacement);
        i += j;
    }
    return out;
}

void append_utf8(char32_t cp, std::string& out) {
    if (cp < 0x80) {
        out.push_back(static_cast<char>(cp));
    } else if (cp < 0x800) {
        out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
        out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    } else if (cp < 0x10000) {
        out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
        out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
        out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    } else {
        out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
        out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
        out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
        out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    }
}

bool is_letter(char32_t cp) {
    if (cp < 0x80)
        return (cp | 0x20) >= 'a' && (cp | 0x20) <= 'z';
    return char_class(cp) == 1;
}

bool is_number(char32_t cp) {
    if (cp < 0x80)
        return cp >= '0' && cp <= '9';
    return char_class(cp) == 2;
}

bool is_whitespace(char32_t cp) {
    return (cp >= 0x09 && cp <= 0x0D) || cp == 0x20 || cp == 0x85 || cp == 0xA0 || cp == 0x1680 ||
           (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 || cp == 0x202F ||
           cp == 0x205F || cp == 0x3000;
}

void append_lower(char32_t cp, std::u32string& out) {
    if (cp < 0x80) {
        out.push_back(cp >= 'A' && cp <= 'Z' ? cp + 32 : cp);
        return;
    }
    const auto* l = find_cp(ud::kLowercase, ud::kLowercaseSize, cp);
    if (!l) {
        out.push_back(cp);
        return;
    }
    out.push_back(l->lower1);
    if (l->lower2)
        out.push_back(l->lower2);
}

void nfc(std::u32string& text) {
    if (std::all_of(text.begin(), text.end(), [](char32_t c) { return c < ud::kNfcTrivialBelow; }))
        return;
    std::u32string d;
    d.reserve(text.size() + 8);
    for (char32_t cp : text)
        decompose(cp, d);
    // Canonical ordering: a stable sort of each run of non-starters by combining class.
    for (size_t i = 0; i < d.size();) {
        if (combining_class(d[i]) == 0) {
            ++i;
            continue;
        }
        size_t j = i;
        while (j < d.size() && combining_class(d[j]) != 0)
            ++j;
        std::stable_sort(d.begin() + i, d.begin() + j,
                         [](char32_t a, char32_t b) { return combining_class(a) < combining_class(b); });
        i = j;
    }
    // Canonical composition: a character joins the last starter unless a character of equal or
    // higher class (or a starter) stands between them.
    text.clear();
    if (d.empty())
        return;
    size_t starter = 0;
    int last_class = combining_class(d[0]) ? 256 : 0;
    text.push_back(d[0]);
    for (size_t k = 1; k < d.size(); ++k) {
        const char32_t ch = d[k];
        const int cls = combining_class(ch);
        const char32_t composite = compose(text[starter], ch);
        if (composite && (last_class < cls || last_class == 0)) {
            text[starter] = composite;
            continue;
        }
        if (cls == 0)
            starter = text.size();
        last_class = cls;
        text.push_back(ch);
    }
}

} // namespace sdl::unicode
