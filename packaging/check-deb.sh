#!/usr/bin/env bash
# Checks a built sdlens .deb: its control fields and file list, lintian's verdict, and that the
# binaries run from the unpacked tree and find their resources there (not in the source tree).
# Usage: packaging/check-deb.sh [--no-gui] PATH/sdlens_*.deb    (--no-gui: a build without Qt)
set -euo pipefail
gui=1
if [ "${1:-}" = "--no-gui" ]; then gui=0; shift; fi
deb=$(realpath "$1")
fail() { echo "check-deb: FAIL: $*" >&2; exit 1; }

echo "== control"
dpkg-deb -f "$deb" Package Version Architecture Depends Recommends
depends=$(dpkg-deb -f "$deb" Depends)
grep -q 'libtorch1\.13' <<<"$depends" || fail "Depends lacks libtorch1.13: $depends"
[ $gui = 0 ] || grep -q 'qt6-qpa-plugins' <<<"$depends" || fail "Depends lacks qt6-qpa-plugins: $depends"

echo "== contents"
contents=$(dpkg-deb -c "$deb" | awk '{print $6}' | sed 's|^\./|/|')
echo "$contents"
expected=(
  /usr/bin/sdlens-cli
  /usr/share/sdlens/clip/bpe_simple_vocab_16e6.txt.gz
  /usr/share/sdlens/clip/LICENSE
  /usr/share/sdlens/demo/demo.json
  /usr/share/sdlens/demo/text_encoder.safetensors
  /usr/share/sdlens/demo/unet.safetensors
  /usr/share/sdlens/demo/vae.safetensors
  /usr/share/doc/sdlens/copyright
  /usr/share/doc/sdlens/changelog.Debian.gz
  /usr/share/man/man1/sdlens-cli.1.gz
)
[ $gui = 0 ] || expected+=(
  /usr/bin/sdlens
  /usr/share/applications/sdlens.desktop
  /usr/share/metainfo/io.github.sdlens.SDLens.metainfo.xml
  /usr/share/icons/hicolor/scalable/apps/sdlens.svg
  /usr/share/man/man1/sdlens.1.gz
)
for f in "${expected[@]}"; do
  grep -qxF "$f" <<<"$contents" || fail "missing $f"
done
# Desktop integration belongs in the system folders only, and nothing of the build or tests ships.
if grep -E '^/usr/share/sdlens/.*(\.desktop|metainfo\.xml|/hicolor/|train_log\.jsonl)|/tests?/|CMake|\.a$' <<<"$contents"; then
  fail "unexpected files (above)"
fi

echo "== lintian"
if command -v lintian >/dev/null; then
  # Errors fail the check; warnings are printed for the record.
  report=$(lintian --info --display-info "$deb" 2>&1 || true)
  echo "${report:-(no tags)}"
  if grep -q '^E:' <<<"$report"; then fail "lintian reports errors"; fi
else
  echo "lintian not installed: skipped"
fi

echo "== run from the unpacked package"
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
dpkg-deb -x "$deb" "$root"
cli=$root/usr/bin/sdlens-cli
"$cli" --help >/dev/null || fail "sdlens-cli --help failed"
out=$(env -u SDLENS_RESOURCES "$cli" tokenize "a dog") || fail "sdlens-cli tokenize failed"
echo "$out"
grep -q '"input_ids":\[49406,320,1929,49407' <<<"${out// /}" || fail "unexpected tokenize output"
# The binary also knows the source tree's resources/ (a fallback for uninstalled builds); make sure
# the packaged copy is what it read.
if command -v strace >/dev/null; then
  opened=$(env -u SDLENS_RESOURCES strace -f -e trace=openat -o /dev/stdout "$cli" tokenize "a dog" |
           grep -o '"[^"]*bpe_simple_vocab_16e6.txt.gz"' | head -1)
  [[ $opened == \"$root/usr/share/sdlens/* ]] || fail "vocabulary read from $opened, not from the package"
  echo "vocabulary read from $opened"
else
  echo "strace not installed: did not check which vocabulary copy was read"
fi
# The GUI makes its demo model with make-model --preset demo from the packaged weights.
demo=$(env -u SDLENS_RESOURCES "$cli" make-model --preset demo --out "$root/demo-model") ||
  fail "sdlens-cli make-model --preset demo failed"
echo "$demo"
grep -qF "\"weights\":\"$root/usr/share/sdlens/demo\"" <<<"$demo" || fail "demo weights not read from the package"
[ -f "$root/demo-model/sdlens_demo.json" ] || fail "make-model --preset demo wrote no sdlens_demo.json"
echo "check-deb: OK"
