// Built with -mavx512f -mavx512bw -mfma (core/CMakeLists.txt); run only where the CPU has them.
#define SDL_ATTN_ISA avx512
#define SDL_ATTN_W 16
#define SDL_ATTN_REGS 32
#include "core/models/kernels/attention_kernel.inl"
