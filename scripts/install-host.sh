#!/usr/bin/env bash
# Sets up this machine as a sandbox host: the same steps `sandbox host install` runs (the binary
# carries scripts/lib/install-host-steps.sh). This wrapper runs them from the source checkout,
# where no binary may be built yet (quickstart.sh and tests/run.sh run it first).
#
#   scripts/install-host.sh [--nat on|off] [--pool-size 20GiB]
#
# --nat off (the default) keeps the bridge without NAT: sandboxes reach only this machine.
# Use --nat on where sandboxes should reach the internet (stacks that download toolchains).
set -euo pipefail
STEPS="$(cd "$(dirname "$0")" && pwd)/lib/install-host-steps.sh"
# Root, or this script again through sudo (keeping its settings); else say what to do.
if [ "$(id -u)" != 0 ]; then
  if command -v sudo >/dev/null 2>&1; then
    keep=()
    for v in $(compgen -v | grep -E '^SANDBOX_' || true); do keep+=("$v=${!v}"); done
    exec sudo -- env "${keep[@]}" bash "$STEPS" "$@"
  fi
  echo "install-host: needs root (it installs packages and starts incusd): run it as root, or install sudo and run it as a user who may use it" >&2
  exit 1
fi
exec bash "$STEPS" "$@"
