#!/bin/bash
# usage: run_cell.sh CORE SRC CELL...   (CELL = method:reg); paper scale, Setting 1, repetition 0.
core=$1; src=$2; shift 2
cd /work/main && . .venv/bin/activate && export PYTHONPATH=$src/src
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
R=results/reference/paper-s1
for cell in "$@"; do
  m=${cell%%:*}; r=${cell##*:}
  out=$R/s1/$m/$r/rep0
  mkdir -p $out
  b=jax; [ $m = ds ] && b=torch
  echo "$(date -Is) start $m $r core=$core code=$(cd $src && git rev-parse --short HEAD)" >> $R/progress.log
  /usr/bin/time -v taskset -c $core python -m deepstock.cli tune s1 --method $m --reg $r --repetition 0 --scale paper \
     --data results/data/s1.npz --out $out --backend $b --device cpu --executor local --cpus 1 \
     >> $out.log 2>&1
  echo "$(date -Is) end $m $r rc=$?" >> $R/progress.log
done
