#!/usr/bin/env bash
# The PercePiano performer protocol on CPU: 4 folds x (HAN, 7-layer baseline), then the fold table.
#   bash bench/percepiano_protocol.sh <out_dir> [extra train.py overrides...]
# Two streams (HAN, baseline) run side by side with one torch thread each, niced.
set -u
OUT=${1:?usage: percepiano_protocol.sh <out_dir> [overrides]}; shift
EXTRA=("$@")
cd "$(dirname "$0")/.."
mkdir -p "$OUT"
PY=${PYTHON:-/work/venv/bin/python}
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 WANDB_MODE=offline
# features once (cold cache timing lands in features.log)
/usr/bin/time -v nice -n 10 $PY -m datamodules.percepiano.build_features data=percepiano hydra.run.dir="$OUT/features" > "$OUT/features.log" 2>&1
run_stream() {  # $1 = experiment name
  for fold in 0 1 2 3; do
    nice -n 10 $PY train.py experiment=$1 data.fold=$fold logger=csv \
      hydra.run.dir="$OUT/$1/fold$fold" "${EXTRA[@]}" > "$OUT/$1_fold$fold.log" 2>&1
  done
}
run_stream percepiano_han &
run_stream percepiano_baseline &
wait
$PY -m lightning_modules.percepiano_report logs_dir="$OUT" | tee "$OUT/report.md"
