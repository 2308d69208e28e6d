#!/usr/bin/env bash
# Sets everything up on a fresh Debian/Ubuntu machine and runs the main job: a sandbox created and
# reachable over SSH.
#
#   scripts/quickstart.sh [NAME]                # offline-safe: stack `minimal`, bridge without NAT
#   SANDBOX_NAT=on SANDBOX_STACK=base scripts/quickstart.sh
#                                               # with internet: Docker, Claude Code, … (stack base)
# As root, or as a user who may use sudo (it runs itself again through sudo).
set -euo pipefail

# Root, or this script again through sudo (keeping its settings and your Rust toolchain); else
# say what to do.
if [ "$(id -u)" != 0 ]; then
  if command -v sudo >/dev/null 2>&1; then
    keep=("PATH=$PATH" "CARGO_HOME=${CARGO_HOME:-$HOME/.cargo}" "RUSTUP_HOME=${RUSTUP_HOME:-$HOME/.rustup}")
    for v in $(compgen -v | grep -E '^SANDBOX_' || true); do keep+=("$v=${!v}"); done
    exec sudo -- env "${keep[@]}" bash "$0" "$@"
  fi
  echo "quickstart: needs root (it installs Incus and sets up the host): run it as root, or install sudo and run it as a user who may use it" >&2
  exit 1
fi
cd "$(dirname "$0")/.."
NAME=${1:-demo}
STACK=${SANDBOX_STACK:-minimal}
BASE_IMAGE=${SANDBOX_BASE_IMAGE:-sandbox-base/debootstrap-bookworm}
step() { printf '\n==> %s\n' "$*"; }

step "Host: Incus, btrfs pool, bridge, squid, nftables, OpenSSH"
bash scripts/install-host.sh --nat "${SANDBOX_NAT:-off}"

if [ "$BASE_IMAGE" = sandbox-base/debootstrap-bookworm ]; then
  step "Base image (debootstrap, cached)"
  bash scripts/build-base-image.sh bookworm "$BASE_IMAGE"
fi

step "Build the sandbox binary"
if ! command -v cargo >/dev/null; then
  echo "Rust is needed to build from source: https://rustup.rs (curl … | sh), then re-run." >&2
  exit 1
fi
cargo build --release --locked
install -m 0755 target/release/sandbox /usr/local/bin/sandbox

step "Golden image for stack '$STACK'"
sandbox setup --base-image "$BASE_IMAGE" --stack "$STACK"

step "Sandbox '$NAME'"
sandbox start "$NAME" --stack "$STACK"
ssh -F "${SANDBOX_HOME:-$HOME/.sandbox}/ssh_config" "$NAME" 'echo "reachable: $(hostname) as $(whoami), $(uname -sr)"'
sandbox list
echo
echo "Next: sandbox shell $NAME   ·   sandbox exec $NAME -- git --version   ·   sandbox rm $NAME"
