#pragma once
// Memory-efficient attention on the CPU: the FlashAttention algorithm (blocked, online softmax), so
// no [Lq, Lk] score matrix is ever held; a [64, 256] tile per thread instead. LibTorch 1.13 has no
// scaled_dot_product_attention, and its bmm + softmax + bmm spends most of a 512x512 U-Net call
// writing and reading the score matrices (1 GiB per SD 1.5 self-attention at batch 2).
#include <torch/torch.h>

namespace sdl {

enum class CpuAttention {
    flash,  // this file's kernel (the default)
    sdpa,   // LibTorch 2.x's at::scaled_dot_product_attention (its own CPU flash kernel)
    plain,  // bmm + softmax + bmm in query chunks, as before it: for comparisons (`bench --attention-kernel plain`)
};
void set_cpu_attention(CpuAttention a);  // sdpa on a LibTorch without it: an sdl::UsageError
CpuAttention cpu_attention();
bool have_sdpa();                   // LibTorch 2.x
const char* cpu_attention_label();  // "flash (avx512)", ..., "sdpa" or "plain": the kernels this CPU runs

// softmax(q k^T / sqrt(d)) v. q [B, heads, Lq, d], k and v [B, heads, Lk, d] on the CPU, float32 or
// bfloat16, any strides. Computed in float32 whatever the input type (so `upcast` always holds) and
// returned in q's type as a [B, heads, Lq, d] view of a [B, Lq, heads, d] tensor: merging the heads
// back is then free. causal: query i sees keys j <= i. isa: "avx512bf16" (bfloat16 inputs only),
// "avx512", "avx2", "generic" or empty for the widest this CPU runs (tests run each). The avx512bf16
// kernel multiplies the bfloat16 inputs as they are but rounds the softmax weights to bfloat16 for
// the value product (as the plain bfloat16 path does); the others compute everything in float32.
torch::Tensor flash_attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                              bool causal = false, const std::string& isa = {});

} // namespace sdl
