#!/usr/bin/env bash
# One command from a fresh clone to the running app: installs the Debian packages, builds, and starts
# the GUI (which creates and opens the demo model when no model is chosen).
set -euo pipefail
cd "$(dirname "$0")/.."
packaging/install-deps.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release
cmake --build build --parallel "$(nproc)"
exec build/bin/sdlens "$@"
