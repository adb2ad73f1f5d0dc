#!/usr/bin/env bash
# Keeps what a study's report reads of every finished run, without checkpoints, so that a grid
# spread over sessions or machines (or a committed study) carries its evidence:
#
#   tools/study/keep-finished.sh OUT DEST
#
# copies OUT/study.json (the pre-registered claims) and, for each run under OUT/runs/ that holds
# `ablate.json` (the grid's "finished" marker, written last), its ablate.json, eval.json,
# metrics.jsonl, metrics.csv, config.toml, plan.toml and samples/final/ into DEST (same layout).
# To go on elsewhere: `mkdir -p OUT2 && cp -r DEST/. OUT2/`, then `ablate --out OUT2`: finished
# runs are read as finished (their marker and evaluation are there), the rest train.
# Never deletes anything. A run already in DEST is overwritten by OUT's copy (the same run: a
# folder is named by the hash of its config); a DEST that holds another study is refused.
set -euo pipefail
if [ $# -ne 2 ]; then
  echo "usage: $0 OUT DEST" >&2
  exit 2
fi
out=$1
dest=$2
if [ ! -f "$out/study.json" ]; then
  echo "$out holds no study.json: not a study folder" >&2
  exit 1
fi
if [ -f "$dest/study.json" ] && ! cmp -s -- "$out/study.json" "$dest/study.json"; then
  echo "$dest/study.json differs from $out/study.json: DEST holds another study (or its" \
    "claims were edited); nothing was copied" >&2
  exit 1
fi
mkdir -p -- "$dest/runs"
cp -p -- "$out/study.json" "$dest/study.json"
kept=0
for run in "$out"/runs/*/; do
  run=${run%/}
  [ -f "$run/ablate.json" ] || continue
  if [ ! -f "$run/eval.json" ]; then
    echo "skipped $run: marked finished but without eval.json (ablate evaluates it again)" >&2
    continue
  fi
  name=$(basename "$run")
  mkdir -p -- "$dest/runs/$name"
  for f in ablate.json eval.json metrics.jsonl metrics.csv config.toml plan.toml; do
    if [ -f "$run/$f" ]; then cp -p -- "$run/$f" "$dest/runs/$name/$f"; fi
  done
  if [ -d "$run/samples/final" ]; then
    mkdir -p -- "$dest/runs/$name/samples"
    cp -rp -- "$run/samples/final" "$dest/runs/$name/samples/"
  fi
  kept=$((kept + 1))
done
echo "kept $kept finished run(s) of $out in $dest"
