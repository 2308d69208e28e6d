#!/usr/bin/env bash
# sandbox-stack: parent=base
# description: .NET LTS SDK (dotnet format built in) with dotnet-coverage and ReportGenerator
#
# Runs as root in a clone of golden-base. The SDK goes to /usr/share/dotnet via Microsoft's
# dotnet-install.sh (/usr/local/bin/dotnet links to it); dotnet-coverage and ReportGenerator are
# global tools of user ubuntu (~/.dotnet/tools). Re-runnable: tools are updated when present.
# shellcheck disable=SC2016 # $VARS in single-quoted as_ubuntu snippets expand in ubuntu's shell
set -euo pipefail
STACK=dotnet
DOTNET_CHANNEL=${DOTNET_CHANNEL:-LTS}
DOTNET_DIR=/usr/share/dotnet
DOTNET_TOOLS=(dotnet-coverage dotnet-reportgenerator-globaltool)
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1 DOTNET_ROOT=$DOTNET_DIR

# The helpers and checks every stack shares (step, die, fetch, apt_install, as_ubuntu, ARCH, TMP…).
# shellcheck source=lib/prelude.sh
. "${SANDBOX_PRELUDE:-$(dirname "$0")/lib/prelude.sh}"
# Newest real package whose name matches an extended regex (libicu72 on Debian 12, libicu74 on
# Ubuntu 24.04; libssl3 vs libssl3t64).
pick_pkg() {
  local p
  p=$(apt-cache pkgnames | grep -E "^($1)\$" | sort -V | tail -1)
  [ -n "$p" ] || die "no package matching ^($1)\$"
  printf '%s\n' "$p"
}

step "dotnet stack on ${PRETTY_NAME:-$ID} ($ARCH)"

step "installing .NET runtime dependencies"
apt_update
apt_install ca-certificates curl tzdata libc6 libgcc-s1 libstdc++6 zlib1g libgssapi-krb5-2 \
  "$(pick_pkg 'libicu[0-9]+')" "$(pick_pkg 'libssl3(t64)?')"

step "installing the .NET SDK (channel $DOTNET_CHANNEL) into $DOTNET_DIR"
fetch https://dot.net/v1/dotnet-install.sh -o "$TMP/dotnet-install.sh"
bash "$TMP/dotnet-install.sh" --channel "$DOTNET_CHANNEL" --install-dir "$DOTNET_DIR" --no-path
ln -sfn "$DOTNET_DIR/dotnet" /usr/local/bin/dotnet
# Where apphosts (global tools) look for the runtime when DOTNET_ROOT is not set.
install -m 0755 -d /etc/dotnet
printf '%s\n' "$DOTNET_DIR" > /etc/dotnet/install_location
dotnet --list-sdks
[ -n "$(dotnet --list-sdks)" ] || die "no .NET SDK installed"

step "writing /etc/profile.d/dotnet.sh"
cat > /etc/profile.d/dotnet.sh <<EOF
# .NET SDK in $DOTNET_DIR; global tools (dotnet tool install -g) in ~/.dotnet/tools.
export DOTNET_ROOT=$DOTNET_DIR
export DOTNET_CLI_TELEMETRY_OPTOUT=1
export DOTNET_NOLOGO=1
case ":\$PATH:" in *":\$HOME/.dotnet/tools:"*) ;; *) PATH="\$PATH:\$HOME/.dotnet/tools"; export PATH ;; esac
EOF

step "installing ${DOTNET_TOOLS[*]} as global tools for ubuntu"
for tool in "${DOTNET_TOOLS[@]}"; do
  as_ubuntu "
if dotnet tool list --global | awk 'NR > 2 { print tolower(\$1) }' | grep -x '$tool' >/dev/null; then
  dotnet tool update --global '$tool'
else
  dotnet tool install --global '$tool'
fi"
done

step "checking tools"
as_ubuntu '
dotnet --version
dotnet format --version
for c in dotnet-coverage reportgenerator; do
  command -v "$c" >/dev/null || { echo "error: $c is missing" >&2; exit 1; }
done
dotnet tool list --global
'

printf '%s\n' "$STACK" > /etc/sandbox-stack

step "cleaning caches"
# Global tools live in ~/.dotnet/tools/.store, so the NuGet caches can go.
as_ubuntu 'dotnet nuget locals all --clear >/dev/null'
apt-get clean
rm -rf /var/lib/apt/lists/* /root/.cache /root/.nuget /root/.dotnet /root/.local/share/NuGet
step "dotnet stack ready"
