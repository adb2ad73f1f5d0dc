#!/usr/bin/env bash
# Paired step-time measurement of temporal-only against full on `base`: ROUNDS rounds, each
# running the two back to back, so slow phases of a shared machine hit both sides of a pair.
# Prints each round's medians and ratio, then the median ratio.
# Usage: bench/freeze_ratio.sh [ROUNDS] [STEPS]   (needs target/release/freezeframe)
set -euo pipefail
rounds=${1:-6}
steps=${2:-10}
bin=${FREEZEFRAME_BIN:-target/release/freezeframe}
median_of() {
  "$bin" bench train-step --preset base --plan "$1" --steps "$steps" --warmup 2 2>/dev/null |
    tail -1 | sed 's/.*"median_ms":\([0-9.]*\).*/\1/'
}
ratios=()
for r in $(seq "$rounds"); do
  full=$(median_of full)
  temporal=$(median_of temporal-only)
  ratio=$(awk -v a="$temporal" -v b="$full" 'BEGIN { printf "%.3f", a / b }')
  ratios+=("$ratio")
  printf 'round %d: full %.1f ms, temporal-only %.1f ms, ratio %s\n' "$r" "$full" "$temporal" "$ratio"
done
printf '%s\n' "${ratios[@]}" | sort -n | awk '{ a[NR] = $1 } END {
  m = (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2
  printf "median ratio %.3f over %d rounds (min %.3f, max %.3f)\n", m, NR, a[1], a[NR] }'
