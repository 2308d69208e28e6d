#!/usr/bin/env bash
# The project's test command (README, CI): the fast tier first (no Incus, no root: tests/fast.sh),
# then it installs and starts everything the end-to-end suites need on a fresh Debian/Ubuntu
# machine and runs every suite against the real Incus daemon. A failing suite does not stop the
# others: each one runs and reports, a one-line summary ends the run, and the exit code is
# non-zero when anything failed.
#
#   tests/run.sh            # everything (as root, or through sudo)
#   tests/run.sh setup      # extra args go to `cargo test` (a test-name filter, say)
#
# Network rule: the bridge has NAT off and images are built on the host with debootstrap, so
# containers reach nothing but this machine.
set -euo pipefail

# Root, or this script again through sudo (keeping its settings); else say what to do.
if [ "$(id -u)" != 0 ]; then
  if command -v sudo >/dev/null 2>&1; then
    keep=("PATH=$PATH" "CARGO_HOME=${CARGO_HOME:-$HOME/.cargo}" "RUSTUP_HOME=${RUSTUP_HOME:-$HOME/.rustup}")
    for v in $(compgen -v | grep -E '^(SANDBOX_|CI$)' || true); do keep+=("$v=${!v}"); done
    exec sudo -- env "${keep[@]}" bash "$0" "$@"
  fi
  echo "tests/run.sh: needs root (Incus, nftables, network namespaces): run it as root, or install sudo and run it as a user who may use it" >&2
  exit 1
fi

cd "$(dirname "$0")/.."
ROOT=$PWD
export SANDBOX_NAT=off
export SANDBOX_TEST_IMAGE=sandbox-base/debootstrap-bookworm
export CARGO_TERM_COLOR=never
# The tests' own ~/.sandbox (managed ssh_config, keys, lock), kept out of the user's.
export SANDBOX_HOME=$ROOT/target/test-home
# Sandboxes started without an upstream of their own forward Anthropic API calls here, where
# nothing listens: no test reaches api.anthropic.com (tests/claude.rs brings its simulated API).
export SANDBOX_ANTHROPIC_UPSTREAM=${SANDBOX_ANTHROPIC_UPSTREAM:-http://127.0.0.1:9}
mkdir -p "$SANDBOX_HOME"
t0=$(date +%s)
current=
step() { current=$*; printf '\n=== [%4ss] %s\n' "$(( $(date +%s) - t0 ))" "$*"; }
passed=() failed=()
# A suite: runs whatever happened before, and is counted.
suite() { # NAME CMD…
  local name=$1
  shift
  step "$name"
  if "$@"; then passed+=("$name"); else failed+=("$name"); fi
}
summary() {
  local rc=$? total=$(( ${#passed[@]} + ${#failed[@]} )) took=$(( $(date +%s) - t0 ))
  if [ ${#failed[@]} -gt 0 ]; then
    echo "tests/run.sh: ${#failed[@]} of $total suites FAILED ($(IFS=,; echo "${failed[*]}")) in ${took}s"
  elif [ "$rc" -ne 0 ]; then
    echo "tests/run.sh: FAILED at '$current' (exit $rc) after ${#passed[@]} passed suites, in ${took}s"
  else
    echo "tests/run.sh: all ${#passed[@]} suites passed in ${took}s"
  fi
}
trap summary EXIT

step "host: Incus, btrfs pool, bridge (NAT off), squid, nftables, OpenSSH, Node"
bash scripts/install-host.sh --nat off
command -v npm >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends npm >/dev/null

suite "fast tier (tests/fast.sh)" bash tests/fast.sh

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
# claude suite: Anthropic endpoints of test sandboxes (the proxy itself ends once none is left), and
# a credential an interrupted VS Code suite left (the other suites expect none)
rm -rf "$SANDBOX_HOME"/anthropic/sandboxes/t-* "$SANDBOX_HOME"/anthropic/state/t-*.json
rm -f "$SANDBOX_HOME"/credentials/anthropic.json
# Claude Code in the tests' sandboxes sends no telemetry (nothing leaves this machine)
grep -qs '^CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=' "$SANDBOX_HOME/env" \
  || echo 'CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1' >> "$SANDBOX_HOME/env"
# push gate: test sandboxes' mirrors (their endpoints are the Anthropic ones above)
rm -rf "$SANDBOX_HOME"/gate/mirrors/t-*.git
for ns in $(ip netns list | awk '/^sbx-git-/{print $1}'); do ip netns pids "$ns" | xargs -r kill 2>/dev/null; ip netns del "$ns"; done

step "golden image for the tests: sandbox setup --stack minimal"
# Rebuilt every run (~7 s): the tests run on the stack scripts of this tree, never a stale image.
# Its Claude Code comes from the npm registry the first time (pinned in stacks/claude-code.json,
# checked, ~180 MB), from /var/cache/agent-sandboxes/claude-code afterwards.
"$ROOT/target/debug/sandbox" setup --base-image "$SANDBOX_TEST_IMAGE" --stack minimal --rebuild minimal

suite "lint: rustfmt, clippy" bash -c 'cargo fmt --all -- --check && cargo clippy --workspace --all-targets --locked -- -D warnings'

# Every test binary runs, even after one failed; each prints its own result.
suite "end-to-end suites (real Incus)" cargo test --workspace --locked --no-fail-fast -- "$@"

if [ $# -eq 0 ]; then
  # CI: the extension suite also stops incusd once (the status bar test), after everything else.
  [ "${CI:-}" = true ] && export AGENT_SANDBOXES_DISRUPTIVE=1
  suite "VS Code: the extension's suite and a UI test (installs Node 24, code-server, chromium)" bash tests/vscode/run.sh
fi

if [ "${CI:-}" = true ] && [ $# -eq 0 ]; then
  suite "incusd restarted under two sidecars (disruptive: CI only)" \
    cargo test -p sandbox-e2e --locked --test lsp -- --ignored
  suite "a reboot seen by a Claude endpoint: proxy killed, incusd restarted (disruptive: CI only)" \
    cargo test -p sandbox-e2e --locked --test claude -- --ignored
  # A real three-member cluster of nested Incus daemons (~1 min to bring up once its member image
  # is cached, ~4 min the first time); torn down after, whatever the result.
  suite "cluster: three Incus members on this machine, one stopped on purpose (CI only)" \
    bash -c 'bash tests/cluster/up.sh >/dev/null && cargo test -p sandbox-e2e --locked --test cluster -- --ignored --test-threads=1; rc=$?; bash tests/cluster/down.sh; exit $rc'
  suite "nuke (destructive: CI only)" cargo test -p sandbox-e2e --locked --test nuke -- --ignored
fi

[ ${#failed[@]} -eq 0 ]
