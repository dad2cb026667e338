#pragma once
// A small flag parser: "--name value", "--name=value", boolean "--flag", and positionals.
// Every accessor marks the flag as used; finish() rejects flags nobody asked for, so a typo is a
// usage error (exit 2) rather than silently ignored.
#include <optional>
#include <set>
#include <string>
#include <vector>

namespace sdl::cli {

class Args {
public:
    Args(std::vector<std::string> argv, std::set<std::string> boolean_flags);

    std::optional<std::string> get(const std::string& flag);
    std::string get_or(const std::string& flag, const std::string& fallback);
    std::string required(const std::string& flag);
    std::vector<std::string> all(const std::string& flag);   // repeated flag
    int get_int(const std::string& flag, int fallback);
    double get_double(const std::string& flag, double fallback);
    bool has(const std::string& flag);                        // boolean flags
    const std::vector<std::string>& positionals();
    void finish() const;  // throws sdl::UsageError on unknown flags or unconsumed positionals

private:
    std::vector<std::pair<std::string, std::string>> values_;
    std::set<std::string> present_bool_;
    std::vector<std::string> positionals_;
    mutable std::set<std::string> used_;
    bool positionals_used_ = false;
};

} // namespace sdl::cli
