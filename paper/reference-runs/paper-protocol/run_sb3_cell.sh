#!/bin/bash
# usage: SRC=frozen-clone run_sb3_cell.sh CORE [SETTING [METHOD]]   (default: s1 ddpg)
# The sequential SB3 tuner (--backend sb3 --batch 1) on a Base cell (Setting 1 DDPG), repetition 0,
# paper scale, one core, at nice 19 beside other runs. It takes longer than a session: rerunning
# this script resumes the cell from its journals (a trial cut off by the end of a session is
# rerun). Its cost: the journals keep each finished trial's wall time on the pinned core, summed
# over the resumed runs; /usr/bin/time -v in the log adds the CPU time of each run that ended.
core=$1; setting=${2:-s1}; method=${3:-ddpg}; src=${SRC:?frozen clone}
cd /work/main && . .venv/bin/activate && export PYTHONPATH=$src/src OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
R=results/reference/sb3-cell; out=$R/$setting/$method/base/rep0; mkdir -p $out
echo "$(date -Is) start $setting $method base rep0 sb3 core=$core code=$(cd $src && git rev-parse --short HEAD)" >> $R/progress.log
nice -n 19 /usr/bin/time -v taskset -c $core python -m deepstock.cli tune $setting --method $method --reg base \
   --repetition 0 --scale paper --batch 1 --data results/data/$setting.npz --out $out --backend sb3 \
   --device cpu --executor local --cpus 1 >> $out.log 2>&1
echo "$(date -Is) end $setting $method base rep0 sb3 rc=$?" >> $R/progress.log
