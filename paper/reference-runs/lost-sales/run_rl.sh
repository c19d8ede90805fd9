#!/usr/bin/env bash
# DDPG and PPO (jax backend, default hyper-parameters and budgets) on Zipkin's lost-sales settings,
# one run per cell and seed, through the deepstock CLI (data -> benchmark -> train).
# usage: bash paper/reference-runs/lost-sales/run_rl.sh DIST "PENALTIES" "METHODS" "REGS" "SEEDS"
set -euo pipefail
dist=${1:-poisson}; ps=${2:-9}; methods=${3:-"ddpg ppo"}; regs=${4:-"none base"}; seeds=${5:-42}
out=results/lost-sales
mkdir -p "$out/data" "$out/benchmarks" "$out/runs"
for p in $ps; do
  for L in 1 2 3 4; do
    s="ls_${dist}_l${L}_p${p}"
    [ -f "$out/data/$s.npz" ] || deepstock data "$s" --out "$out/data/$s.npz"
    [ -f "$out/benchmarks/$s.json" ] || deepstock benchmark "$s" --data "$out/data/$s.npz" --out "$out/benchmarks/$s.json"
    for m in $methods; do
      for reg in $regs; do
        for seed in $seeds; do
          run="$out/runs/$s/$m-$reg/s$seed"
          [ -f "$run/metrics.json" ] || deepstock train "$s" --method "$m" --reg "$reg" --seed "$seed" \
            --backend jax --data "$out/data/$s.npz" --out "$run"
        done
      done
    done
  done
done
