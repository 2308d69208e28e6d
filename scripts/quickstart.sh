#!/usr/bin/env bash
# Sets everything up on a fresh Debian/Ubuntu machine and runs the main job: a sandbox created and
# reachable over SSH.
#
#   sudo scripts/quickstart.sh [NAME]           # offline-safe: stack `minimal`, bridge without NAT
#   sudo SANDBOX_NAT=on SANDBOX_STACK=base scripts/quickstart.sh
#                                               # with internet: Docker, Claude Code, … (stack base)
set -euo pipefail
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
