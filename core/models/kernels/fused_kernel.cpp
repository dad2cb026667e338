#include "core/models/kernels/fused_kernel.h"

#include <cstring>
#include <initializer_list>

namespace sdl::fused_kernel {

namespace {
bool cpu_has(const char* isa) {
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
    if (std::strcmp(isa, "avx512") == 0)
        return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw");
    if (std::strcmp(isa, "avx2") == 0)
        return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#endif
    return std::strcmp(isa, "generic") == 0;
}
} // namespace

const Kernels* by_isa(const char* isa) {
    if (!cpu_has(isa))
        return nullptr;
    if (std::strcmp(isa, "avx512") == 0)
        return &avx512::kernels;
    if (std::strcmp(isa, "avx2") == 0)
        return &avx2::kernels;
    return &generic::kernels;
}

Kernels best() {
    for (const char* isa : {"avx512", "avx2"})
        if (const Kernels* k = by_isa(isa))
            return *k;
    return generic::kernels;
}

} // namespace sdl::fused_kernel
