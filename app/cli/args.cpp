#include "app/cli/args.h"

#include "core/util/error.h"

#include <cstdlib>

namespace sdl::cli {

Args::Args(std::vector<std::string> argv, std::set<std::string> boolean_flags) {
    bool only_positionals = false;
    for (size_t i = 0; i < argv.size(); ++i) {
        const std::string& a = argv[i];
        if (only_positionals || a.size() < 3 || a.rfind("--", 0) != 0) {
            if (a == "--") {
                only_positionals = true;
                continue;
            }
            positionals_.push_back(a);
            continue;
        }
        const auto eq = a.find('=');
        const std::string name = a.substr(0, eq);
        if (boolean_flags.count(name)) {
            if (eq != std::string::npos)
                throw UsageError("flag " + name + " takes no value");
            present_bool_.insert(name);
        } else if (eq != std::string::npos) {
            values_.emplace_back(name, a.substr(eq + 1));
        } else {
            if (i + 1 >= argv.size())
                throw UsageError("flag " + name + " needs a value");
            values_.emplace_back(name, argv[++i]);
        }
    }
}

std::optional<std::string> Args::get(const std::string& flag) {
    used_.insert(flag);
    std::optional<std::string> v;
    for (const auto& [k, val] : values_)
        if (k == flag)
            v = val;
    return v;
}

std::string Args::get_or(const std::string& flag, const std::string& fallback) {
    return get(flag).value_or(fallback);
}

std::string Args::required(const std::string& flag) {
    auto v = get(flag);
    if (!v)
        throw UsageError("missing required flag " + flag);
    return *v;
}

std::vector<std::string> Args::all(const std::string& flag) {
    used_.insert(flag);
    std::vector<std::string> out;
    for (const auto& [k, val] : values_)
        if (k == flag)
            out.push_back(val);
    return out;
}

int Args::get_int(const std::string& flag, int fallback) {
    auto v = get(flag);
    if (!v)
        return fallback;
    char* end = nullptr;
    const long n = std::strtol(v->c_str(), &end, 10);
    if (v->empty() || *end != '\0' || n < -2147483647L || n > 2147483647L)
        throw UsageError(flag + " expects an integer, got '" + *v + "'");
    return static_cast<int>(n);
}

double Args::get_double(const std::string& flag, double fallback) {
    auto v = get(flag);
    if (!v)
        return fallback;
    char* end = nullptr;
    const double d = std::strtod(v->c_str(), &end);
    if (v->empty() || *end != '\0')
        throw UsageError(flag + " expects a number, got '" + *v + "'");
    return d;
}

bool Args::has(const std::string& flag) {
    used_.insert(flag);
    return present_bool_.count(flag) != 0;
}

const std::vector<std::string>& Args::positionals() {
    positionals_used_ = true;
    return positionals_;
}

void Args::finish() const {
    for (const auto& [k, v] : values_)
        if (!used_.count(k))
            throw UsageError("unknown flag " + k);
    for (const auto& k : present_bool_)
        if (!used_.count(k))
            throw UsageError("unknown flag " + k);
    if (!positionals_used_ && !positionals_.empty())
        throw UsageError("unexpected argument '" + positionals_.front() + "'");
}

} // namespace sdl::cli
