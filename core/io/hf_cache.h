#pragma once
// Models that huggingface_hub already downloaded, found offline in its cache. SD Lens never
// downloads: an absent model is an error that says which folder was searched and the
// `huggingface-cli download` line that would fetch it.
//
// The cache as huggingface_hub writes it:
//   <cache>/models--<owner>--<name>/refs/<revision>        text file: the commit hash
//   <cache>/models--<owner>--<name>/snapshots/<hash>/...  the repo's files, as relative symlinks
//   <cache>/models--<owner>--<name>/blobs/<sha>           the bytes, shared by snapshots
// Qt-free and torch-free.
#include <optional>
#include <string>
#include <vector>

namespace sdl {

// "owner/name" or "owner/name@revision" (a branch, tag or commit hash; "refs/pr/3" too).
struct RepoId {
    std::string owner, name;
    std::string revision;  // empty: "main"

    std::string repo() const { return owner + "/" + name; }          // owner/name
    std::string text() const;                                        // as --model accepts it
    std::string folder_name() const { return "models--" + owner + "--" + name; }
    std::string download_command() const;                            // huggingface-cli download ...
};

// The repo id written in text, or nullopt when text does not look like one: exactly one '/'
// before an optional '@revision', owner and name of [A-Za-z0-9._-] not starting with '.', '-' or
// '~', no ".." or "--" (the hub allows neither), revision parts of the same characters. A relative
// path such as "models/sd15" parses too, so callers look for the path first.
std::optional<RepoId> parse_repo_id(const std::string& text);

// Where huggingface_hub keeps its cache, in its own order: $HF_HUB_CACHE, $HF_HOME/hub,
// $XDG_CACHE_HOME/huggingface/hub, ~/.cache/huggingface/hub. A leading "~/" is expanded with $HOME.
struct HubCacheDir {
    std::string path;
    std::string chosen_by;  // "HF_HUB_CACHE", "HF_HOME", "XDG_CACHE_HOME" or "HOME"
};
// Throws sdl::Error when none of those variables is set.
HubCacheDir hub_cache_dir();

struct HubSnapshot {
    RepoId repo;
    std::string repo_dir;  // <cache>/models--owner--name
    std::string commit;    // the snapshot's hash
    std::string path;      // <cache>/models--owner--name/snapshots/<commit>
};

// The snapshot a revision names: refs/<revision>, or snapshots/<revision> for a 40-hex commit.
// Looks at folders only, never at the files. Throws sdl::Error when the repo or revision is not
// cached (with the download command) or the ref names a snapshot that is not there.
HubSnapshot find_hub_snapshot(const RepoId& repo, const HubCacheDir& cache);

// A link in a snapshot whose blob is gone: what an interrupted download or a hand-cleaned cache
// leaves behind.
struct BrokenLink {
    std::string file;    // relative to the snapshot: "unet/diffusion_pytorch_model.safetensors"
    std::string target;  // as the link says: "../../../blobs/<sha>"
};

// Broken links among the files a diffusers model is read from: model_index.json and the files
// directly in text_encoder/, unet/, vae/, tokenizer/ and scheduler/.
std::vector<BrokenLink> broken_model_links(const std::string& snapshot_dir);

// The snapshot folder to open for a repo id typed as a model: found in hub_cache_dir(), its model
// files checked first. Throws sdl::Error for an absent repo or revision, a ref naming a missing
// snapshot, a broken link (naming the file and its target), or a snapshot with no model_index.json.
HubSnapshot resolve_hub_model(const RepoId& repo);

// Where a --model argument lives on disk: the path itself when it exists, else the snapshot folder
// of a cached repo id (resolve_hub_model). Throws sdl::Error naming both possibilities otherwise.
std::string local_model_path(const std::string& path_or_repo_id);

} // namespace sdl
