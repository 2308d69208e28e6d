#!/usr/bin/env bash
# `npm run package`: one VSIX per platform, each with a static sidecar in bundled/sandbox.
#   scripts/package-vsix.sh                 # linux-x64 (the only target built here so far)
#   scripts/package-vsix.sh --dev-vsix      # no sidecar inside (tests point AGENT_SANDBOXES_SERVER
#                                           # at target/debug/sandbox); prints the VSIX path
# Static sidecar: musl (needs musl-gcc, Debian musl-tools, for ring's C code); without it, the gnu
# target with +crt-static, which is static too.
set -euo pipefail
cd "$(dirname "$0")/.."
VERSION=$(node -p 'require("./package.json").version')
OUT=target/vsix
MAX_BYTES=$((15 * 1024 * 1024))
mkdir -p "$OUT"
VSCE=(node_modules/.bin/vsce package --skip-license --no-dependencies)

if [ "${1:-}" = --dev-vsix ]; then
  node scripts/build-extension.mjs >&2
  tmp=$(mktemp -d)
  # Same contents minus the sidecar, whatever bundled/ holds.
  grep -v '^!bundled/' .vscodeignore > "$tmp/ignore"
  "${VSCE[@]}" --ignoreFile "$tmp/ignore" -o "$OUT/agent-sandboxes-dev.vsix" >&2
  rm -rf "$tmp"
  echo "$PWD/$OUT/agent-sandboxes-dev.vsix"
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
  rm -rf bundled; mkdir -p bundled
  cp "$BIN" bundled/sandbox; chmod 755 bundled/sandbox
  bundled/sandbox --version
  vsix=$OUT/agent-sandboxes-$target-$VERSION.vsix
  "${VSCE[@]}" --target "$target" -o "$vsix"
  size=$(stat -c %s "$vsix")
  echo "$vsix: $((size / 1024)) KiB"
  [ "$size" -le $MAX_BYTES ] || { echo "error: $vsix is over 15 MB" >&2; exit 1; }
done
