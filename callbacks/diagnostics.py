"""Generic first-batch diagnostics, usable by every family.

- ActivationCheck: on the first training batch, the output layer's logits: std, per-dimension
  std (dims with std < collapse_std are "collapsed"), and when the batch has float `labels` of
  the same width, the prediction/target std ratio (predictions via the module's
  `predict_from_logits` when it has one). Logged as diag/* and kept in `self.report`.
- HierarchyIndexCheck: for index tensors in the batch (beat, measure, voice by default): ranges,
  padding share (-1), negative indices inside sequences, non-monotone beat/measure steps.
  Families without such keys (TokenLM) get one logged note and nothing else.
"""
from __future__ import annotations

import logging

import lightning as L
import torch
from torch import nn

log = logging.getLogger(__name__)


def output_layer(module: nn.Module) -> nn.Module:
    """The last registered Linear: the output projection of the families' nets (head / lm head)."""
    linears = [m for m in module.modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise ValueError(f"{type(module).__name__} has no nn.Linear to read logits from")
    return linears[-1]


def batch_targets(batch) -> torch.Tensor | None:
    return batch.get("labels") if isinstance(batch, dict) else None


class ActivationCheck(L.Callback):
    def __init__(self, collapse_std: float = 1e-4):
        self.collapse_std = collapse_std
        self.report: dict[str, float] = {}
        self._handle, self._logits = None, None

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if self.report or self._handle is not None:
            return
        def keep(_m, _inp, out):
            self._logits = out.detach()
        self._handle = output_layer(pl_module).register_forward_hook(keep)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if self._handle is None:
            return
        self._handle.remove()
        self._handle = None
        logits = self._logits.flatten(0, -2).float()  # (N, D)
        dim_std = logits.std(0) if len(logits) > 1 else torch.zeros(logits.shape[1])
        rep = {"logits_std": float(logits.std()), "logits_mean": float(logits.mean()),
               "collapsed_dims": int((dim_std < self.collapse_std).sum()), "n_dims": int(logits.shape[1])}
        target = batch_targets(batch)
        if target is not None and target.is_floating_point() and target.shape[-1] == logits.shape[-1]:
            to_pred = getattr(pl_module, "predict_from_logits", lambda z: z)
            pred = to_pred(logits)
            rep["pred_std"] = float(pred.std(0).mean())
            rep["target_std"] = float(target.flatten(0, -2).float().std(0).mean())
            rep["pred_target_std_ratio"] = rep["pred_std"] / max(rep["target_std"], 1e-12)
        self.report = rep
        pl_module.log_dict({f"diag/{k}": float(v) for k, v in rep.items()}, rank_zero_only=True)
        log.info("activation check (first batch): %s", rep)
        if rep["collapsed_dims"]:
            log.warning("activation check: %d of %d output dims have std < %g on the first batch",
                        rep["collapsed_dims"], rep["n_dims"], self.collapse_std)


class HierarchyIndexCheck(L.Callback):
    def __init__(self, keys: list[str] = ("beat", "measure", "voice"), n_batches: int = 3):
        self.keys, self.n_batches = list(keys), n_batches
        self.report: dict[str, dict] = {}
        self.absent = False

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if trainer.global_step >= self.n_batches or self.absent:
            return
        present = [k for k in self.keys if isinstance(batch, dict) and k in batch]
        if not present:
            self.absent = True
            log.info("hierarchy index check: the batch has none of %s; nothing to check", self.keys)
            return
        lengths = batch.get("lengths")
        for key in present:
            idx = batch[key]
            T = idx.shape[1]
            inside = (torch.arange(T, device=idx.device) < lengths.to(idx.device).unsqueeze(1)) \
                if lengths is not None else torch.ones_like(idx, dtype=torch.bool)
            rep = self.report.setdefault(key, {"min": 0, "max": 0, "padding_share": 0.0, "negative_inside": 0,
                                               "non_monotone": 0, "batches": 0})
            real = idx[inside]
            rep["min"] = min(rep["min"], int(real.min())) if real.numel() else rep["min"]
            rep["max"] = max(rep["max"], int(real.max())) if real.numel() else rep["max"]
            rep["padding_share"] = float((~inside).float().mean())
            rep["negative_inside"] += int((real < 0).sum())
            rep["padding_not_minus_one"] = rep.get("padding_not_minus_one", 0) + int((idx[~inside] != -1).sum())
            if key != "voice":  # beats and measures never go back in time
                steps = idx[:, 1:] - idx[:, :-1]
                rep["non_monotone"] += int(((steps < 0) & inside[:, 1:]).sum())
            rep["batches"] += 1
            if rep["negative_inside"] or rep["non_monotone"]:
                log.warning("hierarchy index check: %s has %d negative and %d non-monotone indices inside "
                            "sequences", key, rep["negative_inside"], rep["non_monotone"])
        if trainer.global_step == self.n_batches - 1:
            pl_module.log_dict({f"diag/{k}_{m}": float(v) for k, r in self.report.items()
                                for m, v in r.items() if m != "batches"}, rank_zero_only=True)
            log.info("hierarchy index check: %s", self.report)
