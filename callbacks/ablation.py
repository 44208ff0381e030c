"""Hierarchy ablation: the HAN against the separately trained 7-layer Bi-LSTM baseline (the
same depth without beat/measure/voice structure), both scored on the same test loader.

`compare_on_loader` is the whole comparison (the report CLI uses it too); the callback runs it
after `trainer.test` when `baseline_ckpt` is given, logs ablation/* and writes ablation.json.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path

import lightning as L
import numpy as np
import torch

from metrics.regression import r2_per_dim

log = logging.getLogger(__name__)


@torch.no_grad()
def predict_loader(module, loader) -> tuple[np.ndarray, np.ndarray]:
    from lightning_modules.percepiano import aggregate_by_item

    module.eval()
    outs = []
    for batch in loader:
        batch = {k: v.to(module.device) for k, v in batch.items()}
        outs.append((batch["item"].cpu(), module.predict_from_logits(module(batch)).cpu(), batch["labels"].cpu()))
    return aggregate_by_item(outs)


def compare_on_loader(han, baseline, loader, label_names, predictions: list | None = None) -> dict:
    """HAN vs baseline R2 on one loader; pass a list as `predictions` to get (han, baseline, target)."""
    han_pred, target = predict_loader(han, loader)
    base_pred, target_b = predict_loader(baseline, loader)
    if not np.allclose(target, target_b):
        raise ValueError("ablation: the two models saw different test items")
    if predictions is not None:
        predictions.extend([han_pred, base_pred, target])
    r_han, r_base = r2_per_dim(han_pred, target), r2_per_dim(base_pred, target)
    return {"han_r2": float(r_han.mean()), "baseline_r2": float(r_base.mean()),
            "delta_r2": float(r_han.mean() - r_base.mean()), "n_items": len(target),
            "per_dim_delta": {n: float(a - b) for n, a, b in zip(label_names, r_han, r_base)}}


class HierarchyAblation(L.Callback):
    def __init__(self, baseline_ckpt: str | None = None, out_dir: str | None = None):
        self.baseline_ckpt, self.out_dir = baseline_ckpt, out_dir
        self.result: dict | None = None

    def on_test_end(self, trainer, pl_module):
        if not self.baseline_ckpt:
            log.info("hierarchy ablation skipped: no baseline_ckpt (train experiment=percepiano_baseline "
                     "on the same fold and pass callbacks.ablation.baseline_ckpt=<its best .ckpt>)")
            return
        if not Path(self.baseline_ckpt).is_file():
            log.warning("hierarchy ablation skipped: %s does not exist", self.baseline_ckpt)
            return
        from lightning_modules.checkpoint import load_module

        baseline = load_module(self.baseline_ckpt).to(pl_module.device)
        self.result = compare_on_loader(pl_module, baseline, trainer.datamodule.test_dataloader(),
                                        pl_module.label_names)
        log.info("hierarchy ablation (test): HAN %.4f vs baseline %.4f (delta %+.4f)",
                 self.result["han_r2"], self.result["baseline_r2"], self.result["delta_r2"])
        if self.out_dir:
            Path(self.out_dir).mkdir(parents=True, exist_ok=True)
            (Path(self.out_dir) / "ablation.json").write_text(json.dumps(self.result, indent=1))
