// A main() for the fuzz targets in builds without libFuzzer (gcc, the default CI build): runs every
// committed input (seeds and past crashers under tests/fuzz/<target>/), then deterministic random
// mutations of them for a bounded time. Cheap enough for every test run; the real fuzzing is
// fuzz_<target> built with -DSDLENS_FUZZ=ON.
//   replay_<target> [--mutations N] [--seconds S] PATH...   (PATH: a file or a folder of inputs)
#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include <fcntl.h>
#include <unistd.h>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

namespace {

namespace fs = std::filesystem;
using Bytes = std::vector<uint8_t>;

// The input being run, so a crash can save it: the test log alone would not reproduce it.
const Bytes* g_current = nullptr;

// From a signal handler: best effort, nothing to do about a failure.
void write_quietly(int fd, const void* data, size_t size) {
    const ssize_t n = ::write(fd, data, size);
    (void)n;
}

void save_current(int sig) {
    if (g_current) {
        const int fd = ::open("replay-crash.bin", O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd >= 0) {
            write_quietly(fd, g_current->data(), g_current->size());
            ::close(fd);
        }
        const char msg[] = "replay: crashing input saved as replay-crash.bin in the working directory\n";
        write_quietly(2, msg, sizeof msg - 1);
    }
    std::signal(sig, SIG_DFL);
    std::raise(sig);
}

void run(const Bytes& input) {
    g_current = &input;
    LLVMFuzzerTestOneInput(input.data(), input.size());
    g_current = nullptr;
}

Bytes read_file(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    return Bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

// xorshift64*: the same sequence on every platform and standard library, so a failure found by the
// mutations reproduces anywhere from the seed alone.
struct Rng {
    uint64_t s;
    uint64_t next() {
        s ^= s >> 12;
        s ^= s << 25;
        s ^= s >> 27;
        return s * 2685821657736338717ull;
    }
    size_t below(size_t n) { return n ? static_cast<size_t>(next() % n) : 0; }
};

// Values that often sit on a boundary of a length or an index check.
const uint64_t kInteresting[] = {0, 1, 0x7f, 0x80, 0xff, 0x100, 0x7fff, 0xffff, 0x7fffffff, 0xffffffff,
                                 0x100000000ull, 0x7fffffffffffffffull, ~0ull};

void mutate(Bytes& b, const std::vector<Bytes>& corpus, Rng& r) {
    switch (r.below(b.empty() ? 3 : 8)) {
    case 0:  // insert random bytes
    {
        const size_t at = r.below(b.size() + 1), n = 1 + r.below(8);
        for (size_t i = 0; i < n; ++i)
            b.insert(b.begin() + static_cast<std::ptrdiff_t>(at), static_cast<uint8_t>(r.next()));
        break;
    }
    case 1:  // splice: our prefix, another input's suffix
    {
        const Bytes& o = corpus[r.below(corpus.size())];
        b.resize(r.below(b.size() + 1));
        const size_t from = r.below(o.size() + 1);
        b.insert(b.end(), o.begin() + static_cast<std::ptrdiff_t>(from), o.end());
        break;
    }
    case 2:  // insert a digit run (lengths, shapes and offsets are often decimal text)
    {
        const std::string n = std::to_string(r.next() >> r.below(64));
        b.insert(b.begin() + static_cast<std::ptrdiff_t>(r.below(b.size() + 1)), n.begin(), n.end());
        break;
    }
    case 3: b[r.below(b.size())] ^= static_cast<uint8_t>(1u << r.below(8)); break;
    case 4: b[r.below(b.size())] = static_cast<uint8_t>(r.next()); break;
    case 5:  // erase a range
    {
        const size_t at = r.below(b.size()), n = 1 + r.below(std::min<size_t>(b.size() - at, 16));
        b.erase(b.begin() + static_cast<std::ptrdiff_t>(at), b.begin() + static_cast<std::ptrdiff_t>(at + n));
        break;
    }
    case 6:  // truncate
        b.resize(r.below(b.size()));
        break;
    default:  // overwrite with a boundary value, little-endian, 1 to 8 bytes
    {
        const uint64_t v = kInteresting[r.below(std::size(kInteresting))];
        const size_t at = r.below(b.size()), n = std::min<size_t>(1 + r.below(8), b.size() - at);
        for (size_t i = 0; i < n; ++i)
            b[at + i] = static_cast<uint8_t>(v >> (8 * i));
        break;
    }
    }
}

} // namespace

int main(int argc, char** argv) {
    long mutations = 5000;
    double seconds = 3;
    std::vector<fs::path> files;
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        if (a == "--mutations" && i + 1 < argc) {
            mutations = std::atol(argv[++i]);
        } else if (a == "--seconds" && i + 1 < argc) {
            seconds = std::atof(argv[++i]);
        } else if (fs::is_directory(a)) {
            for (const auto& e : fs::recursive_directory_iterator(a))
                if (e.is_regular_file())
                    files.push_back(e.path());
        } else if (fs::is_regular_file(a)) {
            files.emplace_back(a);
        } else {
            std::fprintf(stderr, "replay: %s: no such file or folder\n", a.c_str());
            return 2;
        }
    }
    std::sort(files.begin(), files.end());
    for (int sig : {SIGSEGV, SIGABRT, SIGBUS, SIGFPE, SIGILL})
        std::signal(sig, save_current);

    std::vector<Bytes> corpus;
    for (const auto& f : files) {
        corpus.push_back(read_file(f));
        std::fprintf(stderr, "replay: %s\n", f.c_str());
        run(corpus.back());
    }
    if (corpus.empty())
        corpus.emplace_back();

    Rng rng{0x5d1e5f022ull};
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
    long done = 0;
    for (; done < mutations && std::chrono::steady_clock::now() < deadline; ++done) {
        Bytes b = corpus[rng.below(corpus.size())];
        for (size_t n = 1 + rng.below(4); n > 0; --n)
            mutate(b, corpus, rng);
        run(b);
    }
    std::fprintf(stderr, "replay: %zu inputs, %ld mutations, no crash\n", files.size(), done);
    return 0;
}
