#!/usr/bin/env bash
# The PercePiano performer protocol on CPU: folds x (HAN, 7-layer baseline), then the fold table.
#   bash bench/percepiano_protocol.sh <out_dir> [extra train.py overrides...]
# Environment (all optional):
#   PYTHON       interpreter (default: `python` on PATH, e.g. the activated .venv)
#   HAN_EXP      HAN experiment      (default percepiano_han_cpu; percepiano_han = published settings)
#   BASE_EXP     baseline experiment (default percepiano_baseline_cpu)
#   FOLDS        folds to run, in order (default "0 1 2 3")
# Two streams (HAN, baseline) run side by side, one torch thread each, niced. A fold whose run dir
# already holds test_results.json is skipped (re-running the script resumes the protocol); a lock
# stops a second launcher from writing into the same <out_dir>.
set -u
OUT=${1:?usage: percepiano_protocol.sh <out_dir> [overrides]}; shift
EXTRA=("$@")
cd "$(dirname "$0")/.."
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
PY=${PYTHON:-$(command -v python || command -v python3)}
HAN_EXP=${HAN_EXP:-percepiano_han_cpu}
BASE_EXP=${BASE_EXP:-percepiano_baseline_cpu}
FOLDS=${FOLDS:-0 1 2 3}
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 WANDB_MODE=offline
exec 9>"$OUT/.lock"
if ! flock -n 9; then
  echo "another percepiano_protocol.sh is running on $OUT (lock $OUT/.lock); not starting a second one" >&2
  exit 1
fi
echo "$(date -u +%FT%TZ) start: $PY, $HAN_EXP + $BASE_EXP, folds $FOLDS, overrides: ${EXTRA[*]:-none}" >> "$OUT/protocol.log"
# features once (cold cache timing lands in features.log)
/usr/bin/time -v nice -n 10 "$PY" -m datamodules.percepiano.build_features data=percepiano hydra.run.dir="$OUT/features" > "$OUT/features.log" 2>&1
run_stream() {  # $1 = experiment name
  for fold in $FOLDS; do
    dir="$OUT/$1/fold$fold"
    if [ -f "$dir/test_results.json" ]; then
      echo "$(date -u +%FT%TZ) $1 fold $fold: test_results.json present, skipped" >> "$OUT/protocol.log"; continue
    fi
    echo "$(date -u +%FT%TZ) $1 fold $fold: start" >> "$OUT/protocol.log"
    nice -n 10 "$PY" train.py experiment="$1" data.fold="$fold" logger=csv \
      hydra.run.dir="$dir" "${EXTRA[@]}" > "$OUT/$1_fold$fold.log" 2>&1
    echo "$(date -u +%FT%TZ) $1 fold $fold: exit $?" >> "$OUT/protocol.log"
  done
}
run_stream "$HAN_EXP" &
run_stream "$BASE_EXP" &
wait
"$PY" -m lightning_modules.percepiano_report logs_dir="$OUT" rescore=true | tee "$OUT/report.md"
