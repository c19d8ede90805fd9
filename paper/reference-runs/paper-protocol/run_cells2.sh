#!/bin/bash
# usage: [SRC=frozen-clone] run_cells2.sh CORE SETTING:METHOD:REG:REP ...   paper scale, one core;
# SRC: the frozen clone whose code runs (Settings 2-3: /tmp/ref3 at 8c5f00f; Setting 1 reps: /tmp/ref4 at 9321ac5).
core=$1; shift; src=${SRC:-/tmp/ref3}
cd /work/main && . .venv/bin/activate && export PYTHONPATH=$src/src OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
R=results/reference/paper-s1
for cell in "$@"; do
  IFS=: read s m r rep <<< "$cell"
  out=$R/$s/$m/$r/rep$rep; mkdir -p $out
  b=jax; [ $m = ds ] && b=torch
  echo "$(date -Is) start $s $m $r rep$rep core=$core code=$(cd $src && git rev-parse --short HEAD)" >> $R/progress.log
  /usr/bin/time -v taskset -c $core python -m deepstock.cli tune $s --method $m --reg $r --repetition $rep --scale paper \
     --data results/data/$s.npz --out $out --backend $b --device cpu --executor local --cpus 1 >> $out.log 2>&1
  echo "$(date -Is) end $s $m $r rep$rep rc=$?" >> $R/progress.log
done
