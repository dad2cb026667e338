#pragma once
// What every target counts as a finding. Bad input must end in sdl::Error, whose message the CLI
// and GUI show; any other exception would reach the user as an unexplained failure (or terminate a
// worker thread), so it aborts here and the fuzzer keeps the input.
#include "core/util/error.h"

#include <cstdio>
#include <cstdlib>
#include <exception>

namespace sdl::fuzz {

[[noreturn]] inline void fail(const char* what, const char* detail = "") {
    std::fprintf(stderr, "fuzz finding: %s %s\n", what, detail);
    std::abort();
}

inline void check(bool ok, const char* what) {
    if (!ok)
        fail("broken invariant:", what);
}

// Keeps the reads that compute v from being optimised away.
inline volatile unsigned g_sink = 0;
inline void sink(unsigned v) { g_sink = v; }

// Runs f; returns false when it rejected the input with sdl::Error.
template <class F>
bool accepts(F&& f) {
    try {
        f();
        return true;
    } catch (const sdl::Error&) {
        return false;
    } catch (const std::exception& e) {
        fail("exception other than sdl::Error:", e.what());
    }
}

} // namespace sdl::fuzz
