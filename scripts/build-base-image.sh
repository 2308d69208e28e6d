#!/usr/bin/env bash
# Builds a local Incus base image with debootstrap, for machines that cannot reach an image server.
#
#   build-base-image.sh SUITE ALIAS
#
# Cached: the image carries the hash of its inputs (this script + SUITE) as the property
# `sandbox.inputs`; when ALIAS already points at an image with the same hash nothing is rebuilt.
# The rootfs holds only Debian packages; making it a sandbox (user, sshd, network) is the job of
# stacks/lib/common.sh, run by `sandbox setup`. `sandbox setup --base-image debootstrap:SUITE`
# runs this script (embedded in the binary); the test bed runs it directly.
set -euo pipefail
SUITE=${1:?usage: build-base-image.sh SUITE ALIAS}
ALIAS=${2:?usage: build-base-image.sh SUITE ALIAS}
case "$SUITE" in *[!a-z0-9-]*|"") echo "build-base-image: invalid suite '$SUITE'" >&2; exit 2 ;; esac
MIRROR=${SANDBOX_DEBIAN_MIRROR:-}
if [ -z "$MIRROR" ]; then
  MIRROR=$(grep -rhs '^URIs:.*debian' /etc/apt/sources.list.d/*.sources 2>/dev/null | grep -v security | head -1 | awk '{print $2}')
  [ -n "$MIRROR" ] || MIRROR=$(grep -hs '^deb .*debian' /etc/apt/sources.list 2>/dev/null | grep -v security | head -1 | awk '{print $2}')
  MIRROR=${MIRROR:-http://deb.debian.org/debian}
fi
INCLUDE=systemd-sysv,dbus,openssh-server,git,iproute2,ca-certificates,curl,sudo,ifupdown,isc-dhcp-client,python3,netcat-openbsd,iputils-ping,procps,tmux,less,jq,gnupg,locales,xz-utils,bzip2,unzip,file,ripgrep
log() { printf '[base-image %s] %s\n' "$(date +%T)" "$*" >&2; }

KEY=$( { cat "$0"; echo "$SUITE"; } | sha256sum | cut -c1-16)
if current=$(incus image get-property "$ALIAS" sandbox.inputs 2>/dev/null) && [ "$current" = "$KEY" ]; then
  log "image '$ALIAS' is up to date ($KEY)"; exit 0
fi

CACHE=${SANDBOX_CACHE_DIR:-/var/cache/agent-sandboxes}/base-$SUITE-$KEY
mkdir -p "$CACHE"
if [ ! -s "$CACHE/rootfs.tar.gz" ]; then
  command -v debootstrap >/dev/null || { echo "build-base-image: debootstrap is missing (apt-get install debootstrap)" >&2; exit 1; }
  ROOTFS=$(mktemp -d /var/tmp/sandbox-rootfs.XXXXXX)
  trap 'rm -rf "$ROOTFS"' EXIT
  log "debootstrap $SUITE from $MIRROR (about a minute)"
  debootstrap --variant=minbase --include="$INCLUDE" "$SUITE" "$ROOTFS" "$MIRROR" > "$CACHE/debootstrap.log" 2>&1 \
    || { tail -20 "$CACHE/debootstrap.log" >&2; exit 1; }
  # Networking: systemd-networkd never got a lease here; ifupdown + dhclient does in ~0.1 s.
  printf 'auto lo\niface lo inet loopback\n\nauto eth0\niface eth0 inet dhcp\n' > "$ROOTFS/etc/network/interfaces"
  chroot "$ROOTFS" systemctl enable networking >/dev/null 2>&1 || true
  rm -f "$ROOTFS"/etc/ssh/ssh_host_* ; : > "$ROOTFS/etc/machine-id"
  rm -rf "$ROOTFS"/var/cache/apt/archives/*.deb "$ROOTFS"/var/lib/apt/lists/*
  echo "deb $MIRROR $SUITE main" > "$ROOTFS/etc/apt/sources.list"
  chmod 0755 "$ROOTFS"   # mktemp made it 0700: the container's / must be traversable by every user
  log "packing rootfs"
  tar -C "$ROOTFS" --numeric-owner -cf - . | gzip -1 > "$CACHE/rootfs.tar.gz.tmp"
  mv "$CACHE/rootfs.tar.gz.tmp" "$CACHE/rootfs.tar.gz"
fi
cat > "$CACHE/metadata.yaml" <<META
architecture: $(uname -m)
creation_date: $(date +%s)
properties:
  os: debian
  release: $SUITE
  description: Debian $SUITE (debootstrap, Agent Sandboxes base)
  sandbox.inputs: "$KEY"
META
tar -C "$CACHE" -czf "$CACHE/meta.tar.gz" metadata.yaml
log "importing as '$ALIAS'"
old=$(incus image info "$ALIAS" 2>/dev/null | awk '/^Fingerprint:/{print $2}') || true
[ -z "$old" ] || incus image alias delete "$ALIAS"
incus image import "$CACHE/meta.tar.gz" "$CACHE/rootfs.tar.gz" --alias "$ALIAS" >/dev/null
[ -z "$old" ] || incus image delete "$old" 2>/dev/null || true
log "image '$ALIAS' ready ($KEY)"
