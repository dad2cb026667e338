// Baseline x86-64 (SSE2) or any other architecture: 4-float vectors.
#define SDL_ATTN_ISA generic
#define SDL_ATTN_W 4
#define SDL_ATTN_REGS 16
#include "core/models/kernels/attention_kernel.inl"
