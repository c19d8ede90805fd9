#!/bin/bash
# usage: run_s1.sh REP CELL...   (CELL = method:reg). Setting 1 at the paper's protocol under the
# locked stack and the pinned numerics (the CLI's defaults), one cell after the other, local
# executor, k = 5 (the paper scale's batch). Cells go to results/reference-locked/.
rep=$1; shift
cd "$(dirname "$0")/../../.." && . .venv/bin/activate
R=results/reference-locked
mkdir -p $R
for cell in "$@"; do
  m=${cell%%:*}; r=${cell##*:}
  out=$R/s1/$m/$r/rep$rep
  mkdir -p $out
  b=jax; [ $m = ds ] && b=torch
  echo "$(date -Is) start $m $r rep$rep code=$(git rev-parse --short HEAD)" >> $R/progress.log
  /usr/bin/time -v deepstock tune s1 --method $m --reg $r --repetition $rep --scale paper \
     --data results/data/s1.npz --out $out --backend $b --device cpu --executor local \
     >> $out.log 2>&1
  echo "$(date -Is) end $m $r rep$rep rc=$?" >> $R/progress.log
done
