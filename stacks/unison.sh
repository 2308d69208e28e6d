#!/usr/bin/env bash
# sandbox-stack: parent=base
# description: Unison Codebase Manager (ucm) with its built-in LSP and MCP servers
#
# Runs as root in a clone of golden-base. Installs the UCM release bundle (GitHub releases,
# linux x64 or arm64) into /opt/unison and a `ucm` launcher in /usr/local/bin.
#
# LSP: a running `ucm` serves the Language Server Protocol on TCP port 5757 (localhost); editors
# (the VS Code Unison extension, for one) connect to it while ucm is open in a terminal.
# UNISON_LSP_PORT changes the port, UNISON_LSP_ENABLED=false turns it off.
# MCP: `ucm mcp` runs UCM's Model Context Protocol server on stdio; when this ucm has it, it is
# registered with Claude Code for user ubuntu (`claude mcp add --scope user unison -- ucm mcp`).
# Re-runnable: /opt/unison is replaced by the current release.
# shellcheck disable=SC2016 # $VARS in single-quoted as_ubuntu snippets expand in ubuntu's shell
set -euo pipefail
STACK=unison
# "latest" or a release version such as 1.0.2 (tag release/1.0.2).
UCM_VERSION=${UCM_VERSION:-latest}
UCM_DIR=/opt/unison

# The helpers and checks every stack shares (step, die, fetch, apt_install, as_ubuntu, ARCH, TMP…).
# shellcheck source=lib/prelude.sh
. "${SANDBOX_PRELUDE:-$(dirname "$0")/lib/prelude.sh}"
case "$ARCH" in amd64) UCM_ARCH=x64 ;; arm64) UCM_ARCH=arm64 ;; *) die "unsupported architecture '$ARCH' (amd64 or arm64)" ;; esac
trap 'rm -rf "$TMP" "$UCM_DIR.new"' EXIT
# Newest real package whose name matches an extended regex (libcurl4 vs libcurl4t64, ...).
pick_pkg() {
  local p
  p=$(apt-cache pkgnames | grep -E "^($1)\$" | sort -V | tail -1)
  [ -n "$p" ] || die "no package matching ^($1)\$"
  printf '%s\n' "$p"
}

step "unison stack on ${PRETTY_NAME:-$ID} ($ARCH)"

step "installing UCM runtime dependencies"
apt_update
# ucm links gmp, ncurses/tinfo, zlib, libb2, openssl, curl; it pages with less and uses git/fzf.
apt_install ca-certificates curl less git fzf libgmp10 libtinfo6 libncurses6 zlib1g libb2-1 \
  "$(pick_pkg 'libssl3(t64)?')" "$(pick_pkg 'libcurl4(t64)?')"

asset="ucm-linux-$UCM_ARCH.tar.gz"
if [ "$UCM_VERSION" = latest ]; then
  url="https://github.com/unisonweb/unison/releases/latest/download/$asset"
else
  url="https://github.com/unisonweb/unison/releases/download/release%2F$UCM_VERSION/$asset"
fi
step "downloading UCM ($UCM_VERSION, $asset)"
fetch "$url" -o "$TMP/$asset"
mkdir -p "$TMP/ucm"
tar -xzf "$TMP/$asset" -C "$TMP/ucm"

step "installing UCM into $UCM_DIR"
rm -rf "$UCM_DIR.new"
mkdir -p "$UCM_DIR.new"
cp -a "$TMP/ucm/." "$UCM_DIR.new/"
chown -R root:root "$UCM_DIR.new"
chmod -R a+rX "$UCM_DIR.new"
# The bundle has a `ucm` launcher next to unison/unison (the binary) and ui/ (the local web UI).
if [ -f "$UCM_DIR.new/ucm" ]; then
  entry="$UCM_DIR/ucm"
elif [ -f "$UCM_DIR.new/unison/unison" ]; then
  entry="$UCM_DIR/unison/unison"
else
  die "unexpected UCM bundle layout: $(cd "$UCM_DIR.new" && find . -maxdepth 2 | head -20 | tr '\n' ' ')"
fi
rm -rf "$UCM_DIR"
mv "$UCM_DIR.new" "$UCM_DIR"
chmod 0755 "$entry"
for bin in "$UCM_DIR/unison/unison" "$UCM_DIR/ucm"; do
  if [ -f "$bin" ] && file -b "$bin" | grep ELF >/dev/null; then
    if ldd "$bin" | grep 'not found'; then die "$bin is missing shared libraries (above)"; fi
  fi
done
# A launcher rather than a bare symlink: the bundled `ucm` finds its unison/ and ui/ relative to
# its own path, which a symlink in /usr/local/bin would break.
cat > /usr/local/bin/ucm <<EOF
#!/bin/sh
# Unison Codebase Manager from $UCM_DIR (installed by the sandbox unison stack).
export UCM_WEB_UI="\${UCM_WEB_UI:-$UCM_DIR/ui}"
exec $entry "\$@"
EOF
chmod 0755 /usr/local/bin/ucm

step "checking ucm"
as_ubuntu 'ucm version'

if command -v claude >/dev/null && as_ubuntu '{ ucm --help 2>&1 || true; } | grep -w mcp >/dev/null'; then
  step "registering the UCM MCP server with Claude Code for ubuntu"
  as_ubuntu 'claude mcp remove --scope user unison >/dev/null 2>&1 || true
claude mcp add --scope user unison -- ucm mcp' \
    || echo "warning: could not register the UCM MCP server with Claude Code; run: claude mcp add --scope user unison -- ucm mcp" >&2
fi

printf '%s\n' "$STACK" > /etc/sandbox-stack

step "cleaning caches"
apt-get clean
rm -rf /var/lib/apt/lists/* /root/.cache
step "unison stack ready"
