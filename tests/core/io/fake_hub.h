#pragma once
// A Hugging Face hub cache written the way huggingface_hub writes one, for tests that must not
// download: the bytes in blobs/ (named by a hash of their content, so equal files share a blob),
// snapshots/<commit>/<file> as relative symlinks into ../../blobs (one more ../ per subfolder), and
// refs/<revision> holding the commit hash with no newline.
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>

namespace sdl::test {

namespace fs = std::filesystem;

// Stands in for the sha256 huggingface_hub names LFS blobs by: 64 hex digits, one per content.
inline std::string blob_name(const fs::path& file) {
    std::ifstream in(file, std::ios::binary);
    const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    uint64_t h = 1469598103934665603ULL;
    for (unsigned char c : bytes)
        h = (h ^ c) * 1099511628211ULL;
    char hex[17];
    std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(h));
    return std::string(hex) + hex + hex + hex;
}

inline void write_ref(const fs::path& repo_dir, const std::string& revision, const std::string& commit) {
    fs::create_directories((repo_dir / "refs" / revision).parent_path());
    std::ofstream(repo_dir / "refs" / revision, std::ios::binary) << commit;
}

// Puts every file under source into cache/models--owner--name as snapshot `commit`; a non-empty
// ref also names it in refs/. Returns the snapshot folder.
inline fs::path add_hub_snapshot(const fs::path& cache, const std::string& owner, const std::string& name,
                                 const fs::path& source, const std::string& commit, const std::string& ref = "main") {
    const fs::path repo = cache / ("models--" + owner + "--" + name);
    const fs::path snapshot = repo / "snapshots" / commit;
    fs::create_directories(repo / "blobs");
    for (const auto& e : fs::recursive_directory_iterator(source)) {
        if (!e.is_regular_file())
            continue;
        const fs::path rel = e.path().lexically_relative(source);
        const std::string blob = blob_name(e.path());
        if (!fs::exists(repo / "blobs" / blob)) {
            fs::copy_file(e.path(), repo / "blobs" / blob);
            fs::permissions(repo / "blobs" / blob, fs::perms::owner_write, fs::perm_options::add);
        }
        std::string up = "../../";
        for (const auto& part : rel.parent_path())
            if (!part.empty())
                up += "../";
        fs::create_directories((snapshot / rel).parent_path());
        fs::create_symlink(up + "blobs/" + blob, snapshot / rel);
    }
    if (!ref.empty())
        write_ref(repo, ref, commit);
    return snapshot;
}

} // namespace sdl::test
