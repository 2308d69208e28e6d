#!/usr/bin/env bash
# sandbox-stack: parent=base
# description: Rust stable via rustup (clippy, rustfmt), cargo-tarpaulin, cargo-audit
#
# Runs as root in a clone of golden-base. The toolchain belongs to user ubuntu (~/.cargo,
# ~/.rustup), so agents can `rustup toolchain install`/`cargo install` without sudo.
# Re-runnable: an existing rustup is updated instead of reinstalled.
# shellcheck disable=SC2016 # $VARS in single-quoted as_ubuntu snippets expand in ubuntu's shell
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
STACK=rust
CARGO_TOOLS=(cargo-tarpaulin cargo-audit)

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

step "rust stack on ${PRETTY_NAME:-$ID} ($ARCH)"

step "installing build dependencies"
apt_update
apt_install ca-certificates curl build-essential pkg-config libssl-dev

step "making ~/.cargo/bin part of PATH (/etc/profile.d/rust.sh)"
cat > /etc/profile.d/rust.sh <<'EOF'
# Rust toolchain installed with rustup for the current user (user ubuntu in sandboxes).
if [ -d "$HOME/.cargo/bin" ]; then
  case ":$PATH:" in *":$HOME/.cargo/bin:"*) ;; *) PATH="$HOME/.cargo/bin:$PATH"; export PATH ;; esac
fi
EOF

step "installing rustup and the stable toolchain (minimal profile + clippy, rustfmt) for ubuntu"
fetch https://sh.rustup.rs -o "$TMP/rustup-init.sh"
chmod 0644 "$TMP/rustup-init.sh"
as_ubuntu "
export PATH=\"\$HOME/.cargo/bin:\$PATH\"
if [ -x \"\$HOME/.cargo/bin/rustup\" ]; then
  echo 'rustup already installed: updating'
  rustup self update || echo 'warning: rustup self update failed; keeping the installed rustup' >&2
  rustup set profile minimal
  rustup toolchain install stable --profile minimal --component clippy --component rustfmt
  rustup default stable
else
  sh '$TMP/rustup-init.sh' -y --profile minimal \
    --default-toolchain stable --component clippy,rustfmt
fi
rustc --version; cargo --version; cargo clippy --version; cargo fmt --version
"

step "installing ${CARGO_TOOLS[*]}"
# Fast path: prebuilt binaries through cargo-binstall (which itself falls back to compiling);
# slow path: cargo install --locked. The check below fails the build if neither worked.
fetch https://raw.githubusercontent.com/cargo-bins/cargo-binstall/main/install-from-binstall-release.sh \
  -o "$TMP/install-binstall.sh" \
  || { rm -f "$TMP/install-binstall.sh"; echo "warning: could not download the cargo-binstall installer" >&2; }
if [ -f "$TMP/install-binstall.sh" ]; then chmod 0644 "$TMP/install-binstall.sh"; fi
as_ubuntu "
export PATH=\"\$HOME/.cargo/bin:\$PATH\"
tools='${CARGO_TOOLS[*]}'
if ! command -v cargo-binstall >/dev/null && [ -f '$TMP/install-binstall.sh' ]; then
  bash '$TMP/install-binstall.sh' || echo 'warning: cargo-binstall install failed' >&2
fi
if command -v cargo-binstall >/dev/null && cargo binstall --no-confirm --locked \$tools; then
  :
else
  echo 'falling back to cargo install --locked (compiles from source, takes a few minutes)'
  cargo install --locked \$tools
fi
cargo tarpaulin --version
cargo audit --version
"

printf '%s\n' "$STACK" > /etc/sandbox-stack

step "cleaning caches"
as_ubuntu 'rm -rf "$HOME/.cargo/registry" "$HOME/.cargo/git" "$HOME/.rustup/downloads" "$HOME/.rustup/tmp" "$HOME/.cache"'
apt-get clean
rm -rf /var/lib/apt/lists/* /root/.cache
step "rust stack ready"
