#!/bin/bash
# Setting 4 (DS-Base, paper scale, repetition 0), every cell, one core; code /tmp/ref3.
core=$1
cd /work/main && . .venv/bin/activate && export PYTHONPATH=/tmp/ref3/src OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
R=results/reference/protocol
for s in s4_n5_t7 s4_n5_t19 s4_n5_t35 s4_n5_t67 s4_n5_t131 s4_n10_t7 s4_n10_t19 s4_n10_t35 s4_n10_t67 s4_n10_t131 s4_n20_t7 s4_n20_t19 s4_n20_t35 s4_n20_t67 s4_n20_t131; do
  out=$R/$s/ds/base/rep0; mkdir -p $out
  echo "$(date -Is) start $s ds base rep0 core=$core code=$(cd /tmp/ref3 && git rev-parse --short HEAD)" >> $R/progress.log
  /usr/bin/time -v taskset -c $core python -m deepstock.cli tune $s --method ds --reg base --repetition 0 --scale paper \
     --data results/data/$s.npz --out $out --backend torch --device cpu --executor local --cpus 1 >> $out.log 2>&1
  echo "$(date -Is) end $s ds base rep0 rc=$?" >> $R/progress.log
done
