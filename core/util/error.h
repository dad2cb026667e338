#pragma once
// Errors a user can act on. Every message names the file, key or value at fault and, where it
// applies, what was expected and what was found. The CLI prints what() on one line; the GUI shows it.
#include <stdexcept>
#include <string>

namespace sdl {

class Error : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

// A malformed command line or request (CLI exit code 2), as opposed to bad data (exit code 1).
class UsageError : public Error {
public:
    using Error::Error;
};

// The user asked to stop; not a failure.
class Cancelled : public Error {
public:
    Cancelled() : Error("cancelled") {}
};

} // namespace sdl
