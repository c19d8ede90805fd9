#!/bin/bash
# Copy the small files of every finished locked cell (journals, stage tables, winner.json, the
# reported run's metrics and curve) from results/reference-locked/ into this folder.
cd "$(dirname "$0")/../../.."
src=results/reference-locked
for w in $(find $src -name winner.json | sort); do
  cell=$(dirname $w); rel=${cell#$src/}; dst=paper/reference-runs/locked/$rel
  mkdir -p $dst/final
  cp $cell/stage1.jsonl $cell/stage2.jsonl $cell/stage1.csv $cell/stage2.csv $cell/winner.json $dst/
  cp $cell/final/metrics.json $cell/final/curve.csv $dst/final/
done
cp $src/progress.log paper/reference-runs/locked/progress.log
