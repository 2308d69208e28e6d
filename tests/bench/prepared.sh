#!/usr/bin/env bash
# Start of a repository with a prepared image vs without one (golden image, then its setup), on a
# repository whose setup takes 10 s: medians and the ratio. Real Incus, the simulated GitHub and
# a real sshd git server on loopback (tests/support/gitfake.rs); needs golden-minimal.
#
#   tests/bench/prepared.sh [RUNS]     (through /work/helpers/itest --shell on a shared machine)
set -euo pipefail
cd "$(dirname "$0")/../.."
BENCH_RUNS=${1:-3} cargo test -q -p sandbox-e2e --test prepared -- --ignored --nocapture --exact \
  bench_start_with_and_without_a_prepared_image 2>&1 | grep -E '^(prepare|start|ratio)|panicked|FAILED'
