#!/usr/bin/env bash
# The host setup's steps, run as root: installs and starts everything the sandbox host needs —
# Incus (with a btrfs pool and a bridge), debootstrap for local base images, and the host-side
# tools (squid-openssl, nftables, OpenSSH, tmux). Idempotent: a second run only checks and starts
# what is stopped.
#
# The `sandbox` binary carries this file (`sandbox host install [--nat on|off] [--pool-size S]`
# runs it, through sudo when needed); scripts/install-host.sh runs it from a source checkout;
# `sandbox setup --orb` pipes it into the OrbStack machine. Arguments come as argv, never as
# shell text.
#
# --nat off (the default) keeps the bridge without NAT: sandboxes reach only this machine.
# Use --nat on where sandboxes should reach the internet (stacks that download toolchains).
set -euo pipefail

NAT=${SANDBOX_NAT:-off}
POOL_SIZE=${SANDBOX_POOL_SIZE:-20GiB}
BRIDGE=${SANDBOX_BRIDGE:-incusbr0}
BRIDGE_CIDR=${SANDBOX_BRIDGE_CIDR:-10.100.0.1/24}
while [ $# -gt 0 ]; do
  case "$1" in
    --nat) NAT=$2; shift 2 ;;
    --pool-size) POOL_SIZE=$2; shift 2 ;;
    -h|--help) echo 'usage: install-host [--nat on|off] [--pool-size 20GiB]'; exit 0 ;;
    *) echo "install-host: unknown option '$1' (see --help)" >&2; exit 2 ;;
  esac
done
case "$NAT" in on) NAT_BOOL=true ;; off) NAT_BOOL=false ;; *) echo "install-host: --nat takes on|off" >&2; exit 2 ;; esac

log() { printf '[install-host %s] %s\n' "$(date +%T)" "$*" >&2; }
if [ "$(id -u)" != 0 ]; then
  echo "install-host: needs root (it installs packages and starts incusd): run \`sandbox host install\` (it asks sudo), or scripts/install-host.sh" >&2
  exit 1
fi

# shellcheck disable=SC1091
. /etc/os-release
PKGS=(incus btrfs-progs debootstrap squid-openssl nftables openssh-client openssh-server git tmux curl ca-certificates xz-utils zstd dnsmasq-base time iproute2 python3 openssl)

need_install=()
for p in "${PKGS[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || need_install+=("$p"); done
if [ ${#need_install[@]} -gt 0 ]; then
  log "installing: ${need_install[*]}"
  if [ "$ID" = debian ] && [ "${VERSION_CODENAME:-}" = bookworm ]; then
    # Incus is in bookworm-backports only (6.0 LTS); same mirror and keyring as the main source.
    if ! grep -rqs bookworm-backports /etc/apt/sources.list /etc/apt/sources.list.d/; then
      mirror=$(grep -rhs '^URIs:.*debian' /etc/apt/sources.list.d/*.sources | grep -v security | head -1 | awk '{print $2}')
      mirror=${mirror:-http://deb.debian.org/debian}
      cat > /etc/apt/sources.list.d/bookworm-backports.sources <<SRC
Types: deb
URIs: $mirror
Suites: bookworm-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
    fi
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends -t bookworm-backports incus >/dev/null
  else
    # Debian 13 (trixie) and Ubuntu 24.04+ carry incus in their main archives.
    apt-get update -qq
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need_install[@]}" >/dev/null
  # squid's package starts a default instance on systems with an init; ours runs its own (started
  # by `sandbox start` for restricted sandboxes, with its configuration under /run/agent-sandboxes).
  pkill -x squid 2>/dev/null || true
fi

# --- kernel limits for many system containers (Incus production settings) ------------------------
# Every container's systemd takes inotify instances from one shared per-user budget (default 128):
# past ~20 sandboxes, new ones die at boot with "Too many open files".
sysctl -qw fs.inotify.max_user_instances=1048576 fs.inotify.max_user_watches=1048576 \
  fs.inotify.max_queued_events=1048576 vm.max_map_count=262144 2>/dev/null || true
if [ -d /etc/sysctl.d ]; then
  printf '%s\n' fs.inotify.max_user_instances=1048576 fs.inotify.max_user_watches=1048576 \
    fs.inotify.max_queued_events=1048576 vm.max_map_count=262144 > /etc/sysctl.d/60-agent-sandboxes.conf
fi

# --- LXC hooks of Debian's lxcfs package --------------------------------------------------------
# Incus includes /usr/share/lxc/config/common.conf.d/, where Debian's lxcfs puts a post-stop hook
# that sleeps 0.5 s after every container stop (upstream needs the pause on reboot only): half
# of each `sandbox stop`/`rm`. Divert that file (it survives package upgrades) and keep both
# hooks, the pause on reboot only. Undo: rm the file, then
# dpkg-divert --rename --remove /usr/share/lxc/config/common.conf.d/00-lxcfs.conf
LXCFS_CONF=/usr/share/lxc/config/common.conf.d/00-lxcfs.conf
LXCFS_HOOK=/usr/local/lib/agent-sandboxes/lxcfs-reboot.hook
if [ -x /usr/share/lxcfs/lxc.reboot.hook ] && command -v dpkg-divert >/dev/null; then
  install -d -m 0755 "$(dirname "$LXCFS_HOOK")"
  printf '%s\n' '#!/bin/sh' '# Installed by Agent Sandboxes (sandbox host install): the lxcfs pause, on reboot only.' \
    '[ "${LXC_TARGET:-}" = reboot ] || exit 0' 'exec /usr/share/lxcfs/lxc.reboot.hook "$@"' > "$LXCFS_HOOK"
  chmod 0755 "$LXCFS_HOOK"
  if ! dpkg-divert --list "$LXCFS_CONF" | grep -q .; then
    dpkg-divert --quiet --local --rename --divert "$LXCFS_CONF.distrib" --add "$LXCFS_CONF"
  fi
  printf '%s\n' '# Agent Sandboxes: Debian lxcfs hooks; the reboot pause only on reboot (see the .distrib file).' \
    'lxc.hook.mount = /usr/share/lxcfs/lxc.mount.hook' "lxc.hook.post-stop = $LXCFS_HOOK" > "$LXCFS_CONF"
fi

# --- start incusd --------------------------------------------------------------------------------
if [ -d /run/systemd/system ]; then
  systemctl start incus.socket incus.service >/dev/null 2>&1 || systemctl start incus
elif ! incus admin waitready --timeout 1 >/dev/null 2>&1; then
  log "starting incusd (no systemd as PID 1)"
  mkdir -p /var/log/incus
  # lxcfs gives containers a correct /proc view when present; harmless if missing. The daemon
  # keeps none of our caller's descriptors: an inherited pipe would keep the caller's reader
  # waiting, an inherited lock would stay held for as long as incusd runs.
  (
    for fd in /proc/self/fd/*; do
      fd=${fd##*/}
      [ "$fd" -gt 2 ] 2>/dev/null && eval "exec $fd>&-" 2>/dev/null || true
    done
    # Its stderr is kept: a Go panic or a goroutine dump (SIGABRT, for a daemon that stopped
    # answering) goes there, not to its log file.
    GOTRACEBACK=all exec setsid /usr/libexec/incus/incusd --group root --logfile /var/log/incus/incusd.log \
      </dev/null >>/var/log/incus/incusd.stderr 2>&1
  ) &
fi
incus admin waitready --timeout 60

# --- initialise: btrfs pool, bridge, default profile ---------------------------------------------
if ! incus storage show default >/dev/null 2>&1; then
  log "creating btrfs storage pool 'default' ($POOL_SIZE)"
  incus storage create default btrfs size="$POOL_SIZE" >/dev/null
fi
if ! incus network show "$BRIDGE" >/dev/null 2>&1; then
  log "creating bridge $BRIDGE ($BRIDGE_CIDR, nat=$NAT_BOOL)"
  incus network create "$BRIDGE" ipv4.address="$BRIDGE_CIDR" ipv4.nat="$NAT_BOOL" ipv6.address=none >/dev/null
else
  incus network set "$BRIDGE" ipv4.nat="$NAT_BOOL"
fi
if ! incus profile device get default root pool >/dev/null 2>&1; then
  incus profile device add default root disk path=/ pool=default >/dev/null
fi
if ! incus profile device get default eth0 network >/dev/null 2>&1; then
  incus profile device add default eth0 nic network="$BRIDGE" name=eth0 >/dev/null
fi
log "incus ready: $(incus version | tr '\n' ' ')"
# Whoever asked through sudo gets the Incus socket (incus-admin), so that `sandbox` and the VS
# Code extension work as that user; it takes effect at their next login.
if [ -n "${SUDO_USER:-}" ] && [ "$SUDO_USER" != root ] && getent group incus-admin >/dev/null \
  && ! id -nG "$SUDO_USER" | tr ' ' '\n' | grep -qx incus-admin; then
  usermod -aG incus-admin "$SUDO_USER"
  log "added $SUDO_USER to the incus-admin group (it may use Incus): log out and in again for it to apply"
fi
