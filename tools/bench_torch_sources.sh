#!/usr/bin/env bash
# Debian's LibTorch 1.13 against PyPI's 2.x, side by side in one run on one machine: the U-Net call
# (batch 2, as with guidance) and the VAE decode of `sdlens-cli bench`, at 256² and 512², fp32 and
# bf16, with each attention the build offers (flash: SD Lens' kernel; sdpa: LibTorch 2.x's
# scaled_dot_product_attention; plain: bmm + softmax + bmm), in each memory format (contiguous NCHW,
# channels-last NHWC), and each run's peak RSS. The two builds alternate configuration by
# configuration, so machine noise falls on both alike.
#
# Usage: tools/bench_torch_sources.sh DEBIAN_BUILD PYPI_BUILD MODEL [OUT.jsonl]
#   MODEL: a full-size SD 1.5 folder, e.g. `sdlens-cli make-model --preset sd15 --out /tmp/sd15`.
#   BENCH_SIZES, BENCH_DTYPES, BENCH_KERNELS, BENCH_FORMATS, BENCH_REPEAT and BENCH_THREADS override the
#   defaults below.
# Prints a Markdown table (minimum of BENCH_REPEAT timed calls after a warm-up) and keeps every
# bench JSON, one per line with the build's name added, in OUT.jsonl (default bench_torch_sources.jsonl).
set -euo pipefail
[ $# -ge 3 ] || { sed -n '2,16p' "$0" >&2; exit 2; }
debian=$1/bin/sdlens-cli pypi=$2/bin/sdlens-cli model=$3 out=${4:-bench_torch_sources.jsonl}
sizes=${BENCH_SIZES:-256 512} dtypes=${BENCH_DTYPES:-fp32 bf16} kernels=${BENCH_KERNELS:-flash sdpa plain}
formats=${BENCH_FORMATS:-contiguous channels-last}
repeat=${BENCH_REPEAT:-2} threads=${BENCH_THREADS:-$(nproc)}
: >"$out"
for size in $sizes; do
  for dtype in $dtypes; do
    for kernel in $kernels; do
      for format in $formats; do
        for build in debian pypi; do
          [ "$kernel" = sdpa ] && [ "$build" = debian ] && continue  # 1.13 has no SDPA
          cli=$debian; [ "$build" = pypi ] && cli=$pypi
          echo "bench: $build $size² $dtype $kernel $format" >&2
          "$cli" bench --model "$model" --width "$size" --height "$size" --dtype "$dtype" --threads "$threads" \
            --attention-kernel "$kernel" --memory-format "$format" --repeat "$repeat" --no-pipeline 2>/dev/null |
            python3 -c "import json,sys; j=json.load(sys.stdin); j['build']='$build'; print(json.dumps(j))" >>"$out"
        done
      done
    done
  done
done
python3 - "$out" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
print(f"CPU: {rows[0]['versions']['device']}, {rows[0]['versions']['threads']} threads\n")
print("| LibTorch | size | dtype | attention | memory format | U-Net call (ms) | VAE decode (ms) | peak RSS (MB) |")
print("|---|---|---|---|---|---:|---:|---:|")
for j in rows:
    kernel = j["attention_kernel"].split(" ")[0]
    print(f"| {j['versions']['libtorch']} | {j['size'][0]}² | {j['dtype']} | {kernel} | {j['memory_format']} | "
          f"{j['unet_call_ms']['min']:.0f} | {j['vae_decode_ms']['min']:.0f} | {j['peak_rss_mb']:.0f} |")
PY
