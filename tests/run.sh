#!/usr/bin/env bash
# The project's test command (README, CI): installs and starts everything the tests need on a
# fresh Debian/Ubuntu machine, then runs every suite against the real Incus daemon.
#
#   sudo tests/run.sh            # everything
#   sudo tests/run.sh setup      # extra args go to `cargo test` (a test-name filter, say)
#
# Network rule: the bridge has NAT off and images are built on the host with debootstrap, so
# containers reach nothing but this machine.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
export SANDBOX_NAT=off
export SANDBOX_TEST_IMAGE=sandbox-base/debootstrap-bookworm
export CARGO_TERM_COLOR=never
# The tests' own ~/.sandbox (managed ssh_config, keys, lock), kept out of the user's.
export SANDBOX_HOME=$ROOT/target/test-home
mkdir -p "$SANDBOX_HOME"
t0=$(date +%s)
step() { printf '\n=== [%4ss] %s\n' "$(( $(date +%s) - t0 ))" "$*"; }

step "host: Incus, btrfs pool, bridge (NAT off), squid, nftables, OpenSSH"
bash scripts/install-host.sh --nat off

step "base image: debootstrap bookworm (cached by its inputs)"
bash scripts/build-base-image.sh bookworm "$SANDBOX_TEST_IMAGE"

step "build"
cargo build --workspace --locked --all-targets

step "remove leftovers of interrupted test runs"
for n in $(incus list --format csv -c n | grep -E '^(t-|tmp-golden-t-|tmp-old-golden-t-|golden-t-|spare-t-)' || true); do
  incus delete --force "$n" >/dev/null 2>&1 || true
done
# credentials suite: host-side agents and key pairs of test sandboxes, fake git servers' namespaces
for f in "$SANDBOX_HOME"/agents/t-*.pid; do
  [ -e "$f" ] || continue
  pid=$(cat "$f"); grep -qs ssh-agent "/proc/$pid/cmdline" && kill "$pid" 2>/dev/null
  rm -f "$f" "${f%.pid}.sock"
done
rm -f "$SANDBOX_HOME"/keys/deploy_t-* "$SANDBOX_HOME"/git_known_hosts
for ns in $(ip netns list | awk '/^sbx-git-/{print $1}'); do ip netns pids "$ns" | xargs -r kill 2>/dev/null; ip netns del "$ns"; done

step "golden image for the tests: sandbox setup --stack minimal"
# Rebuilt every run (~4 s): the tests run on the stack scripts of this tree, never a stale image.
"$ROOT/target/debug/sandbox" setup --base-image "$SANDBOX_TEST_IMAGE" --stack minimal --rebuild minimal

step "lint: rustfmt, clippy"
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings

step "tests (real Incus)"
cargo test --workspace --locked -- "$@"

if [ $# -eq 0 ]; then
  step "VS Code extension in a real VS Code: its own suite and a UI test (installs Node 24, code-server, chromium)"
  bash tests/vscode/run.sh
fi

if [ "${CI:-}" = true ] && [ $# -eq 0 ]; then
  step "incusd restarted under two sidecars (disruptive: CI only)"
  cargo test -p sandbox-e2e --locked --test lsp -- --ignored
  step "nuke (destructive: CI only)"
  cargo test -p sandbox-e2e --locked --test nuke -- --ignored
fi

step "done"
