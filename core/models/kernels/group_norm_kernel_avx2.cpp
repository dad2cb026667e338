// Built with -mavx2 -mfma (core/CMakeLists.txt); run only where the CPU has them.
#define SDL_GN_ISA avx2
#define SDL_GN_NAME "avx2"
#define SDL_GN_W 8
#include "core/models/kernels/group_norm_kernel.inl"
