#!/usr/bin/env bash
# Runs first in every golden image built straight from a base image (stacks whose header says
# `parent=image`). It makes any Debian/Ubuntu system container a sandbox: user `ubuntu` (uid/gid
# 1000, passwordless sudo), sshd with keys only, /workspace/project, DHCP networking, and the
# profile hooks the engine writes into (environment, ssh-agent socket). Needs no network.
set -euo pipefail
echo "==> sandbox user, sshd and workspace"
chmod 0755 /

if ! getent group ubuntu >/dev/null; then groupadd --gid 1000 ubuntu; fi
if ! id ubuntu >/dev/null 2>&1; then
  useradd --uid 1000 --gid 1000 --create-home --home-dir /home/ubuntu --shell /bin/bash ubuntu
fi
passwd -l ubuntu >/dev/null 2>&1 || true
install -d -m 0755 /etc/sudoers.d
printf 'ubuntu ALL=(ALL) NOPASSWD:ALL\n' > /etc/sudoers.d/90-sandbox
chmod 0440 /etc/sudoers.d/90-sandbox
install -d -o ubuntu -g ubuntu -m 0700 /home/ubuntu/.ssh
install -d -o ubuntu -g ubuntu -m 0755 /workspace /workspace/project

# sshd: keys only, no root, no DNS lookups (fast logins). Host keys are written per sandbox by the
# engine before first boot, so the image itself carries none.
install -d -m 0755 /etc/ssh/sshd_config.d
cat > /etc/ssh/sshd_config.d/10-sandbox.conf <<'CONF'
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin no
UseDNS no
PrintMotd no
AcceptEnv LANG LC_*
CONF
# sshd per connection from a socket systemd opens first thing in boot (before local-fs, sysinit
# and network.target, which ssh.service waits for): a sandbox answers SSH ~0.1 s after it starts.
# NoDelay: sshd leaves Nagle on for sessions without a tty, and each `ssh NAME cmd` then stalls
# ~40 ms on a delayed ACK. The packaged units are masked so nothing else binds port 22.
cat > /etc/systemd/system/sandbox-ssh.socket <<'UNIT'
[Unit]
Description=OpenSSH for the sandbox (socket, early in boot)
DefaultDependencies=no
Before=sockets.target shutdown.target
Conflicts=shutdown.target
ConditionPathExists=!/etc/ssh/sshd_not_to_be_run

[Socket]
ListenStream=22
Accept=yes
NoDelay=yes

[Install]
WantedBy=sockets.target
UNIT
cat > /etc/systemd/system/sandbox-ssh@.service <<'UNIT'
[Unit]
Description=OpenSSH session
DefaultDependencies=no
Before=shutdown.target
Conflicts=shutdown.target

[Service]
# Straight in system.slice: a per-template slice would be made at the first connection (~10 ms).
Slice=system.slice
# When the connection ends only sshd goes, as with the packaged ssh.service: what a session
# started to outlive it (the tmux server of `sandbox claude`, VS Code's server) keeps running.
KillMode=process
ExecStart=-/usr/sbin/sshd -i
StandardInput=socket
StandardError=journal
RuntimeDirectory=sshd
RuntimeDirectoryMode=0755
RuntimeDirectoryPreserve=yes
UNIT
# No message of the day: sshd prints none (PrintMotd no), yet pam_motd would run the
# update-motd.d scripts at every session, `ssh NAME cmd` included.
if [ -f /etc/pam.d/sshd ]; then
  sed -i -E 's/^(session[[:space:]]+optional[[:space:]]+pam_motd\.so.*)$/# \1  # Agent Sandboxes: no motd/' /etc/pam.d/sshd
fi
systemctl disable ssh.service ssh.socket >/dev/null 2>&1 || true
systemctl mask ssh.service ssh.socket >/dev/null 2>&1 || true
systemctl enable sandbox-ssh.socket >/dev/null 2>&1
# Logins are allowed as soon as sshd answers (no /run/nologin while the rest of boot finishes).
ln -sf /dev/null /etc/tmpfiles.d/systemd-nologin.conf

# Networking with ifupdown + DHCP where the image uses it (systemd-networkd images keep theirs).
if [ -d /etc/network ] && command -v ifup >/dev/null; then
  if ! grep -qs 'iface eth0' /etc/network/interfaces; then
    printf 'auto lo\niface lo inet loopback\n\nauto eth0\niface eth0 inet dhcp\n' > /etc/network/interfaces
  fi
  systemctl enable networking >/dev/null 2>&1 || true
  # The engine pins each sandbox's address with a static eth0 stanza. ifupdown would apply it only
  # after local-fs and friends (~0.3 s into boot, and sshd waits for network.target); this unit
  # applies it first thing, and networking.service then skips.
  install -d -m 0755 /usr/local/lib/sandbox
  cat > /usr/local/lib/sandbox/net-up <<'NET'
#!/bin/sh
# Applies a static `iface eth0 inet static` stanza (address/gateway) from /etc/network/interfaces.
set -e
eval "$(awk '
  $1 == "iface" { in_eth0 = ($2 == "eth0" && $4 == "static") ; next }
  in_eth0 && $1 == "address" { printf "addr=%s\n", $2 }
  in_eth0 && $1 == "gateway" { printf "gw=%s\n", $2 }
' /etc/network/interfaces | grep -E '^(addr|gw)=[0-9./]+$')"
[ -n "${addr:-}" ] || exit 0
# The engine has LXC put the address on eth0 before init starts (raw.lxc); `replace` keeps this
# working for sandboxes without it. One `ip` per batch: this runs while the first SSH session does.
{
  echo "link set lo up"
  echo "addr replace $addr dev eth0"
  echo "link set eth0 up"
  [ -z "${gw:-}" ] || echo "route replace default via $gw dev eth0"
} | ip -batch -
# No delayed ACKs towards the host: with Nagle on the other side, each one stalls a round trip
# ~40 ms (ssh sessions, forwarded ports).
ip -4 route show dev eth0 | sed 's/^/route replace /; s/$/ dev eth0 quickack 1/' | ip -force -batch - || true
mkdir -p /run/network
touch /run/sandbox-net.done
NET
  chmod 0755 /usr/local/lib/sandbox/net-up
  cat > /etc/systemd/system/sandbox-net.service <<'UNIT'
[Unit]
Description=Sandbox static address (early)
DefaultDependencies=no
Before=network-pre.target networking.service
Wants=network-pre.target
ConditionPathExists=/etc/network/interfaces

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/usr/local/lib/sandbox/net-up

[Install]
WantedBy=sysinit.target
UNIT
  install -d -m 0755 /etc/systemd/system/networking.service.d
  printf '[Unit]\nConditionPathExists=!/run/sandbox-net.done\n' > /etc/systemd/system/networking.service.d/sandbox.conf
  systemctl enable sandbox-net.service >/dev/null 2>&1 || true
fi

# Profile hooks: the engine writes /etc/profile.d/sandbox-env.sh; the agent socket is carried in
# by a proxy device at /run/ssh-agent.sock.
cat > /etc/profile.d/sandbox-agent.sh <<'PROF'
if [ -S /run/ssh-agent.sock ]; then export SSH_AUTH_SOCK=/run/ssh-agent.sock; fi
PROF
touch /etc/profile.d/sandbox-env.sh
grep -qs 'cd /workspace/project' /home/ubuntu/.profile || \
  printf '\n[ -d /workspace/project ] && [ "$PWD" = "$HOME" ] && cd /workspace/project\n' >> /home/ubuntu/.profile
chown ubuntu:ubuntu /home/ubuntu/.profile 2>/dev/null || true

# `incus stop` sends SIGPWR to init; make systemd treat it as a clean power-off (fast stop).
ln -sf /lib/systemd/system/poweroff.target /etc/systemd/system/sigpwr.target

# Boot fast: nothing in a sandbox should wait for "network online" or run apt timers at boot.
for unit in systemd-networkd-wait-online.service apt-daily.timer apt-daily-upgrade.timer e2scrub_all.timer e2scrub_reap.service fstrim.timer man-db.timer systemd-pstore.service; do
  systemctl mask "$unit" >/dev/null 2>&1 || true
done
# A container loads no kernel modules, has no block devices to discover and its root is mounted by
# LXC: skip those units and generators (each is a process systemd starts while the sandbox is
# answering its first SSH session).
systemctl mask modprobe@.service systemd-modules-load.service systemd-remount-fs.service >/dev/null 2>&1 || true
install -d -m 0755 /etc/systemd/system-generators
# Nor kernel command line (debug, run), rc.local or SysV scripts (every daemon a stack installs
# ships a systemd unit).
for gen in systemd-cryptsetup-generator systemd-gpt-auto-generator systemd-hibernate-resume-generator \
  systemd-integritysetup-generator systemd-veritysetup-generator systemd-system-update-generator \
  systemd-debug-generator systemd-run-generator systemd-rc-local-generator systemd-sysv-generator; do
  ln -sf /dev/null "/etc/systemd/system-generators/$gen"
done
if [ -f /etc/systemd/system/sandbox-net.service ]; then
  # ifupdown's udev settle is for networking.service, which the static address skips.
  install -d -m 0755 /etc/systemd/system/ifupdown-pre.service.d
  printf '[Unit]\nAfter=sandbox-net.service\nConditionPathExists=!/run/sandbox-net.done\n' \
    > /etc/systemd/system/ifupdown-pre.service.d/sandbox.conf
fi
# No display manager in a sandbox.
systemctl set-default multi-user.target >/dev/null 2>&1 || true

# A note for coding agents, in Claude Code's managed (system-wide) instructions: a blocked name
# is the sandbox's egress policy, not a network fault to work around.
install -d -m 0755 /etc/claude-code
cat > /etc/claude-code/CLAUDE.md <<'NOTE'
# This machine is an Agent Sandbox

Its network access is a policy set by the user, enforced outside this machine:

- Only outgoing TCP 22, 80 and 443 leave it (and DNS to its own resolver); IPv4 only; nothing
  reaches other sandboxes or the host.
- A sandbox started with a domain allowlist reaches only the names on it. A name that is not
  allowed fails the same way every time: DNS answers NXDOMAIN; HTTPS is closed right after the
  TLS ClientHello (no certificate, no response); plain HTTP gets a 403 page that says so.

A blocked name is that policy, not a network fault. Do not try to work around it: no other DNS
resolvers, IP addresses, proxies, tunnels, ports or mirrors. If the task needs the name, stop and
ask the user to allow it; on the host they run `sandbox allow <sandbox> <name>` (the sandbox's
name is this machine's hostname), or click "Allow" in VS Code.
NOTE
chmod 0644 /etc/claude-code/CLAUDE.md
echo "==> common setup done"
