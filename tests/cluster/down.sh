#!/usr/bin/env bash
# Removes the test cluster's members (tests/cluster/up.sh); the cached member image and .debs stay.
set -euo pipefail
for m in sbx-clu-1 sbx-clu-2 sbx-clu-3 sbx-clu-build; do
  incus delete --force "$m" >/dev/null 2>&1 || true
done
