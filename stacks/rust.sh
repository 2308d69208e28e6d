#!/usr/bin/env bash
# sandbox-stack: parent=base
# description: Rust stable via rustup (clippy, rustfmt), cargo-tarpaulin, cargo-audit
#
# Runs as root in a clone of golden-base. The toolchain belongs to user ubuntu (~/.cargo,
# ~/.rustup), so agents can `rustup toolchain install`/`cargo install` without sudo.
# Re-runnable: an existing rustup is updated instead of reinstalled.
# shellcheck disable=SC2016 # $VARS in single-quoted as_ubuntu snippets expand in ubuntu's shell
set -euo pipefail
STACK=rust
CARGO_TOOLS=(cargo-tarpaulin cargo-audit)

# The helpers and checks every stack shares (step, die, fetch, apt_install, as_ubuntu, ARCH, TMP…).
# shellcheck source=lib/prelude.sh
. "${SANDBOX_PRELUDE:-$(dirname "$0")/lib/prelude.sh}"

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
