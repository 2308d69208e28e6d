#!/usr/bin/env bash
# sandbox-stack: parent=base
# description: Python 3 with uv, Poetry, ruff, mypy, bandit, coverage
#
# Runs as root in a clone of golden-base (which has python3, pip and venv). uv goes to
# /usr/local/bin (system-wide, for root too); the tools are uv tools of user ubuntu in
# ~/.local/bin, put on PATH by /etc/profile.d/python-tools.sh. Re-runnable: tools are upgraded.
# shellcheck disable=SC2016 # $VARS in single-quoted as_ubuntu snippets expand in ubuntu's shell
set -euo pipefail
STACK=python
UV_TOOLS=(poetry ruff mypy 'bandit[toml]' coverage)
TOOL_COMMANDS=(poetry ruff mypy bandit coverage)

# The helpers and checks every stack shares (step, die, fetch, apt_install, as_ubuntu, ARCH, TMP…).
# shellcheck source=lib/prelude.sh
. "${SANDBOX_PRELUDE:-$(dirname "$0")/lib/prelude.sh}"

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
