#!/usr/bin/env bash
# Installs every Debian 12 package SD Lens needs to build, run and test. Idempotent; run as root or
# with sudo available.
set -euo pipefail
packages=(
  build-essential cmake ninja-build pkg-config
  libtorch-dev libopenblas0-pthread           # LibTorch 1.13 (CPU); OpenBLAS replaces the slow reference BLAS
  qt6-base-dev libqt6svg6 libgl-dev           # Qt 6 Widgets, PrintSupport, Test
  libqcustomplot-dev libqcustomplot2.1-qt6    # QCustomPlot built for Qt 6
  libstb-dev nlohmann-json3-dev zlib1g-dev
  xvfb xauth                                  # running the real window headless
  clang libclang-rt-14-dev                    # libFuzzer targets and sanitizers
  dpkg-dev file lintian                       # building and checking the .deb
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all packages present"
  exit 0
fi
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO=sudo
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
