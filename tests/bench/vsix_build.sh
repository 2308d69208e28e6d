#!/usr/bin/env bash
# How long the packaged VSIX takes to build (`npm run package`; issue #17 measured 9.5 min on 2
# cores), in its two slow parts:
#   - the static sidecar, cold (a fresh target directory: every dependency compiled), with the
#     release profile as shipped (thin LTO, 4 codegen units) and variants of it given as Cargo's
#     profile overrides (`nolto`: no LTO, 16 codegen units);
#   - vsce packing, run in the repository (it walks everything, target/ included, then filters)
#     and in a staging directory holding only what ships (what scripts/package-vsix.sh does now).
# Prints wall and CPU seconds (user+sys: less sensitive to other load on a shared machine), the
# binary sizes, medians over --runs, and the ratios.
#
#   tests/bench/vsix_build.sh [--runs N] [--variants "release nolto"] [--vsce-runs N]
# Needs ~2 GB free in ${TMPDIR:-/tmp} per build at a time (removed after each build).
set -euo pipefail
cd "$(dirname "$0")/../.."
REPO=$PWD
RUNS=1 VSCE_RUNS=3 VARIANTS="release nolto"
while [ $# -gt 0 ]; do
  case "$1" in
    --runs) RUNS=$2; shift 2 ;;
    --vsce-runs) VSCE_RUNS=$2; shift 2 ;;
    --variants) VARIANTS=$2; shift 2 ;;
    *) echo "usage: $0 [--runs N] [--variants \"release nolto\"] [--vsce-runs N]" >&2; exit 2 ;;
  esac
done
TARGET=x86_64-unknown-linux-gnu
# A variant's overrides of the release profile (Cargo's CARGO_PROFILE_RELEASE_* variables).
overrides() {
  case $1 in
    release) ;;
    nolto) echo CARGO_PROFILE_RELEASE_LTO=false CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16 ;;
    *) echo "unknown variant $1 (release, nolto)" >&2; exit 2 ;;
  esac
}
median() { sort -n | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }
# timed FILE CMD…: appends "wall cpu" (seconds) to FILE.
timed() {
  local file=$1; shift
  /usr/bin/time -f '%e %U %S' -o "$file.t" "$@" >/dev/null 2>&1
  awk '{printf "%.1f %.1f\n", $1, $2 + $3}' "$file.t" >> "$file"
}

for v in $VARIANTS; do overrides "$v" >/dev/null; done   # an unknown one stops here

work=$(mktemp -d "${TMPDIR:-/tmp}/vsix-bench-XXXXXX")
trap 'rm -rf "$work"' EXIT
echo "vsix build benchmark: $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"

declare -A wall cpu size
for p in $VARIANTS; do
  # shellcheck disable=SC2046
  set -- $(overrides "$p")
  for _ in $(seq "$RUNS"); do
    t=$work/target-$p
    rm -rf "$t"
    timed "$work/$p" env "$@" CARGO_TARGET_DIR="$t" RUSTFLAGS='-C target-feature=+crt-static' \
      cargo build --release --locked -p sandbox --target "$TARGET"
    size[$p]=$(stat -c %s "$t/$TARGET/release/sandbox")
    rm -rf "$t"
  done
  wall[$p]=$(cut -d' ' -f1 "$work/$p" | median)
  cpu[$p]=$(cut -d' ' -f2 "$work/$p" | median)
  printf '  sidecar, cold, %-8s wall %7.1f s  cpu %7.1f s  binary %5.1f MB  (median of %s)\n' \
    "$p" "${wall[$p]}" "${cpu[$p]}" "$(echo "${size[$p]}" | awk '{print $1/1048576}')" "$RUNS"
done

# vsce: the same files either way (the dev VSIX: no sidecar inside, so no build is needed here).
node scripts/build-extension.mjs --minify
ignore=$work/ignore
grep -v '^!bundled/' .vscodeignore > "$ignore"
vsce=("$REPO/node_modules/.bin/vsce" package --skip-license --no-dependencies)
for _ in $(seq "$VSCE_RUNS"); do
  timed "$work/vsce-repo" "${vsce[@]}" --ignoreFile "$ignore" -o "$work/a.vsix"
  stage=$work/stage
  rm -rf "$stage"; mkdir -p "$stage/out"
  cp -a package.json README.md .vscodeignore media "$stage/"
  cp out/main.js "$stage/out/"
  timed "$work/vsce-stage" bash -c "cd '$stage' && $(printf '%q ' "${vsce[@]}") -o '$work/b.vsix'"
done
repo=$(cut -d' ' -f1 "$work/vsce-repo" | median)
staged=$(cut -d' ' -f1 "$work/vsce-stage" | median)
printf '  vsce in the repository  wall %6.1f s   (target/ holds %s files)\n' "$repo" "$(find target -type f 2>/dev/null | wc -l)"
printf '  vsce in a staging dir   wall %6.1f s   (median of %s)\n' "$staged" "$VSCE_RUNS"
cmp <(unzip -Z1 "$work/a.vsix" | sort) <(unzip -Z1 "$work/b.vsix" | sort) && echo "  same files in both VSIXs"

if [ -n "${wall[release]:-}" ] && [ -n "${wall[nolto]:-}" ]; then
  awk -v a="${wall[release]}" -v b="${wall[nolto]}" -v c="${cpu[release]}" -v d="${cpu[nolto]}" \
    'BEGIN {printf "  sidecar: nolto/release wall %.2f, cpu %.2f\n", b / a, d / c}'
fi
awk -v a="$repo" -v b="$staged" 'BEGIN {printf "  vsce: staged/repository wall %.2f\n", b / a}'
