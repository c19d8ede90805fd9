#!/usr/bin/env bash
# DS (None, Base) at its default hyper-parameters on Zipkin's lost-sales settings: one run per
# cell and seed, through the deepstock CLI only (data -> benchmark -> train). Results under
# results/lost-sales/; rows collected by collect.py into ds-default.csv.
# usage: bash paper/reference-runs/lost-sales/run.sh DIST "REGS" "SEEDS"   (e.g. poisson "none base" "42")
set -euo pipefail
dist=${1:-poisson}; regs=${2:-"none base"}; seeds=${3:-42}
out=results/lost-sales
mkdir -p "$out/data" "$out/benchmarks" "$out/runs"
for p in 4 9 19 39; do
  for L in 1 2 3 4; do
    s="ls_${dist}_l${L}_p${p}"
    [ -f "$out/data/$s.npz" ] || deepstock data "$s" --out "$out/data/$s.npz"
    [ -f "$out/benchmarks/$s.json" ] || deepstock benchmark "$s" --data "$out/data/$s.npz" --out "$out/benchmarks/$s.json"
    for reg in $regs; do
      for seed in $seeds; do
        run="$out/runs/$s/ds-$reg/s$seed"
        [ -f "$run/metrics.json" ] || deepstock train "$s" --method ds --reg "$reg" --seed "$seed" \
          --data "$out/data/$s.npz" --out "$run"
      done
    done
  done
done
