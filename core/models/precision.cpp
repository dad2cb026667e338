#include "core/models/precision.h"

#include "core/models/runtime.h"

#include <nlohmann/json.hpp>
#include <torch/version.h>

#include <atomic>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <limits>
#include <sstream>
#include <unistd.h>

namespace sdl {

namespace fs = std::filesystem;

const char* network_key(PrecisionNetwork n) {
    switch (n) {
    case PrecisionNetwork::Unet: return "unet";
    case PrecisionNetwork::VaeEncode: return "vae_encode";
    default: return "vae_decode";
    }
}

const char* network_label(PrecisionNetwork n) {
    switch (n) {
    case PrecisionNetwork::Unet: return "U-Net";
    case PrecisionNetwork::VaeEncode: return "VAE encode";
    default: return "VAE decode";
    }
}

namespace {

std::string format(const char* fmt, double a, double b = 0) {
    char buf[96];
    std::snprintf(buf, sizeof buf, fmt, a, b);
    return buf;
}

bool within_bound(double error) { return error <= kBf16ErrorBound; }  // false for NaN and infinity

std::string over_bound_reason(double error) {
    if (!std::isfinite(error))
        return "bf16 gave NaN/Inf";
    return format("bf16 error %.2g%% over the %.2g%% bound", error * 100, kBf16ErrorBound * 100);
}

std::string describe(torch::Dtype dtype, const PrecisionMeasurement& m) {
    const bool bf16_faster = m.bf16_seconds < m.fp32_seconds;
    if (dtype == torch::kBFloat16)
        return bf16_faster && within_bound(m.bf16_error)
                   ? format("measured %.2fx faster", m.fp32_seconds / m.bf16_seconds)
                   : "set in the cache file";
    if (!within_bound(m.bf16_error))
        return over_bound_reason(m.bf16_error);
    return bf16_faster ? "set in the cache file" : format("measured: bf16 %.2fx slower", m.bf16_seconds / m.fp32_seconds);
}

} // namespace

NetworkPrecision decide_precision(const PrecisionMeasurement& m) {
    NetworkPrecision p;
    p.dtype = m.bf16_seconds < m.fp32_seconds && within_bound(m.bf16_error) ? torch::kBFloat16 : torch::kFloat32;
    p.reason = describe(p.dtype, m);
    p.measured = m;
    return p;
}

NetworkPrecision fixed_precision(torch::Dtype dtype, std::string reason) {
    NetworkPrecision p;
    p.dtype = dtype;
    p.reason = std::move(reason);
    return p;
}

NetworkPrecision cached_precision(const PrecisionCache::Entry& e) {
    NetworkPrecision p;
    p.dtype = e.dtype;
    p.reason = describe(e.dtype, e.measurement);
    p.measured = e.measurement;
    p.cached = true;
    return p;
}

std::string PrecisionPlan::summary() const {
    const std::pair<PrecisionNetwork, const NetworkPrecision*> all[] = {
        {PrecisionNetwork::Unet, &unet}, {PrecisionNetwork::VaeEncode, &vae_encode}, {PrecisionNetwork::VaeDecode, &vae_decode}};
    if (unet.dtype == vae_encode.dtype && unet.dtype == vae_decode.dtype && !unet.measured &&
        unet.reason == vae_encode.reason && unet.reason == vae_decode.reason)
        return std::string(dtype_label(unet.dtype)) + " for every network (" + unet.reason + ")";
    std::string out, oldest;
    for (const auto& [network, p] : all) {
        if (!out.empty())
            out += ", ";
        out += std::string(network_label(network)) + " " + dtype_label(p->dtype) + " (" + p->reason + ")";
        if (p->cached && (oldest.empty() || p->measured->date < oldest))
            oldest = p->measured->date;
    }
    if (!oldest.empty())
        out += ", cached " + oldest;
    if (probe_seconds > 0)
        out += format(", measured now in %.1f s", probe_seconds);
    return out;
}

std::string PrecisionPlan::dtypes() const {
    if (unet.dtype == vae_encode.dtype && unet.dtype == vae_decode.dtype)
        return dtype_label(unet.dtype);
    return std::string("U-Net ") + dtype_label(unet.dtype) + " · VAE encode " + dtype_label(vae_encode.dtype) +
           " · VAE decode " + dtype_label(vae_decode.dtype);
}

std::string cpu_model_name() {
    std::ifstream in("/proc/cpuinfo");
    std::string line;
    while (std::getline(in, line))
        if (line.rfind("model name", 0) == 0) {
            const size_t colon = line.find(':');
            if (colon != std::string::npos && colon + 2 <= line.size())
                return line.substr(colon + 2);
        }
    return "unknown";
}

PrecisionKey precision_key(PrecisionNetwork network, std::string signature) {
    static const std::string cpu = cpu_model_name();
    return {cpu, TORCH_VERSION, at::get_num_threads(), network_key(network), std::move(signature)};
}

PrecisionCache::PrecisionCache(std::string path) : path_(std::move(path)) {}

std::string PrecisionCache::default_path() {
    const auto env = [](const char* name) {
        const char* v = std::getenv(name);
        return v && *v ? std::string(v) : std::string();
    };
    std::string dir = env("SDLENS_CACHE_DIR");
    if (dir.empty() && !env("XDG_CACHE_HOME").empty())
        dir = env("XDG_CACHE_HOME") + "/sdlens";
    if (dir.empty())
        dir = (env("HOME").empty() ? std::string(".") : env("HOME")) + "/.cache/sdlens";
    return dir + "/precision.json";
}

namespace {

nlohmann::json key_json(const PrecisionKey& k) {
    return {{"cpu", k.cpu}, {"libtorch", k.libtorch}, {"threads", k.threads}, {"network", k.network},
            {"signature", k.signature}};
}

// The file's entries, or none when it is missing, unreadable, not JSON or of another format.
nlohmann::json read_entries(const std::string& path) {
    std::error_code ec;
    if (!fs::is_regular_file(path, ec))
        return nlohmann::json::array();
    std::ifstream in(path);
    std::stringstream text;
    text << in.rdbuf();
    const auto j = nlohmann::json::parse(text.str(), nullptr, false);
    if (!j.is_object() || !j.contains("format") || j["format"] != PrecisionCache::kFormat || !j.contains("entries") ||
        !j["entries"].is_array())
        return nlohmann::json::array();
    return j["entries"];
}

bool same_key(const nlohmann::json& entry, const nlohmann::json& key) {
    for (const auto& [name, value] : key.items())
        if (!entry.contains(name) || entry[name] != value)
            return false;
    return true;
}

std::optional<PrecisionCache::Entry> parse_entry(const nlohmann::json& e) {
    const auto number = [&](const char* name) -> std::optional<double> {
        if (!e.contains(name) || !e[name].is_number())
            return std::nullopt;
        return e[name].get<double>();
    };
    const auto fp32 = number("fp32_seconds"), bf16 = number("bf16_seconds");
    if (!fp32 || !bf16 || !e.contains("dtype") || !e["dtype"].is_string() || !e.contains("date") ||
        !e["date"].is_string() || !e.contains("bf16_error"))
        return std::nullopt;
    const std::string dtype = e["dtype"].get<std::string>();
    if (dtype != "fp32" && dtype != "bf16")
        return std::nullopt;
    PrecisionCache::Entry out;
    out.dtype = dtype == "bf16" ? torch::kBFloat16 : torch::kFloat32;
    out.measurement.fp32_seconds = *fp32;
    out.measurement.bf16_seconds = *bf16;
    // JSON has no infinity: a bf16 run that gave NaN/Inf is stored as null.
    out.measurement.bf16_error = number("bf16_error").value_or(std::numeric_limits<double>::infinity());
    out.measurement.date = e["date"].get<std::string>();
    return out;
}

} // namespace

std::optional<PrecisionCache::Entry> PrecisionCache::find(const PrecisionKey& key) const {
    const auto k = key_json(key);
    for (const auto& e : read_entries(path_))
        if (e.is_object() && same_key(e, k))
            return parse_entry(e);
    return std::nullopt;
}

std::string PrecisionCache::store(const std::vector<std::pair<PrecisionKey, Entry>>& entries) const {
    nlohmann::json kept = nlohmann::json::array();
    for (const auto& e : read_entries(path_)) {
        bool replaced = false;
        for (const auto& [key, entry] : entries)
            replaced = replaced || (e.is_object() && same_key(e, key_json(key)));
        if (!replaced)
            kept.push_back(e);
    }
    for (const auto& [key, entry] : entries) {
        auto j = key_json(key);
        const auto& m = entry.measurement;
        j["dtype"] = dtype_label(entry.dtype);
        j["fp32_seconds"] = m.fp32_seconds;
        j["bf16_seconds"] = m.bf16_seconds;
        j["bf16_error"] = std::isfinite(m.bf16_error) ? nlohmann::json(m.bf16_error) : nlohmann::json(nullptr);
        j["date"] = m.date;
        kept.push_back(std::move(j));
    }
    const nlohmann::json file = {{"format", kFormat}, {"entries", kept}};
    const fs::path target(path_);
    // Unique per writer: two processes, or two loads in one, may store at once; the last rename wins.
    static std::atomic<int> writes{0};
    const fs::path tmp = target.string() + ".tmp" + std::to_string(::getpid()) + "-" + std::to_string(writes++);
    std::error_code ec;
    fs::create_directories(target.parent_path(), ec);
    std::ofstream out(tmp);
    out << file.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) << '\n';
    out.close();
    std::string failure;
    if (!out)
        failure = ec ? ec.message() : "cannot write " + tmp.string();
    else if (fs::rename(tmp, target, ec); ec)
        failure = ec.message();
    if (failure.empty())
        return "";
    fs::remove(tmp, ec);
    return "could not write the precision cache " + path_ + " (" + failure +
           "); the measurement is repeated on the next load (set SDLENS_CACHE_DIR to a writable folder)";
}

} // namespace sdl
