// Baseline x86-64 (SSE2) or any other architecture: 4-float vectors.
#define SDL_GN_ISA generic
#define SDL_GN_NAME "generic"
#define SDL_GN_W 4
#include "core/models/kernels/group_norm_kernel.inl"
