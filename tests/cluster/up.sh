#!/usr/bin/env bash
# A real three-member Incus cluster on this one machine, for tests/cluster.rs and the cluster
# benchmark: three system containers `sbx-clu-1..3` on the host's Incus (security.nesting), each
# running its own incusd from the Debian archive, joined with `incus cluster add` tokens over the
# host's bridge. Idempotent: a cluster that is already up and whole is kept.
#
#   tests/cluster/up.sh        # prints the members' addresses; tests/cluster/down.sh removes it all
#
# Costs (measured here, README "Tests"): the first run fetches ~70 .debs (~53 MB) on the host and
# installs them in a builder container (~1 min), then publishes it as the image
# `sbx-cluster-member/KEY` (~35 s), cached like the base image: KEY covers the package list, the
# base image and this script's member recipe. Every later run: three launches + init + two joins.
#
# Network rule: the members have no internet (bridge NAT off); the .debs are fetched by the host's
# apt from the package registry and pushed in. Inner sandboxes live on each member's own bridge
# (10.101.0.0/24, NAT off), reachable only through that member.
set -euo pipefail
[ "$(id -u)" = 0 ] || { echo "tests/cluster/up.sh: needs root (it drives the host's Incus)" >&2; exit 1; }
cd "$(dirname "$0")/../.."

BASE=${SANDBOX_TEST_IMAGE:-sandbox-base/debootstrap-bookworm}
MEMBERS=(sbx-clu-1 sbx-clu-2 sbx-clu-3)
PACKAGES=(incus btrfs-progs dnsmasq-base nftables openssh-server)
CACHE=/var/cache/agent-sandboxes/cluster
# Nested Incus on this host: cgroup v1 hybrid needs the cgroup mounts forced writable, and the
# inner daemon must ask for fewer ids than the outer container has (shared/notes/incus-here.md).
NEST=(-c security.nesting=true
      -c raw.lxc="lxc.mount.auto=proc:rw sys:rw cgroup:rw:force"
      -c security.syscalls.intercept.mknod=true
      -c security.syscalls.intercept.setxattr=true
      -c limits.memory=3GiB)
log() { printf '[cluster %s] %s\n' "$(date +%T)" "$*" >&2; }
addr() { # the member's address on the host's bridge (not its own inner bridge's)
  incus query "/1.0/instances/$1/state" 2>/dev/null | python3 -c '
import json, sys
try:
    s = json.load(sys.stdin)
except ValueError:
    sys.exit(0)
for a in ((s.get("network") or {}).get("eth0") or {}).get("addresses") or []:
    if a.get("family") == "inet" and a.get("scope") == "global":
        print(a["address"])
        break'
}
mx() { local m=$1; shift; incus exec "$m" -- "$@"; }

base_fp=$(incus image info "$BASE" | awk '/^Fingerprint:/{print $2}')
[ -n "$base_fp" ] || { echo "no image $BASE on the host: run scripts/build-base-image.sh first" >&2; exit 1; }
key=$( { echo "${PACKAGES[*]}" "$base_fp"; sed -n "/# recipe:begin/,/# recipe:end/p" "$0"; } | sha256sum | cut -c1-12)
IMAGE=sbx-cluster-member/$key

# Already up: every member running and ONLINE in one cluster.
if [ "$(mx sbx-clu-1 incus cluster list --format csv 2>/dev/null | grep -c ',ONLINE,')" = 3 ]; then
  log "cluster already up"
else
  bash tests/cluster/down.sh
  if ! incus image info "$IMAGE" >/dev/null 2>&1; then
    # recipe:begin — a member: the base image + Incus from bookworm-backports, no daemon state.
    log "building the member image $IMAGE"
    b=sbx-clu-build
    incus delete --force "$b" >/dev/null 2>&1 || true
    incus launch "$BASE" "$b" "${NEST[@]}" -q
    debs=$CACHE/debs-$key
    if [ ! -e "$debs/.complete" ]; then
      mkdir -p "$debs/partial"
      incus file pull "$b/var/lib/dpkg/status" "$CACHE/status-$key"
      apt-get -q -o Dir::State::status="$CACHE/status-$key" -o Dir::Cache::archives="$debs" \
        install -y --download-only --no-install-recommends -t bookworm-backports "${PACKAGES[@]}" >/dev/null
      touch "$debs/.complete"
    fi
    mx "$b" mkdir -p /root/debs
    tar -C "$debs" -cf - $(cd "$debs" && ls -- *.deb) | mx "$b" tar -C /root/debs -xf -
    mx "$b" sh -c 'DEBIAN_FRONTEND=noninteractive dpkg -i /root/debs/*.deb >/root/dpkg.log 2>&1 || { tail -20 /root/dpkg.log; exit 1; }'
    mx "$b" sh -c 'printf "root:1000000:100000000\n" > /etc/subuid && cp /etc/subuid /etc/subgid'
    # No daemon identity in the image: each member makes its own certificate, database, host keys.
    mx "$b" sh -c 'systemctl stop incus.service incus.socket incus-user.socket incus-user.service 2>/dev/null;
      rm -rf /var/lib/incus/* /var/log/incus/* /var/cache/incus/* /root/debs /root/dpkg.log;
      truncate -s0 /etc/machine-id; rm -f /etc/ssh/ssh_host_*; apt-get clean'
    incus stop "$b"
    incus publish "$b" --alias "$IMAGE" -q >/dev/null
    incus delete "$b"
    # recipe:end
  fi
  log "launching ${MEMBERS[*]}"
  # Fixed addresses outside the sandboxes' slot range (10.100.0.101-199), which the host's egress
  # rules treat as sandboxes (members must reach each other on 8443), and outside .200-.249, which
  # the incus_client suite pins on test NICs.
  for i in 1 2 3; do
    incus launch "$IMAGE" "sbx-clu-$i" "${NEST[@]}" -d "eth0,ipv4.address=10.100.0.25$i" -q
  done
  for m in "${MEMBERS[@]}"; do
    for _ in $(seq 100); do [ -n "$(addr "$m")" ] && mx "$m" test -S /var/lib/incus/unix.socket && break; sleep 0.2; done
    mx "$m" sh -c 'ssh-keygen -A >/dev/null && systemctl reset-failed ssh; systemctl restart ssh'
  done
  a1=$(addr sbx-clu-1)
  log "bootstrapping the cluster on sbx-clu-1 ($a1)"
  mx sbx-clu-1 incus admin init --preseed <<EOF
config:
  core.https_address: $a1:8443
cluster:
  server_name: sbx-clu-1
  enabled: true
networks:
- name: incusbr0
  type: bridge
  config: {ipv4.address: 10.101.0.1/24, ipv4.nat: "false", ipv6.address: none}
storage_pools:
- name: default
  driver: btrfs
  config: {source: /var/lib/sbx-btrfs}
profiles:
- name: default
  devices:
    root: {path: /, pool: default, type: disk}
    eth0: {name: eth0, network: incusbr0, type: nic}
EOF
  for m in sbx-clu-2 sbx-clu-3; do
    log "joining $m"
    token=$(mx sbx-clu-1 incus cluster add "$m" --quiet)
    mx "$m" incus admin init --preseed <<EOF
cluster:
  enabled: true
  server_name: $m
  server_address: $(addr "$m"):8443
  cluster_token: $token
  member_config:
  - {entity: storage-pool, name: default, key: source, value: /var/lib/sbx-btrfs}
EOF
  done
fi

# The base image the tests build golden images from (images are cluster-wide: once is enough).
if ! mx sbx-clu-1 incus image info "$BASE" >/dev/null 2>&1; then
  log "importing $BASE into the cluster"
  exp=$CACHE/base-$base_fp
  [ -e "$exp.root" ] || incus image export "$BASE" "$exp" >/dev/null
  mx sbx-clu-1 mkdir -p /root/img
  incus file push "$exp" "$exp.root" sbx-clu-1/root/img/ -q
  mx sbx-clu-1 incus image import "/root/img/$(basename "$exp")" "/root/img/$(basename "$exp").root" --alias "$BASE" -q
  mx sbx-clu-1 rm -rf /root/img
fi
# SSH into the members (the ProxyJump of sandboxes placed there) with this key only.
mkdir -p "$CACHE"
key_file=$CACHE/jump_ed25519
[ -e "$key_file" ] || ssh-keygen -q -t ed25519 -N '' -C sbx-cluster-jump -f "$key_file"
for m in "${MEMBERS[@]}"; do
  mx "$m" sh -c 'mkdir -p -m 700 /root/.ssh && cat > /root/.ssh/authorized_keys' < "$key_file.pub"
done
for m in "${MEMBERS[@]}"; do echo "$m $(addr "$m")"; done
