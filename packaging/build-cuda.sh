#!/usr/bin/env bash
# Builds core/, sdlens-cli (and with SDLENS_CUDA_GUI=1 the GUI) against PyPI's CUDA-enabled LibTorch 2.x and this machine's
# CUDA toolkit, then runs the tests of core/ on the CPU with that build, and checks that the binary
# carries CUDA and that `--device cuda` without a GPU is refused with one line.
# Usage: packaging/build-cuda.sh BUILD_DIR   (CUDAToolkit_ROOT: the toolkit, default /usr/local/cuda)
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:?usage: packaging/build-cuda.sh BUILD_DIR}
cuda=${CUDAToolkit_ROOT:-/usr/local/cuda}
if [ ! -x "$cuda/bin/nvcc" ]; then
  echo "build-cuda: no CUDA toolkit at $cuda (install one or set CUDAToolkit_ROOT)" >&2
  exit 1
fi
packaging/install-deps.sh --torch pypi
# SD Lens compiles no CUDA code itself; the architectures only quieten LibTorch's CMake package,
# which would otherwise probe for a GPU: Ampere, Hopper and Blackwell.
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DSDLENS_TORCH=pypi \
  -DCUDAToolkit_ROOT="$cuda" -DTORCH_CUDA_ARCH_LIST="8.0;9.0;10.0"
# The GUI is left to test.sh's build: its widgets never see torch, and what it asks of LibTorch goes through
# core/, built and tested here (its ~40 Qt files in C++20 were minutes of CI for no check of their own).
# SDLENS_CUDA_GUI=1 builds it here too.
targets=(sdlens-cli sdlens_core_tests)
[ "${SDLENS_CUDA_GUI:-0}" = 1 ] && targets+=(sdlens)
cmake --build "$build" --parallel "$(nproc)" --target "${targets[@]}"

cli="$build/bin/sdlens-cli"
# Captured first, not piped into `grep -q`: under pipefail, grep leaving early kills the writer
# (the loader prints ldd's lines one write at a time) and the check fails at random.
dynamic=$(readelf -d "$cli")
if ! grep -qF 'Shared library: [libtorch_cuda.so]' <<<"$dynamic"; then
  echo "build-cuda: $cli does not link libtorch_cuda.so; it needs:" >&2
  grep NEEDED <<<"$dynamic" >&2 || true
  exit 1
fi
deps=$(ldd "$cli")
if grep -q 'not found' <<<"$deps" || ! grep -q 'libtorch_cuda\.so => /' <<<"$deps"; then
  echo "build-cuda: $cli does not load all its libraries:" >&2
  printf '%s\n' "$deps" >&2
  exit 1
fi
QT_QPA_PLATFORM=offscreen ctest --test-dir "$build" -L core --output-on-failure --parallel "$(nproc)"

# Without a GPU: one line on stderr naming the problem, exit status 1.
if ! nvidia-smi -L >/dev/null 2>&1; then
  set +e
  err=$("$cli" encode-text --model tests/data/tiny-sd --out "$build/cuda-check.safetensors" --device cuda "a cat" 2>&1 >/dev/null)
  rc=$?
  set -e
  if [ "$rc" -ne 1 ] || [ "$(printf '%s\n' "$err" | wc -l)" -ne 1 ] || ! grep -qi 'cuda' <<<"$err"; then
    echo "build-cuda: '--device cuda' without a GPU gave exit $rc and: $err" >&2
    exit 1
  fi
  echo "build-cuda: without a GPU, '--device cuda' says: $err"
fi
echo "build-cuda: OK, $(grep -m1 '^Torch_DIR:' "$build/CMakeCache.txt")"
