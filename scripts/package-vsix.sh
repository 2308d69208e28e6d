#!/usr/bin/env bash
# `npm run package`: one VSIX per platform, each with a static sidecar in bundled/sandbox.
#   scripts/package-vsix.sh                 # linux-x64 (the only target built here so far)
#   scripts/package-vsix.sh --dev-vsix      # no sidecar inside (tests point AGENT_SANDBOXES_SERVER
#                                           # at target/debug/sandbox); prints the VSIX path
# Static sidecar: musl (needs musl-gcc, Debian musl-tools, for ring's C code); without it, the gnu
# target with +crt-static, which is static too. vsce packs a staging directory holding only what
# ships: in the repository it walks target/ and node_modules/ before .vscodeignore filters them
# out. Build time measured by tests/bench/vsix_build.sh (the cold release build of the sidecar is
# most of it; release without LTO measured slower, so the release profile stays).
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
VERSION=$(node -p 'require("./package.json").version')
OUT=$REPO/target/vsix
MAX_BYTES=$((15 * 1024 * 1024))
mkdir -p "$OUT"
VSCE=("$REPO/node_modules/.bin/vsce" package --skip-license --no-dependencies)
STAGE=$(mktemp -d "${TMPDIR:-/tmp}/vsix-stage-XXXXXX")
trap 'rm -rf "$STAGE"' EXIT

# stage [SIDECAR]: the files .vscodeignore lets through, and nothing else, in $STAGE.
stage() {
  rm -rf "$STAGE"; mkdir -p "$STAGE/out"
  cp -a package.json README.md .vscodeignore media "$STAGE/"
  [ -f LICENSE ] && cp LICENSE "$STAGE/"
  cp out/main.js "$STAGE/out/"
  if [ -n "${1:-}" ]; then
    mkdir -p "$STAGE/bundled"; cp "$1" "$STAGE/bundled/sandbox"; chmod 755 "$STAGE/bundled/sandbox"
  fi
}

if [ "${1:-}" = --dev-vsix ]; then
  node scripts/build-extension.mjs >&2
  stage   # no sidecar inside: the tests point AGENT_SANDBOXES_SERVER at target/debug/sandbox
  (cd "$STAGE" && "${VSCE[@]}" -o "$OUT/agent-sandboxes-dev.vsix" >&2)
  echo "$OUT/agent-sandboxes-dev.vsix"
  exit 0
fi

build_sidecar() { # rust-target vsce-target
  local rt=$1 how
  if [ "$rt" = x86_64-unknown-linux-musl ] && command -v musl-gcc >/dev/null; then
    CC_x86_64_unknown_linux_musl=musl-gcc cargo build --release --locked -p sandbox --target "$rt" >&2
    how=musl
    BIN=target/$rt/release/sandbox
  else
    echo "musl-gcc not found (apt-get install musl-tools): building glibc +crt-static instead" >&2
    RUSTFLAGS='-C target-feature=+crt-static' cargo build --release --locked -p sandbox --target x86_64-unknown-linux-gnu >&2
    how='gnu +crt-static'
    BIN=target/x86_64-unknown-linux-gnu/release/sandbox
  fi
  # A dynamic executable names its loader (PT_INTERP); a static(-pie) one does not.
  if readelf -l "$BIN" | grep -q INTERP; then echo "error: $BIN is not statically linked" >&2; exit 1; fi
  echo "sidecar: $BIN ($how, $(du -h "$BIN" | cut -f1))" >&2
}

node scripts/build-extension.mjs --minify
for target in linux-x64; do
  case $target in
    linux-x64) build_sidecar x86_64-unknown-linux-musl ;;
  esac
  "$BIN" --version
  stage "$BIN"
  vsix=$OUT/agent-sandboxes-$target-$VERSION.vsix
  (cd "$STAGE" && "${VSCE[@]}" --target "$target" -o "$vsix")
  size=$(stat -c %s "$vsix")
  echo "$vsix: $((size / 1024)) KiB"
  [ "$size" -le $MAX_BYTES ] || { echo "error: $vsix is over 15 MB" >&2; exit 1; }
done
