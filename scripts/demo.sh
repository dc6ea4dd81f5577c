#!/usr/bin/env bash
# `make demo`: the main job on the sample data in data/, end to end.
set -euo pipefail
bin=${1:-.venv/bin}
out=${DEMO_OUT:-out/demo}
mkdir -p "$out"
run() { echo; echo "\$ mfrec $*"; "$bin/mfrec" "$@"; }

run info data/ratings.csv
run split data/ratings.csv -o "$out/split" --test-size 0.2 --by user --seed 0 --force
run train "$out/split/train.csv" -o "$out/model.npz" --validation 0.1 --patience 3 \
  --history "$out/history.csv" --seed 0
run evaluate "$out/model.npz" "$out/split/test.csv" -k 10
run recommend "$out/model.npz" --user 00001 -k 5 --items data/items.csv
run similar "$out/model.npz" --item 00002 -k 5 --items data/items.csv
run compare data/ratings.csv -o "$out/compare" --seed 0
echo
echo "demo outputs are in $out/"
echo "solver comparison: $out/compare/report.md (plot: $out/compare/convergence.png)"
