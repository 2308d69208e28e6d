#!/usr/bin/env bash
# sandbox-stack: parent=base
# description: Python 3 with uv, Poetry, ruff, mypy, bandit, coverage
#
# Runs as root in a clone of golden-base (which has python3, pip and venv). uv goes to
# /usr/local/bin (system-wide, for root too); the tools are uv tools of user ubuntu in
# ~/.local/bin, put on PATH by /etc/profile.d/python-tools.sh. Re-runnable: tools are upgraded.
# shellcheck disable=SC2016 # $VARS in single-quoted as_ubuntu snippets expand in ubuntu's shell
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
STACK=python
UV_TOOLS=(poetry ruff mypy 'bandit[toml]' coverage)
TOOL_COMMANDS=(poetry ruff mypy bandit coverage)

# ---- shared helpers (each stack script is self-contained: it is pushed alone as /tmp/stack.sh) ----
step() { printf '==> %s\n' "$*"; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }
fetch() { curl -fsSL --retry 3 --retry-delay 2 --connect-timeout 30 "$@"; }
apt_update() { apt-get -q update -o Acquire::Retries=3; }
apt_install() { apt-get -q install -y --no-install-recommends -o Dpkg::Options::=--force-confold "$@"; }
[ "$(id -u)" -eq 0 ] || die "must run as root"
[ -r /etc/os-release ] || die "/etc/os-release is missing"
# shellcheck source=/dev/null
. /etc/os-release
case "${ID:-}" in debian|ubuntu) ;; *) die "unsupported distribution '${ID:-unknown}' (Debian 12 or Ubuntu 24.04 expected)" ;; esac
ARCH=$(dpkg --print-architecture)
case "$ARCH" in amd64|arm64) ;; *) die "unsupported architecture '$ARCH' (amd64 or arm64)" ;; esac
id -u ubuntu >/dev/null 2>&1 || die "user 'ubuntu' is missing (stacks/lib/common.sh creates it)"
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
# Runs a bash snippet as user ubuntu in a login shell (so /etc/profile.d applies), clean env.
as_ubuntu() {
  local -a envv=(HOME=/home/ubuntu USER=ubuntu LOGNAME=ubuntu SHELL=/bin/bash LANG=C.UTF-8
    PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin)
  local v
  for v in http_proxy https_proxy no_proxy HTTP_PROXY HTTPS_PROXY NO_PROXY; do
    if [ -n "${!v:-}" ]; then envv+=("$v=${!v}"); fi
  done
  # `cd` after login: ~/.profile (common.sh) jumps to /workspace/project, which must stay empty.
  (cd /home/ubuntu && runuser -u ubuntu -- env -i "${envv[@]}" bash -lc "set -euo pipefail; cd; $1")
}

step "python stack on ${PRETTY_NAME:-$ID} ($ARCH)"

step "installing Python build dependencies"
apt_update
apt_install ca-certificates curl python3 python3-pip python3-venv python3-dev build-essential

step "making ~/.local/bin part of PATH (/etc/profile.d/python-tools.sh)"
cat > /etc/profile.d/python-tools.sh <<'EOF'
# uv tools (poetry, ruff, mypy, bandit, coverage) live in ~/.local/bin of their user.
case ":$PATH:" in *":$HOME/.local/bin:"*) ;; *) PATH="$HOME/.local/bin:$PATH"; export PATH ;; esac
EOF

step "installing uv (system-wide, /usr/local/bin)"
fetch https://astral.sh/uv/install.sh -o "$TMP/uv-install.sh"
# Unmanaged: no shell-profile edits and no self-update; rebuilding the image updates uv.
env UV_UNMANAGED_INSTALL=/usr/local/bin sh "$TMP/uv-install.sh"
[ -x /usr/local/bin/uv ] || die "uv was not installed to /usr/local/bin"
/usr/local/bin/uv --version

step "installing ${TOOL_COMMANDS[*]} as uv tools for ubuntu"
for tool in "${UV_TOOLS[@]}"; do
  as_ubuntu "uv tool install --upgrade '$tool'"
done
as_ubuntu "
export PATH=\"\$HOME/.local/bin:\$PATH\"
for c in ${TOOL_COMMANDS[*]}; do
  command -v \"\$c\" >/dev/null || { echo \"error: \$c is missing\" >&2; exit 1; }
done
poetry --version; ruff --version; mypy --version; bandit --version | head -1; coverage --version | head -1
"

printf '%s\n' "$STACK" > /etc/sandbox-stack

step "cleaning caches"
as_ubuntu 'uv cache clean >/dev/null 2>&1 || true; rm -rf "$HOME/.cache/pip" "$HOME/.cache/pypoetry/cache"'
apt-get clean
rm -rf /var/lib/apt/lists/* /root/.cache
step "python stack ready"
