// Built with -mavx512f -mavx512bw -mfma (core/CMakeLists.txt); run only where the CPU has them.
#define SDL_GN_ISA avx512
#define SDL_GN_NAME "avx512"
#define SDL_GN_W 16
#include "core/models/kernels/group_norm_kernel.inl"
