#!/usr/bin/env bash
# the four Setting 1 SB3 cells at one seed, with the default hyper-parameters
# usage (from the repository root): paper/reference-runs/authors-bits/run.sh SEED   (native numerics
# unless DEEPSTOCK_NUMERICS is set; the pinned rows of authors-bits.csv ran with it set to pinned)
. .venv/bin/activate; export DEEPSTOCK_NUMERICS=${DEEPSTOCK_NUMERICS:-native}
seed=$1
for cell in "ddpg none" "ppo none" "ddpg base" "ppo base"; do
  set -- $cell
  /usr/bin/time -f "$1-$2 seed $seed: %e s" deepstock train s1 --method $1 --reg $2 --seed $seed --backend sb3 \
    --data results/data/s1.npz --out results/authors-bits/$1-$2-$seed 2>&1 | tail -2
done
