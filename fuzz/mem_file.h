#pragma once
// The readers under test take a path. A memfd gives them one without touching the disk, so a fuzzer
// runs at full speed, several can run at once, and a crash leaves no stray files behind.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include <sys/mman.h>
#include <unistd.h>

namespace sdl::fuzz {

class MemFile {
public:
    // `size` bytes: `data` first, zeros after. The zeros come from ftruncate, so they cost no memory
    // until read: a harness can describe multi-megabyte tensors with a few bytes of input.
    MemFile(const uint8_t* data, size_t len, size_t size) : fd_(::memfd_create("sdlens-fuzz", MFD_CLOEXEC)) {
        if (fd_ < 0)
            die("memfd_create");
        for (size_t done = 0; done < len;) {
            const ssize_t n = ::write(fd_, data + done, len - done);
            if (n <= 0)
                die("write");
            done += static_cast<size_t>(n);
        }
        if (size > len && ::ftruncate(fd_, static_cast<off_t>(size)) != 0)
            die("ftruncate");
    }
    MemFile(const uint8_t* data, size_t len) : MemFile(data, len, len) {}
    ~MemFile() { ::close(fd_); }
    MemFile(const MemFile&) = delete;
    MemFile& operator=(const MemFile&) = delete;

    // Opening this path opens the memfd itself (a new description, reading from offset 0).
    std::string path() const { return "/proc/self/fd/" + std::to_string(fd_); }

private:
    // The harness itself failing is not a finding; stop loudly rather than fuzz nothing.
    [[noreturn]] static void die(const char* what) {
        std::perror(what);
        std::abort();
    }
    int fd_;
};

} // namespace sdl::fuzz
