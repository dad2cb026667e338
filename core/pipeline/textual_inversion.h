#pragma once
// Textual-inversion embeddings put to work: their triggers go to the tokenizer, their vectors to the
// text encoder, under the same ids (past the vocabulary, file by file, vector by vector).
#include "core/io/embedding_files.h"
#include "core/models/clip_text_model.h"
#include "core/tokenizer/clip_tokenizer.h"

#include <vector>

namespace sdl {

// The tokenizer that reads the files' triggers in place of whatever embeddings base read; needs no
// text encoder (the files' vector counts are enough to count positions). Throws sdl::Error.
ClipTokenizer tokenizer_with_embeddings(const ClipTokenizer& base, const std::vector<EmbeddingFile>& files);

// The same, and the encoder takes the files' vectors for those ids (none left when files is empty).
// Throws sdl::Error before changing the encoder.
ClipTokenizer apply_embeddings(const ClipTokenizer& base, ClipTextModel& encoder, const std::vector<EmbeddingFile>& files);

} // namespace sdl
