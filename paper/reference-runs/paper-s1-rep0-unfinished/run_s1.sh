#!/bin/bash
# Paper-scale Setting 1, repetition 0, JAX backend for DDPG/PPO, sequential TPE (k = 1), core 1.
cd /work/main && . .venv/bin/activate && export PYTHONPATH=/tmp/ref/src
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
R=results/reference/paper-s1
[ -f results/data/s1.npz ] || deepstock data s1 --out results/data/s1.npz
for cell in ds:base ds:none ddpg:base ppo:base ddpg:none ppo:none; do
  m=${cell%%:*}; r=${cell##*:}
  out=$R/s1/$m/$r/rep0
  mkdir -p $out
  b=jax; [ $m = ds ] && b=torch
  echo "$(date -Is) start $m $r" >> $R/progress.log
  /usr/bin/time -v taskset -c 1 python -m deepstock.cli tune s1 --method $m --reg $r --repetition 0 --scale paper \
     --data results/data/s1.npz --out $out --backend $b --device cpu --executor local --cpus 1 \
     > $out.log 2>&1
  echo "$(date -Is) end $m $r rc=$?" >> $R/progress.log
done
