#!/usr/bin/env bash
# sandbox-stack: parent=image
# description: Bare base image (git, tmux, python3, jq, ripgrep, curl, sshd); no network needed, used by the tests
#
# Needs no network at all: stacks/lib/common.sh has already made the sandbox user, sshd and
# /workspace/project, and the base image already carries the tools above. Re-runnable.
set -euo pipefail
echo "==> marking the image as stack 'minimal'"
printf 'minimal\n' > /etc/sandbox-stack
echo "==> minimal stack ready"
