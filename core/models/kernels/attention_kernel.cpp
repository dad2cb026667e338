#include "core/models/kernels/attention_kernel.h"

namespace sdl::attention_kernel {

int64_t scratch_floats(int64_t d, int64_t d_pad) {
    return kQueryBlock * (d + kKeyBlock + d_pad + 2);
}

int64_t scratch_floats_bf16(int64_t d2, int64_t d_pad) {
    // Scores, output, m and l as float32; the query pairs (32 bits each) and the bfloat16 weights.
    return kQueryBlock * (kKeyBlock + d_pad + 2 + d2 + kKeyBlock / 2);
}

AttendBf16Fn bf16_attend() {
#if defined(SDLENS_HAVE_AVX512BF16)
    if (__builtin_cpu_supports("avx512bf16") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512vl"))
        return avx512bf16::attend;
#endif
    return nullptr;
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
