#!/usr/bin/env bash
# sandbox-stack: parent=image
# description: Bare base image (git, tmux, python3, jq, ripgrep, curl, sshd) + Claude Code from the host; no network needed, used by the tests
#
# Needs no network at all: stacks/lib/common.sh has already made the sandbox user, sshd and
# /workspace/project, and the base image already carries the tools above. Re-runnable.
set -euo pipefail
# The helpers and checks every stack shares (step, die, fetch, apt_install, as_ubuntu, ARCH, TMP…).
# shellcheck source=lib/prelude.sh
. "${SANDBOX_PRELUDE:-$(dirname "$0")/lib/prelude.sh}"
step "marking the image as stack 'minimal' ($PRETTY_NAME, $ARCH)"
printf 'minimal\n' > /etc/sandbox-stack
as_ubuntu 'test "$(id -un)" = ubuntu' || die "as_ubuntu does not run as ubuntu"
step "minimal stack ready"
