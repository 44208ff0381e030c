#!/usr/bin/env bash
# Stage A in one command: role data -> pretrain -> LoRA -> generation -> offline evaluation report.
#
#   bash scripts/stage_a.sh [OUT_DIR]
#
# Extra Hydra overrides per step through the environment, e.g.
#   PRETRAIN_ARGS="trainer.max_epochs=10" LORA_ARGS="model.lora.r=16" bash scripts/stage_a.sh
# (ROLES_ARGS, PRETRAIN_ARGS, LORA_ARGS, INFER_ARGS; ROLES_DIR = role data root, default data/roles;
#  PYTHON = interpreter, default python). Everything lands in OUT_DIR (default logs/stage_a/<time>):
#   roles/ pretrain/ lora/ (lora/report = offline evaluation) generate/ stage_a_summary.json
# Re-running with the same OUT_DIR skips the training steps that already finished.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python}
OUT=${1:-logs/stage_a/$(date +%Y-%m-%d_%H-%M-%S)}
ROLES=${ROLES_DIR:-data/roles}
mkdir -p "$OUT"
export WANDB_MODE=${WANDB_MODE:-offline}
step() { echo; echo "== $1  ($(date +%H:%M:%S))"; }

step "1/5 role data: WJazzD lead -> $ROLES/lead"
$PY -m datamodules.roles source=wjazzd role=lead out_dir="$ROLES" hydra.run.dir="$OUT/roles" ${ROLES_ARGS:-} \
    2>&1 | tee "$OUT/roles.out"

step "2/5 pretrain (experiment=mt_pretrain)"
if [ -f "$OUT/pretrain/checkpoints/last.ckpt" ] && grep -q "^metrics:" "$OUT/pretrain.out" 2>/dev/null; then
    echo "already done: $OUT/pretrain"
else
    $PY train.py experiment=mt_pretrain hydra.run.dir="$OUT/pretrain" ${PRETRAIN_ARGS:-} 2>&1 | tee "$OUT/pretrain.out"
fi
BASE=$($PY -c "import sys, re, pathlib; d = pathlib.Path(sys.argv[1]); best = sorted(d.glob('epoch=*.ckpt'), key=lambda p: float(re.search(r'val_loss=([0-9.]+?)(-v\d+)?\.ckpt', p.name).group(1))); print(best[0] if best else d / 'last.ckpt')" "$OUT/pretrain/checkpoints")
echo "base checkpoint: $BASE"

step "3/5 LoRA on the lead role (experiment=mt_lora_lead) + generation report"
if [ -f "$OUT/lora/checkpoints/merged.ckpt" ] && grep -q "^metrics:" "$OUT/lora.out" 2>/dev/null; then
    echo "already done: $OUT/lora"
else  # quoted: checkpoint names contain '=', which Hydra's override grammar would split on
    $PY train.py experiment=mt_lora_lead "model.base_ckpt='$BASE'" "data.roles_root='$ROLES'" \
        hydra.run.dir="$OUT/lora" ${LORA_ARGS:-} 2>&1 | tee "$OUT/lora.out"
fi

step "4/5 generate a lead over a held-out conditioning (merged checkpoint, no peft)"
SAMPLE=$($PY -c "import csv, sys; print(next(csv.DictReader(open(sys.argv[1])))['file'])" "$OUT/lora/report/per_sample.csv")
$PY infer.py "ckpt_path='$OUT/lora/checkpoints/merged.ckpt'" "+conditioning='$ROLES/lead/$SAMPLE/conditioning.mid'" \
    +n_bars=8 n_samples=2 out_dir="$OUT/generate" hydra.run.dir="$OUT/generate/hydra" ${INFER_ARGS:-} \
    2>&1 | tee "$OUT/generate.out"

step "5/5 offline evaluation summary"
$PY - "$OUT" <<'PYEOF'
import ast, json, re, sys
from pathlib import Path
out = Path(sys.argv[1])
def metrics(name):
    lines = [l for l in (out / f"{name}.out").read_text().splitlines() if l.startswith("metrics:")]
    return ast.literal_eval(lines[-1].split(":", 1)[1].strip()) if lines else {}
report = json.loads((out / "lora" / "report" / "report.json").read_text())
summary = {"pretrain": metrics("pretrain"), "lora": metrics("lora"),
           "report": {s: {k: v["mean"] for k, v in d["metrics"].items()} for s, d in report["sets"].items()},
           "paths": {"merged_ckpt": str(out / "lora/checkpoints/merged.ckpt"),
                     "adapter": str(out / "lora/checkpoints/lora_adapter"),
                     "report": str(out / "lora/report/report.md"), "generated": str(out / "generate")}}
(out / "stage_a_summary.json").write_text(json.dumps(summary, indent=1))
print(json.dumps(summary, indent=1))
print((out / "lora" / "report" / "report.md").read_text())
PYEOF
