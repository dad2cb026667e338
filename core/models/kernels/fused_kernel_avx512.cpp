// Built with -mavx512f -mavx512bw -mfma (core/CMakeLists.txt); run only where the CPU has them.
#define SDL_FUSED_ISA avx512
#define SDL_FUSED_NAME "avx512"
#define SDL_FUSED_W 16
#include "core/models/kernels/fused_kernel.inl"
