#pragma once
// The slice of Unicode that CLIP's tokenizer needs, without ICU or a regex library in core/:
// UTF-8 decoding, letter/number/space classes, lower-casing and NFC, all as Hugging Face
// tokenizers applies them. Tables come from unicode_tables.cpp (generated, see
// gen_unicode_tables.py).
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace sdl::unicode {

// Decodes UTF-8 the way Python's bytes.decode("utf-8", errors="replace") does: each maximal
// invalid subsequence (stray byte, truncated sequence, overlong form, surrogate, > U+10FFFF)
// becomes one U+FFFD, so no input is rejected and none is silently dropped.
std::u32string decode_utf8(std::string_view bytes);
void append_utf8(char32_t cp, std::string& out);

bool is_letter(char32_t cp);      // \p{L}
bool is_number(char32_t cp);      // \p{N}
bool is_whitespace(char32_t cp);  // \s: the White_Space property, as Oniguruma's \s
// Full per-character lower-case mapping (U+0130 becomes two characters), appended to out.
void append_lower(char32_t cp, std::u32string& out);
// Canonical composition (NFC), in place.
void nfc(std::u32string& text);

} // namespace sdl::unicode

namespace sdl::unicode_data {

struct ClassRange { char32_t first, last; uint8_t cls; };  // cls: 1 letter, 2 number
struct Lower { char32_t cp, lower1, lower2; };              // lower2 == 0: single character
struct Decomposition { char32_t cp, first, second; };        // second == 0: singleton
struct CombiningRange { char32_t first, last; uint8_t ccc; };
struct Composition { char32_t first, second, composite; };   // sorted by (first, second)

extern const char* const kUnicodeVersion;
extern const char32_t kNfcTrivialBelow;
extern const ClassRange kClassRanges[];
extern const size_t kClassRangesSize;
extern const Lower kLowercase[];
extern const size_t kLowercaseSize;
extern const Decomposition kDecompositions[];
extern const size_t kDecompositionsSize;
extern const CombiningRange kCombiningRanges[];
extern const size_t kCombiningRangesSize;
extern const Composition kCompositions[];
extern const size_t kCompositionsSize;

} // namespace sdl::unicode_data
