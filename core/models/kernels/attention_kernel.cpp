#include "core/models/kernels/attention_kernel.h"

namespace sdl::attention_kernel {

int64_t scratch_floats(int64_t d, int64_t d_pad) {
    return kQueryBlock * (d + kKeyBlock + d_pad + 2);
}

AttendFn best_attend() {
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw"))
        return avx512::attend;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        return avx2::attend;
#endif
    return generic::attend;
}

const char* best_isa() {
    const AttendFn f = best_attend();
    return f == avx512::attend ? "avx512" : f == avx2::attend ? "avx2" : "generic";
}

} // namespace sdl::attention_kernel
