#!/usr/bin/env bash
# SD Lens next to its peers on this CPU, side by side in one run: OpenVINO (optimum-intel's fp16 IR, the
# CPU plugin's default inference precision) and diffusers on PyTorch 2.x (eager, bf16 by default). Each
# times the U-Net call (batch 2, cond + uncond, as with guidance) and the VAE decode (batch 1) at 256² and
# 512² (latents 32² and 64²), and reports its process's peak RSS: every peer and size runs in a fresh
# process, and the peers alternate size by size, so machine noise falls on all alike. SD Lens runs
# `sdlens-cli bench --no-pipeline` with its defaults (each network's measured precision, flash attention).
#
# Usage: tools/bench_peers.sh BUILD MODEL [OUT.jsonl]
#   MODEL: a diffusers-layout SD 1.5-size folder, e.g. `sdlens-cli make-model --preset sd15 --dtype fp16
#   --out /tmp/sd15`. The peers come from a virtual environment made on first use (about 3 GB of wheels):
#   torch 2.15.0, diffusers 0.39.0, transformers 5.5.4, huggingface-hub 1.21.0, optimum-intel 2.2.0 and
#   openvino 2026.4.1. MODEL is exported to OpenVINO IR once (`optimum-cli export openvino --task
#   text-to-image --weight-format fp16`, a few minutes) and the IR kept for later runs.
#   BENCH_SIZES (default "256 512"), BENCH_REPEAT (3), BENCH_THREADS (nproc) and BENCH_PEERS
#   ("sdlens diffusers openvino"; add diffusers-nhwc for diffusers in channels-last) override the
#   defaults; BENCH_SDLENS_ARGS adds flags to SD Lens' bench (e.g. "--dtype bf16"); PEERS_DTYPE is
#   diffusers' dtype (bf16, fp16 or fp32; default bf16); PEERS_VENV is the environment (default
#   .peers-venv at the project root) and PEERS_PIP_ARGS extra pip flags for making it; PEERS_OV_DIR is
#   where the IR is kept (default MODEL-openvino, beside MODEL).
# Prints a Markdown table (minimum of BENCH_REPEAT timed calls after a warm-up) and keeps every result,
# one JSON line with a "peer" field, in OUT.jsonl (default bench_peers.jsonl); each run's stderr goes to
# OUT.jsonl.log. Not a test: timings for notes.
set -euo pipefail
[ $# -ge 2 ] || { sed -n '2,23p' "$0" >&2; exit 2; }
cli=$1/bin/sdlens-cli model=${2%/} out=${3:-bench_peers.jsonl}
here=$(cd "$(dirname "$0")" && pwd) root=$(cd "$(dirname "$0")/.." && pwd)
sizes=${BENCH_SIZES:-256 512} repeat=${BENCH_REPEAT:-3} threads=${BENCH_THREADS:-$(nproc)}
peers=${BENCH_PEERS:-sdlens diffusers openvino} dtype=${PEERS_DTYPE:-bf16}
venv=${PEERS_VENV:-$root/.peers-venv} ovdir=${PEERS_OV_DIR:-$model-openvino}
log=$out.log
case " $peers " in *" sdlens "*) [ -x "$cli" ] || { echo "no $cli: build SD Lens first" >&2; exit 1; } ;; esac
[ -f "$model/unet/config.json" ] || { echo "$model is not a diffusers-layout model folder" >&2; exit 1; }
: >"$log"

# The peers' environment: these pins resolve together. datasets (pulled in by optimum) is removed because
# with this huggingface-hub it breaks optimum-cli's imports.
pins=(torch==2.15.0 diffusers==0.39.0 transformers==5.5.4 huggingface-hub==1.21.0 optimum-intel==2.2.0 openvino==2026.4.1)
py=$venv/bin/python
have_pins() {
  "$py" - "${pins[@]}" <<'PY' 2>/dev/null
import sys
from importlib.metadata import PackageNotFoundError, version
for pin in sys.argv[1:]:
    name, want = pin.split("==")
    try:
        got = version(name).split("+")[0]  # torch's local tag (+cpu, +cu128) is not part of the pin
    except PackageNotFoundError:
        sys.exit(1)
    if got != want:
        sys.exit(1)
try:
    version("datasets")
    sys.exit(1)
except PackageNotFoundError:
    pass
PY
}
if ! have_pins; then
  echo "peers: making $venv (torch, diffusers, optimum-intel, openvino; about 3 GB)" >&2
  [ -x "$py" ] || python3 -m venv "$venv"
  # shellcheck disable=SC2086  # PEERS_PIP_ARGS is a list of flags
  "$py" -m pip install -q --disable-pip-version-check ${PEERS_PIP_ARGS:-} "${pins[@]}"
  "$py" -m pip uninstall -q -y datasets || true
  have_pins || { echo "peers: $venv does not have ${pins[*]}" >&2; exit 1; }
fi

# The OpenVINO IR, exported once. Into a scratch folder first, so a cut-short export is never taken
# for a finished one.
case " $peers " in *" openvino "*)
  if [ ! -f "$ovdir/unet/openvino_model.xml" ] || [ ! -f "$ovdir/vae_decoder/openvino_model.xml" ]; then
    echo "peers: exporting $model to OpenVINO IR in $ovdir (a few minutes)" >&2
    rm -rf "$ovdir.partial"
    start=$SECONDS
    "$venv/bin/optimum-cli" export openvino --model "$model" --task text-to-image --weight-format fp16 \
      "$ovdir.partial" >>"$log" 2>&1 || { echo "peers: export failed; see $log" >&2; tail -n 30 "$log" >&2; exit 1; }
    rm -rf "$ovdir" && mv "$ovdir.partial" "$ovdir"
    echo "peers: exported in $((SECONDS - start)) s" >&2
  fi ;;
esac

# One peer at one size in its own process; its JSON line goes to OUT, its stderr to the log.
run() {
  local peer=$1 size=$2 layout=()
  [ "$peer" = diffusers-nhwc ] && layout=(--channels-last)
  echo "bench: $peer $size²" >&2
  echo "=== $peer $size²" >>"$log"
  case $peer in
    sdlens)
      # shellcheck disable=SC2086  # BENCH_SDLENS_ARGS is a list of flags
      "$cli" bench --model "$model" --width "$size" --height "$size" --repeat "$repeat" --threads "$threads" \
        --no-pipeline ${BENCH_SDLENS_ARGS:-} 2>>"$log" | "$py" "$here/bench_peers.py" tag sdlens "$repeat" ;;
    diffusers|diffusers-nhwc)
      "$py" "$here/bench_peers.py" diffusers --model "$model" --size "$size" --repeat "$repeat" \
        --threads "$threads" --dtype "$dtype" "${layout[@]}" 2>>"$log" ;;
    openvino)
      "$py" "$here/bench_peers.py" openvino --ir "$ovdir" --size "$size" --repeat "$repeat" \
        --threads "$threads" 2>>"$log" ;;
    *) echo "unknown peer $peer (sdlens, diffusers, diffusers-nhwc, openvino)" >&2; return 1 ;;
  esac >>"$out" || { echo "bench: $peer $size² failed; see $log" >&2; tail -n 20 "$log" >&2; exit 1; }
}

: >"$out"
# SD Lens measures each network's precision on the first load of a model on a CPU (seconds, and more
# memory than a run) and caches the choice: do that first, at 64², so no timed run or RSS includes it.
case " $peers " in *" sdlens "*)
  # shellcheck disable=SC2086
  "$cli" bench --model "$model" --width 64 --height 64 --repeat 1 --threads "$threads" --no-pipeline \
    ${BENCH_SDLENS_ARGS:-} >/dev/null 2>>"$log" ;;
esac
for size in $sizes; do
  for peer in $peers; do
    run "$peer" "$size"
  done
done
"$py" "$here/bench_peers.py" table "$out"
