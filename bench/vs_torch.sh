#!/usr/bin/env bash
# Paired step times of freezeframe and PyTorch eager on `base`: ROUNDS rounds, each running
# Burn full, Burn temporal-only, PyTorch full and PyTorch temporal-only back to back, so slow
# phases of a shared machine hit all four. Prints one table row per round, then the medians
# and the median of the per-round ratios.
# Usage: PYTHON=venv/bin/python bench/vs_torch.sh [ROUNDS] [STEPS]   (needs target/release/freezeframe)
set -euo pipefail
rounds=${1:-8}
steps=${2:-10}
bin=${FREEZEFRAME_BIN:-target/release/freezeframe}
py=${PYTHON:-python3}
burn() {
  "$bin" bench train-step --preset base --plan "$1" --steps "$steps" --warmup 2 2>/dev/null |
    tail -1 | sed 's/.*"median_ms":\([0-9.]*\).*/\1/'
}
torch() {
  "$py" bench/torch_reference.py --steps "$steps" --warmup 2 --freeze "$1" |
    sed 's/.*median \([0-9.]*\) ms.*/\1/'
}
"$py" -c 'import torch; print("torch", torch.__version__, "threads", torch.get_num_threads())'
echo "| round | Burn full | Burn temporal-only | ratio | PyTorch full | PyTorch temporal-only | ratio | Burn / PyTorch (full) |"
echo "|---|---|---|---|---|---|---|---|"
rows=()
for r in $(seq "$rounds"); do
  bf=$(burn full); bt=$(burn temporal-only); tf=$(torch none); tt=$(torch not_temporal)
  row=$(awk -v r="$r" -v bf="$bf" -v bt="$bt" -v tf="$tf" -v tt="$tt" 'BEGIN {
    printf "%d %.1f %.1f %.3f %.1f %.1f %.3f %.3f", r, bf, bt, bt / bf, tf, tt, tt / tf, bf / tf }')
  rows+=("$row")
  echo "$row" | awk '{ printf "| %s | %s | %s | %s | %s | %s | %s | %s |\n", $1, $2, $3, $4, $5, $6, $7, $8 }'
done
printf '%s\n' "${rows[@]}" | awk '
  function med(col,   i, n, v, tmp) {
    n = 0; for (i = 1; i <= NR; i++) { v[++n] = x[i, col] }
    for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (v[j] < v[i]) { tmp = v[i]; v[i] = v[j]; v[j] = tmp }
    return (n % 2) ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2 }
  { for (c = 1; c <= NF; c++) x[NR, c] = $c }
  END { printf "| median | %.1f | %.1f | **%.3f** | %.1f | %.1f | **%.3f** | **%.3f** |\n", med(2), med(3), med(4), med(5), med(6), med(7), med(8) }'
