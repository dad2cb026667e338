#!/usr/bin/env bash
# Builds the Debian package and checks it: packaging/build-deb.sh [BUILD_DIR]   (default: build-pkg)
# Leaves BUILD_DIR/sdlens_<version>-1_<arch>.deb. Install it with: sudo apt install ./BUILD_DIR/sdlens_*.deb
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build-pkg}
# Debian's LibTorch whatever else is installed: the package depends on Debian's packages, and PyPI's
# wheel lives in a virtual environment no .deb can point at.
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DSDLENS_BUILD_TESTS=OFF -DSDLENS_TORCH=debian
cmake --build "$build" --parallel "$(nproc)"
rm -f "$build"/sdlens_*.deb
(cd "$build" && cpack -G DEB)
# Without Qt only sdlens-cli is built and packaged (see the top-level CMakeLists.txt).
gui=--no-gui
grep -q '^Qt6_DIR:PATH=/' "$build/CMakeCache.txt" && gui=
packaging/check-deb.sh $gui "$build"/sdlens_*.deb
