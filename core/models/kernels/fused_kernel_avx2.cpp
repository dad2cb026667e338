// Built with -mavx2 -mfma (core/CMakeLists.txt); run only where the CPU has them.
#define SDL_FUSED_ISA avx2
#define SDL_FUSED_NAME "avx2"
#define SDL_FUSED_W 8
#include "core/models/kernels/fused_kernel.inl"
