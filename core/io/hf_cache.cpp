#include "core/io/hf_cache.h"

#include "core/util/error.h"

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>

namespace sdl {

namespace fs = std::filesystem;

namespace {

bool is_name_char(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
           c == '-';
}

bool all_name_chars(const std::string& s) { return std::all_of(s.begin(), s.end(), is_name_char); }

// The hub's own rule for owners and names; "--" matters here too, since the cache folder joins
// owner and name with it.
bool valid_owner_or_name(const std::string& s) {
    return !s.empty() && s.size() <= 96 && s[0] != '.' && s[0] != '-' && all_name_chars(s) &&
           s.find("..") == std::string::npos && s.find("--") == std::string::npos;
}

// A revision becomes a path under refs/, so no part may climb out of it; a leading '-' would read
// as a flag in the suggested download command.
bool valid_revision(const std::string& rev) {
    if (rev.empty() || rev.size() > 255 || rev[0] == '-')
        return false;
    size_t start = 0;
    while (true) {
        const size_t slash = rev.find('/', start);
        const std::string part = rev.substr(start, slash == std::string::npos ? std::string::npos : slash - start);
        if (part.empty() || part == "." || part == ".." || !all_name_chars(part))
            return false;
        if (slash == std::string::npos)
            return true;
        start = slash + 1;
    }
}

bool is_commit_hash(const std::string& s) {
    return s.size() == 40 &&
           std::all_of(s.begin(), s.end(), [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
}

std::string env(const char* name) {
    const char* v = std::getenv(name);
    return v ? v : "";
}

std::string expand_home(const std::string& p) {
    const std::string home = env("HOME");
    if (home.empty())
        return p;
    if (p == "~")
        return home;
    if (p.rfind("~/", 0) == 0)
        return home + p.substr(1);
    return p;
}

std::string how_chosen(const HubCacheDir& cache) {
    if (cache.chosen_by == "HF_HUB_CACHE")
        return "the cache folder is $HF_HUB_CACHE";
    if (cache.chosen_by == "HF_HOME")
        return "the cache folder is $HF_HOME/hub";
    if (cache.chosen_by == "XDG_CACHE_HOME")
        return "the cache folder is $XDG_CACHE_HOME/huggingface/hub, HF_HUB_CACHE and HF_HOME being unset";
    return "the cache folder is ~/.cache/huggingface/hub, HF_HUB_CACHE, HF_HOME and XDG_CACHE_HOME being unset";
}

// Ref files are the cache's text; a damaged one is quoted back readably, on one line.
std::string printable(const std::string& s) {
    std::string out;
    for (char c : s.substr(0, 60))
        out += (c >= 0x20 && c < 0x7f) ? c : '?';
    return "'" + out + (s.size() > 60 ? "...'" : "'");
}

std::string read_ref(const fs::path& ref, const RepoId& repo) {
    std::ifstream in(ref, std::ios::binary);
    std::string text(256, '\0');
    in.read(&text[0], static_cast<std::streamsize>(text.size()));
    if (in.bad())
        throw Error(ref.string() + ": cannot read");
    text.resize(static_cast<size_t>(in.gcount()));
    const auto first = text.find_first_not_of(" \t\r\n");
    const auto last = text.find_last_not_of(" \t\r\n");
    const std::string commit = first == std::string::npos ? "" : text.substr(first, last - first + 1);
    if (!is_commit_hash(commit))
        throw Error(ref.string() + ": expected a 40-character commit hash, found " + printable(text) +
                    "; this cache entry is damaged: fetch it again with `" + repo.download_command() + "`");
    return commit;
}

std::vector<std::string> cached_revisions(const fs::path& repo_dir) {
    std::vector<std::string> out;
    std::error_code ec;
    for (auto it = fs::directory_iterator(repo_dir / "refs", ec); !ec && it != fs::directory_iterator();
         it.increment(ec))
        if (std::error_code file_ec; it->is_regular_file(file_ec))
            out.push_back(it->path().filename().string());
    std::sort(out.begin(), out.end());
    return out;
}

std::string join(const std::vector<std::string>& v) {
    std::string out;
    for (const auto& s : v)
        out += (out.empty() ? "" : ", ") + s;
    return out;
}

} // namespace

std::string RepoId::text() const { return revision.empty() ? repo() : repo() + "@" + revision; }

std::string RepoId::download_command() const {
    return "huggingface-cli download " + repo() + (revision.empty() ? "" : " --revision " + revision);
}

std::optional<RepoId> parse_repo_id(const std::string& text) {
    const size_t at = text.find('@');
    const std::string id = text.substr(0, at);
    const size_t slash = id.find('/');
    if (slash == std::string::npos || id.find('/', slash + 1) != std::string::npos)
        return std::nullopt;
    RepoId r{id.substr(0, slash), id.substr(slash + 1), ""};
    if (!valid_owner_or_name(r.owner) || !valid_owner_or_name(r.name))
        return std::nullopt;
    if (at != std::string::npos) {
        r.revision = text.substr(at + 1);
        if (!valid_revision(r.revision))
            return std::nullopt;
    }
    return r;
}

HubCacheDir hub_cache_dir() {
    if (const auto v = env("HF_HUB_CACHE"); !v.empty())
        return {expand_home(v), "HF_HUB_CACHE"};
    if (const auto v = env("HF_HOME"); !v.empty())
        return {(fs::path(expand_home(v)) / "hub").string(), "HF_HOME"};
    if (const auto v = env("XDG_CACHE_HOME"); !v.empty())
        return {(fs::path(expand_home(v)) / "huggingface" / "hub").string(), "XDG_CACHE_HOME"};
    if (const auto v = env("HOME"); !v.empty())
        return {(fs::path(v) / ".cache" / "huggingface" / "hub").string(), "HOME"};
    throw Error("cannot locate the Hugging Face cache: HF_HUB_CACHE, HF_HOME, XDG_CACHE_HOME and HOME are all unset; "
                "set HF_HUB_CACHE to the folder that holds the models--owner--name folders");
}

HubSnapshot find_hub_snapshot(const RepoId& repo, const HubCacheDir& cache) {
    const fs::path repo_dir = fs::path(cache.path) / repo.folder_name();
    std::error_code ec;
    if (!fs::is_directory(repo_dir, ec))
        throw Error(repo.text() + ": no such file or folder, and not in the Hugging Face cache (no " +
                    repo_dir.string() + "; " + how_chosen(cache) + "). SD Lens never downloads; fetch it with `" +
                    repo.download_command() + "` or set HF_HUB_CACHE to the cache that holds it");

    const std::string rev = repo.revision.empty() ? "main" : repo.revision;
    const fs::path ref = repo_dir / "refs" / rev;
    HubSnapshot s{repo, repo_dir.string(), "", ""};
    const bool has_ref = fs::is_regular_file(ref, ec);
    if (has_ref) {
        s.commit = read_ref(ref, repo);
    } else if (is_commit_hash(rev)) {
        s.commit = rev;
    } else {
        const auto cached = cached_revisions(repo_dir);
        throw Error(repo.text() + ": revision '" + rev + "' is not in the Hugging Face cache (no " + ref.string() +
                    (cached.empty() ? "; no revision is cached" : "; cached: " + join(cached)) +
                    "). SD Lens never downloads; fetch it with `" + repo.download_command() + "`");
    }
    const fs::path snap = repo_dir / "snapshots" / s.commit;
    if (!fs::is_directory(snap, ec)) {
        if (has_ref)
            throw Error(ref.string() + ": names snapshot " + s.commit + ", but " + snap.string() +
                        " is missing (an interrupted download or a cleaned cache); fetch it again with `" +
                        repo.download_command() + "`");
        throw Error(repo.text() + ": commit " + s.commit + " is not in the Hugging Face cache (no " + snap.string() +
                    "). SD Lens never downloads; fetch it with `" + repo.download_command() + "`");
    }
    s.path = snap.string();
    return s;
}

std::vector<BrokenLink> broken_model_links(const std::string& snapshot_dir) {
    const fs::path root(snapshot_dir);
    std::vector<BrokenLink> out;
    std::error_code ec;
    auto check = [&](const fs::path& p) {
        if (!fs::is_symlink(fs::symlink_status(p, ec)) || fs::exists(fs::status(p, ec)))
            return;
        out.push_back({p.lexically_relative(root).string(), fs::read_symlink(p, ec).string()});
    };
    check(root / "model_index.json");
    for (const char* component : {"text_encoder", "unet", "vae", "tokenizer", "scheduler"}) {
        std::vector<fs::path> files;
        for (auto it = fs::directory_iterator(root / component, ec); !ec && it != fs::directory_iterator();
             it.increment(ec))
            files.push_back(it->path());
        ec.clear();
        std::sort(files.begin(), files.end());
        for (const auto& f : files)
            check(f);
    }
    return out;
}

HubSnapshot resolve_hub_model(const RepoId& repo) {
    const HubSnapshot s = find_hub_snapshot(repo, hub_cache_dir());
    const auto broken = broken_model_links(s.path);
    if (!broken.empty()) {
        const auto& b = broken.front();
        const std::string more =
            broken.size() > 1 ? " (and " + std::to_string(broken.size() - 1) + " more broken links)" : "";
        throw Error((fs::path(s.path) / b.file).string() + ": links to " + b.target +
                    ", which is missing: the download of " + repo.text() + " was interrupted" + more +
                    "; fetch it again with `" + repo.download_command() + "`");
    }
    std::error_code ec;
    if (!fs::is_regular_file(fs::path(s.path) / "model_index.json", ec))
        throw Error(s.path + ": the cached " + repo.text() +
                    " has no model_index.json, so it is not a diffusers model or only part of it was downloaded; "
                    "fetch all of it with `" + repo.download_command() + "`, or open a checkpoint file inside it "
                    "by its path");
    return s;
}

std::string local_model_path(const std::string& path_or_repo_id) {
    std::error_code ec;
    if (std::filesystem::exists(path_or_repo_id, ec))
        return path_or_repo_id;
    if (const auto repo = parse_repo_id(path_or_repo_id))
        return resolve_hub_model(*repo).path;
    throw Error(path_or_repo_id + ": no such file or folder (expected a diffusers model folder with model_index.json, "
                                  "a single-file .safetensors checkpoint, or a Hugging Face repo id owner/name)");
}

} // namespace sdl
