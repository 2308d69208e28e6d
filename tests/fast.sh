#!/usr/bin/env bash
# The fast tier: everything that needs no Incus, no root and no network namespace — the engine's
# unit tests (validation, the shared validation table, slot allocation, the egress configuration
# snapshots, the protocol's TypeScript being current…), the code's shape (import cycles, sizes)
# and the extension's unit tests (node:test). Under two minutes once the crate is built.
#
#   tests/fast.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR=${CARGO_TERM_COLOR:-never}
failed=()
run() { # NAME CMD…
  local name=$1
  shift
  echo "=== $name"
  "$@" || failed+=("$name")
}
run "engine unit tests" cargo test -p sandbox --lib --locked
run "shape (cycles, sizes)" python3 tests/lint/shape.py
[ -d node_modules ] || npm ci --no-audit --no-fund --loglevel=error
run "extension unit tests" npm run --silent test:unit
if [ ${#failed[@]} -gt 0 ]; then
  echo "fast tier: FAILED: ${failed[*]}"
  exit 1
fi
echo "fast tier: passed"
