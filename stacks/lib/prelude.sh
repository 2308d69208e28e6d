# The prelude every stack script sources first (`sandbox setup` pushes it next to the script and
# sets SANDBOX_PRELUDE; from a checkout, scripts find it as stacks/lib/prelude.sh). It has the
# helpers and the checks all stacks share:
#   step MSG · die MSG · fetch URL… (curl with retries) · apt_update · apt_install PKG… ·
#   as_ubuntu 'SNIPPET' (bash -lc as user ubuntu, clean environment)
#   ID, VERSION_ID, PRETTY_NAME (/etc/os-release) · ARCH (amd64|arm64) · TMP (removed at exit)
# shellcheck shell=bash
export DEBIAN_FRONTEND=noninteractive
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
chmod 0755 "$TMP" # user ubuntu runs installers downloaded here
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
