// Built with -mavx2 -mfma (core/CMakeLists.txt); run only where the CPU has them.
#define SDL_ATTN_ISA avx2
#define SDL_ATTN_W 8
#define SDL_ATTN_REGS 16
#include "core/models/kernels/attention_kernel.inl"
