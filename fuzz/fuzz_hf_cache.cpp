// Repo ids and ref files as typed or found: the first line of the input is what the user gave as a
// model (also tried as a revision of owner/name), the rest is the content of owner/name's
// refs/main in a small cache made once in a temporary folder. Besides "only sdl::Error", a resolved
// snapshot must lie inside the cache: a ref or revision must never lead the loader elsewhere.
#include "core/io/hf_cache.h"
#include "fuzz/harness.h"

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

using namespace sdl;

namespace {

namespace fs = std::filesystem;

const char kCommit[] = "0123456789abcdef0123456789abcdef01234567";

void link_blob(const fs::path& repo, const std::string& file, const std::string& blob, bool create_blob) {
    const fs::path link = repo / "snapshots" / kCommit / file;
    fs::create_directories(link.parent_path());
    fs::create_directories(repo / "blobs");
    if (create_blob)
        std::ofstream(repo / "blobs" / blob) << "{}";
    std::string up = "../../";
    for (const auto& part : fs::path(file).parent_path())
        if (!part.empty())
            up += "../";
    fs::create_symlink(up + "blobs/" + blob, link);
}

// owner/name: a whole snapshot; owner/broken: one whose U-Net blob is gone. Removed at exit.
fs::path make_cache() {
    char templ[] = "/tmp/sdlens-fuzz-hf-XXXXXX";
    if (!::mkdtemp(templ))
        fuzz::fail("cannot create the temporary cache");
    static const fs::path root = templ;
    std::atexit([] {
        std::error_code ec;
        fs::remove_all(root, ec);
    });
    for (const char* name : {"name", "broken"}) {
        const fs::path repo = root / (std::string("models--owner--") + name);
        link_blob(repo, "model_index.json", "aaaa", true);
        link_blob(repo, "unet/config.json", "bbbb", true);
        link_blob(repo, "unet/diffusion_pytorch_model.safetensors", "cccc", name == std::string("name"));
        fs::create_directories(repo / "refs");
        std::ofstream(repo / "refs" / "main") << kCommit;
        std::ofstream(repo / "refs" / "v1") << kCommit;
    }
    ::setenv("HF_HUB_CACHE", root.c_str(), 1);
    return root;
}

void resolve(const std::string& text, const fs::path& cache) {
    const auto repo = parse_repo_id(text);
    if (!repo)
        return;
    HubSnapshot s;
    if (!fuzz::accepts([&] { s = resolve_hub_model(*repo); }))
        return;
    fuzz::check(s.commit.size() == 40, "resolved to something other than a commit hash");
    fuzz::check(fs::path(s.path) == cache / repo->folder_name() / "snapshots" / s.commit,
                "resolved outside the repo's snapshots folder");
    fuzz::check(fs::is_directory(s.path), "resolved to a snapshot that does not exist");
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    static const fs::path cache = make_cache();
    const std::string input(reinterpret_cast<const char*>(data), size);
    const size_t newline = input.find('\n');
    const std::string first = input.substr(0, newline);
    const std::string ref = newline == std::string::npos ? "" : input.substr(newline + 1);
    std::ofstream(cache / "models--owner--name" / "refs" / "main", std::ios::binary | std::ios::trunc) << ref;

    resolve(first, cache);
    resolve("owner/name", cache);
    resolve("owner/name@" + first, cache);
    return 0;
}
