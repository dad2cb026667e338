// Baseline x86-64 (SSE2) or any other architecture: 4-float vectors.
#define SDL_FUSED_ISA generic
#define SDL_FUSED_NAME "generic"
#define SDL_FUSED_W 4
#include "core/models/kernels/fused_kernel.inl"
