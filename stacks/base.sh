#!/usr/bin/env bash
# sandbox-stack: parent=image
# description: Docker CE, Node.js 22, Python 3, gh, git, tmux, ripgrep, jq, build tools (+ Claude Code, as in every image)
#
# The golden image every other stack clones. `sandbox setup` runs stacks/lib/common.sh first (user
# ubuntu, sudo, sshd, /workspace/project, network), then this script, as root, non-interactively.
# Re-runnable: every step converges (repos and keys are rewritten, installs are idempotent).
set -euo pipefail
STACK=base
NODE_MAJOR=22

# The helpers and checks every stack shares (step, die, fetch, apt_install, as_ubuntu, ARCH, TMP…).
# shellcheck source=lib/prelude.sh
. "${SANDBOX_PRELUDE:-$(dirname "$0")/lib/prelude.sh}"
CODENAME=${VERSION_CODENAME:-${UBUNTU_CODENAME:-}}
[ -n "$CODENAME" ] || die "cannot tell the release codename from /etc/os-release"
case "$ID:${VERSION_ID:-}" in debian:12|ubuntu:24.04) ;; *) echo "warning: ${PRETTY_NAME:-$ID} is untested (Debian 12 / Ubuntu 24.04 are)" >&2 ;; esac

# Downloads an apt signing key. ASCII-armoured keys are stored as .asc (apt reads them directly,
# no gpg needed); a download that is not a key (a proxy error page, say) fails here, loudly.
fetch_key() { # URL DEST
  fetch "$1" -o "$TMP/key"
  case "$2" in
    *.asc) grep -q -- '-----BEGIN PGP PUBLIC KEY BLOCK-----' "$TMP/key" || die "$1 is not an armoured PGP key" ;;
    *) [ "$(head -c 1 "$TMP/key" | od -An -tx1 | tr -d ' ')" != "2d" ] || die "$1: expected a binary keyring" ;;
  esac
  install -m 0644 "$TMP/key" "$2"
}
# Ubuntu ships ripgrep (and a few others) in "universe"; make sure that component is enabled.
ensure_universe() {
  [ "$ID" = ubuntu ] || return 0
  if grep -Eqs '^(Components:.*|deb .*)\buniverse\b' /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; then
    return 0
  fi
  step "enabling the Ubuntu 'universe' component"
  if [ -f /etc/apt/sources.list.d/ubuntu.sources ]; then
    sed -i -E '/^Components:/{/universe/!s/$/ universe/}' /etc/apt/sources.list.d/ubuntu.sources
  elif [ -f /etc/apt/sources.list ]; then
    sed -i -E '/^deb /{/universe/!s/$/ universe/}' /etc/apt/sources.list
  else
    die "no Ubuntu apt sources found to enable 'universe' in"
  fi
}

step "base stack on ${PRETTY_NAME:-$ID} ($ARCH)"

step "installing prerequisites"
ensure_universe
apt_update
apt_install ca-certificates curl

step "adding apt repositories: Docker, GitHub CLI, NodeSource ${NODE_MAJOR}.x"
install -m 0755 -d /etc/apt/keyrings
fetch_key "https://download.docker.com/linux/$ID/gpg" /etc/apt/keyrings/docker.asc
cat > /etc/apt/sources.list.d/docker.sources <<EOF
Types: deb
URIs: https://download.docker.com/linux/$ID
Suites: $CODENAME
Components: stable
Architectures: $ARCH
Signed-By: /etc/apt/keyrings/docker.asc
EOF
rm -f /etc/apt/sources.list.d/docker.list
fetch_key https://cli.github.com/packages/githubcli-archive-keyring.gpg /etc/apt/keyrings/githubcli-archive-keyring.gpg
echo "deb [arch=$ARCH signed-by=/etc/apt/keyrings/githubcli-archive-keyring.gpg] https://cli.github.com/packages stable main" \
  > /etc/apt/sources.list.d/github-cli.list
fetch_key https://deb.nodesource.com/gpgkey/nodesource-repo.gpg.key /etc/apt/keyrings/nodesource.asc
echo "deb [arch=$ARCH signed-by=/etc/apt/keyrings/nodesource.asc] https://deb.nodesource.com/node_${NODE_MAJOR}.x nodistro main" \
  > /etc/apt/sources.list.d/nodesource.list
# Prefer NodeSource's nodejs over the distribution's (Ubuntu 24.04 has 18.x).
printf 'Package: nodejs\nPin: origin deb.nodesource.com\nPin-Priority: 600\n' > /etc/apt/preferences.d/nodesource
apt_update

step "removing conflicting distribution container packages (if any)"
conflicts=()
for p in docker.io docker-doc docker-compose docker-compose-v2 podman-docker containerd runc; do
  if dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep 'install ok installed' >/dev/null; then conflicts+=("$p"); fi
done
if [ "${#conflicts[@]}" -gt 0 ]; then apt-get -q remove -y "${conflicts[@]}"; fi

step "installing developer tools (git, tmux, ripgrep, jq, build-essential, Python 3, gh)"
apt_install \
  git tmux ripgrep jq less htop wget unzip zip xz-utils bzip2 file procps openssh-server sudo \
  build-essential pkg-config \
  python3 python3-pip python3-venv python3-dev \
  gh

step "installing Docker CE"
apt_install docker-ce docker-ce-cli containerd.io docker-buildx-plugin docker-compose-plugin
# Enabled, not started: the image is being built; clones start it at boot (Incus needs
# security.nesting=true on the instance for Docker to run inside).
systemctl enable docker.service containerd.service
getent group docker >/dev/null || groupadd --system docker
usermod -aG docker ubuntu

step "installing Node.js ${NODE_MAJOR}.x"
apt_install nodejs
node_version=$(node --version)
case "$node_version" in "v${NODE_MAJOR}."*) ;; *) die "expected Node.js ${NODE_MAJOR}.x, got $node_version" ;; esac
npm config set --location=global fund false
npm config set --location=global update-notifier false
echo "node $node_version, npm $(npm --version)"

# Claude Code is not installed here: `sandbox setup` fetches the pinned release on the host and
# pushes it into every golden image before the stack script runs (no container internet needed).

step "checking tools"
for tool in git tmux rg jq gcc make python3 pip3 gh docker node npm claude; do
  command -v "$tool" >/dev/null || die "$tool is missing"
done
python3 -m venv "$TMP/venv" || die "python3 -m venv does not work"
docker --version
gh --version | head -1

printf '%s\n' "$STACK" > /etc/sandbox-stack

step "cleaning caches"
npm cache clean --force >/dev/null 2>&1 || true
apt-get clean
rm -rf /var/lib/apt/lists/* /root/.npm /root/.cache
step "base stack ready"
