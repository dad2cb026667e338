#!/usr/bin/env bash
# Installs every Debian 12 package SD Lens needs to build, run and test. Idempotent; run as root or
# with sudo available.
#
# Usage: packaging/install-deps.sh [--torch debian|pypi]
#   debian (the default): LibTorch is Debian's libtorch-dev 1.13 (CPU).
#   pypi: also installs PyPI's torch wheel (LibTorch 2.x, CUDA-enabled, with NVIDIA's runtime wheels)
#         into the virtual environment .torch-venv at the project root, which CMake then uses by
#         itself (cmake/SdlensTorch.cmake). SDLENS_TORCH_VERSION picks the wheel (default below).
set -euo pipefail
cd "$(dirname "$0")/.."
torch=debian
while [ $# -gt 0 ]; do
  case "$1" in
    --torch) torch=${2:-}; shift 2 ;;
    --torch=*) torch=${1#--torch=}; shift ;;
    *) echo "install-deps: unknown argument '$1' (usage: install-deps.sh [--torch debian|pypi])" >&2; exit 2 ;;
  esac
done
case "$torch" in
  debian|pypi) ;;
  *) echo "install-deps: --torch is debian or pypi, not '$torch'" >&2; exit 2 ;;
esac

packages=(
  build-essential cmake ninja-build pkg-config mold   # mold: links the ~50 LibTorch executables in seconds
  libtorch-dev libopenblas0-pthread           # LibTorch 1.13 (CPU); OpenBLAS replaces the slow reference BLAS
  libdnnl-dev                                 # oneDNN's headers: the CPU convolutions with prepacked weights
  qt6-base-dev libqt6svg6 libgl-dev           # Qt 6 Widgets, PrintSupport, Test
  libqcustomplot-dev libqcustomplot2.1-qt6    # QCustomPlot built for Qt 6
  libstb-dev nlohmann-json3-dev zlib1g-dev
  xvfb xauth                                  # running the real window headless
  clang libclang-rt-14-dev                    # libFuzzer targets and sanitizers
  dpkg-dev file lintian                       # building and checking the .deb
)
[ "$torch" = pypi ] && packages+=(python3-venv)
missing=()
for p in "${packages[@]}"; do
  [[ "$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null)" == *"ok installed"* ]] || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all packages present"
else
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

if [ "$torch" = pypi ]; then
  version=${SDLENS_TORCH_VERSION:-2.15.0}
  venv=.torch-venv
  if [ -x "$venv/bin/python3" ] && "$venv/bin/python3" -c "import torch,sys;sys.exit(torch.__version__.split('+')[0]!='$version')" 2>/dev/null; then
    echo "install-deps: torch $version present in $venv"
  else
    # Debian's own python3, so the venv does not depend on whichever python3 is first on PATH.
    /usr/bin/python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --no-cache-dir --disable-pip-version-check "torch==$version"
    echo "install-deps: torch $version installed in $venv ($(du -sh "$venv" | cut -f1))"
  fi
fi
