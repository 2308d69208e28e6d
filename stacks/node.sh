#!/usr/bin/env bash
# sandbox-stack: parent=base
# description: Node.js 22 LTS with npm, pnpm, yarn (corepack), bun, c8, eslint, prettier
#
# Runs as root in a clone of golden-base (which already has Node.js 22 from NodeSource; this
# script makes sure of it). pnpm and yarn come from corepack, pre-fetched for user ubuntu; bun is
# installed per user in ~/.bun; c8, eslint and prettier are global npm packages.
# Re-runnable: everything is (re)installed at its latest version.
# shellcheck disable=SC2016 # $VARS in single-quoted as_ubuntu snippets expand in ubuntu's shell
set -euo pipefail
STACK=node
NODE_MAJOR=22
NPM_GLOBALS=(c8 eslint prettier)

# The helpers and checks every stack shares (step, die, fetch, apt_install, as_ubuntu, ARCH, TMP…).
# shellcheck source=lib/prelude.sh
. "${SANDBOX_PRELUDE:-$(dirname "$0")/lib/prelude.sh}"

step "node stack on ${PRETTY_NAME:-$ID} ($ARCH)"

step "installing prerequisites"
apt_update
apt_install ca-certificates curl unzip

node_major() { command -v node >/dev/null && node --version | sed -E 's/^v([0-9]+)\..*/\1/'; }
if [ "$(node_major || true)" = "$NODE_MAJOR" ]; then
  step "Node.js $(node --version) is already installed"
else
  step "installing Node.js ${NODE_MAJOR}.x from NodeSource"
  install -m 0755 -d /etc/apt/keyrings
  fetch https://deb.nodesource.com/gpgkey/nodesource-repo.gpg.key -o "$TMP/nodesource.asc"
  grep -q -- '-----BEGIN PGP PUBLIC KEY BLOCK-----' "$TMP/nodesource.asc" || die "NodeSource key download is not a PGP key"
  install -m 0644 "$TMP/nodesource.asc" /etc/apt/keyrings/nodesource.asc
  echo "deb [arch=$ARCH signed-by=/etc/apt/keyrings/nodesource.asc] https://deb.nodesource.com/node_${NODE_MAJOR}.x nodistro main" \
    > /etc/apt/sources.list.d/nodesource.list
  printf 'Package: nodejs\nPin: origin deb.nodesource.com\nPin-Priority: 600\n' > /etc/apt/preferences.d/nodesource
  apt_update
  apt_install nodejs
  [ "$(node_major)" = "$NODE_MAJOR" ] || die "expected Node.js ${NODE_MAJOR}.x, got $(node --version)"
fi
echo "node $(node --version), npm $(npm --version)"

step "writing /etc/profile.d/node.sh (corepack, pnpm and bun settings)"
cat > /etc/profile.d/node.sh <<'EOF'
# corepack: never prompt before fetching the package manager a project pins, and never
# rewrite package.json to pin one.
export COREPACK_ENABLE_DOWNLOAD_PROMPT=0
export COREPACK_ENABLE_AUTO_PIN=0
# pnpm global installs (`pnpm add -g`) and bun, both per user.
export PNPM_HOME="$HOME/.local/share/pnpm"
export BUN_INSTALL="$HOME/.bun"
for _d in "$PNPM_HOME" "$BUN_INSTALL/bin"; do
  case ":$PATH:" in *":$_d:"*) ;; *) PATH="$_d:$PATH" ;; esac
done
unset _d
export PATH
EOF

step "enabling corepack (pnpm, yarn)"
if ! command -v corepack >/dev/null; then
  npm install -g --no-audit --no-fund corepack
fi
# Node 22 ships corepack; remove npm-installed yarn/pnpm that would shadow its shims.
for pm in yarn pnpm; do
  if [ -d "$(npm root -g)/$pm" ]; then npm uninstall -g "$pm"; fi
done
corepack enable
# Pre-fetch for ubuntu and make them the defaults outside projects; a project's "packageManager"
# field still selects its own version (fetched on first use, without a prompt). Yarn 1 (classic)
# is the default, as corepack's own; 1.22.22 is its final release.
prefetch_pms() { as_ubuntu 'corepack install --global pnpm@latest yarn@1.22.22 && pnpm --version && yarn --version'; }
if ! prefetch_pms; then
  # Older bundled corepacks carry stale npm signing keys; a current corepack fixes that.
  echo "corepack could not fetch pnpm/yarn: updating corepack from npm and retrying"
  npm install -g --no-audit --no-fund corepack@latest
  corepack enable
  prefetch_pms
fi

step "installing bun for ubuntu (~/.bun)"
fetch https://bun.sh/install -o "$TMP/bun-install.sh"
chmod 0644 "$TMP/bun-install.sh"
as_ubuntu "bash '$TMP/bun-install.sh' && \"\$HOME/.bun/bin/bun\" --version"

step "installing ${NPM_GLOBALS[*]} (global npm packages)"
npm install -g --no-audit --no-fund "${NPM_GLOBALS[@]}"

step "checking tools"
as_ubuntu '
for c in node npm npx corepack pnpm yarn bun c8 eslint prettier; do
  command -v "$c" >/dev/null || { echo "error: $c is missing" >&2; exit 1; }
done
echo "c8 $(c8 --version), eslint $(eslint --version), prettier $(prettier --version), bun $(bun --version)"
'

printf '%s\n' "$STACK" > /etc/sandbox-stack

step "cleaning caches"
npm cache clean --force >/dev/null 2>&1 || true
# Keep ~/.cache/node/corepack: it holds the pnpm and yarn that corepack installed.
as_ubuntu 'rm -rf "$HOME/.npm" "$HOME/.bun/install/cache"'
apt-get clean
rm -rf /var/lib/apt/lists/* /root/.npm /root/.cache
step "node stack ready"
