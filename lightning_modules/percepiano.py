"""PercePiano family: a performance (aligned to its score) -> 19 perceptual ratings in [0, 1].

The net (HAN or the 7-layer Bi-LSTM baseline, from lightning_modules/components/han.py) gives 19
logits; predictions are sigmoid(logits), the loss is MSE on them. Validation/test predictions of
a performance's slices are averaged, then R2 (sklearn semantics) is computed per dimension.
"""
from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from datamodules.percepiano.catalog import LABEL_NAMES
from lightning_modules.base import PlatformModule
from metrics.regression import r2_per_dim

log = logging.getLogger(__name__)


def short_name(label: str) -> str:
    return label.replace("/", "-").replace("&", "and")


class PercePianoModule(PlatformModule):
    def __init__(self, net: Callable[..., torch.nn.Module], input_size: int, feature_mean: list[float],
                 feature_std: list[float], feature_cfg: dict | None = None, optimizer: Callable | None = None,
                 scheduler: Callable | None = None, scheduler_interval: str = "step"):
        super().__init__(optimizer, scheduler, scheduler_interval)
        self.net = net(input_size=input_size)
        self.register_buffer("feature_mean", torch.tensor(feature_mean, dtype=torch.float32))
        self.register_buffer("feature_std", torch.tensor(feature_std, dtype=torch.float32))
        self.feature_cfg = dict(feature_cfg or {})
        self.label_names = LABEL_NAMES
        self._eval_outputs: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []
        self.last_eval: dict[str, Any] = {}
        self.history: list[dict[str, float]] = []  # per epoch: val R2/loss, seconds (train + val)
        self.save_hyperparameters(ignore=["net", "optimizer", "scheduler", "feature_mean", "feature_std"])

    def forward(self, batch: dict) -> torch.Tensor:
        """(B, 19) logits of a collated batch."""
        return self.net(batch["x"], batch["lengths"], batch["beat"], batch["measure"], batch["voice"])

    @staticmethod
    def predict_from_logits(logits: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(logits)

    def on_train_epoch_start(self) -> None:
        self._epoch_start = time.perf_counter()

    def on_train_epoch_end(self) -> None:
        seconds = time.perf_counter() - self._epoch_start
        self.log("train/epoch_seconds", seconds)
        if self.history and self.history[-1]["epoch"] == self.current_epoch:
            self.history[-1]["epoch_seconds"] = round(seconds, 1)

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        super().on_save_checkpoint(checkpoint)  # the platform meta that rebuilds the module
        checkpoint["percepiano_history"] = list(self.history)

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        super().on_load_checkpoint(checkpoint)
        saved = checkpoint.get("percepiano_history", [])
        if len(saved) > len(self.history):  # a resumed run; testing the best ckpt keeps the full history
            self.history = list(saved)

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        loss = F.mse_loss(self.predict_from_logits(self(batch)), batch["labels"])
        self.log("train/loss", loss, prog_bar=True, batch_size=len(batch["labels"]))
        return loss

    def _eval_step(self, batch: dict, stage: str) -> None:
        pred = self.predict_from_logits(self(batch))
        self.log(f"{stage}/loss", F.mse_loss(pred, batch["labels"]), prog_bar=True,
                 batch_size=len(batch["labels"]), sync_dist=True)
        self._eval_outputs.append((batch["item"].cpu(), pred.detach().cpu(), batch["labels"].cpu()))

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        self._eval_step(batch, "val")

    def test_step(self, batch: dict, batch_idx: int) -> None:
        self._eval_step(batch, "test")

    def _eval_epoch_end(self, stage: str) -> None:
        if not self._eval_outputs:
            return
        pred, target = aggregate_by_item(self._eval_outputs)
        self._eval_outputs = []
        r2 = r2_per_dim(pred, target)
        self.log(f"{stage}/r2", float(r2.mean()), prog_bar=True)
        for name, value in zip(self.label_names, r2):
            self.log(f"{stage}/r2/{short_name(name)}", float(value))
        self.last_eval[stage] = {"r2": float(r2.mean()), "r2_per_dim": dict(zip(self.label_names, r2.tolist())),
                                 "n_items": len(pred), "pred_std": pred.std(0).tolist(), "target_std": target.std(0).tolist(),
                                 "loss": float(((pred - target) ** 2).mean())}
        if stage == "val" and not self.trainer.sanity_checking:
            self.history.append({"epoch": self.current_epoch, "step": self.global_step,
                                 "val_r2": round(float(r2.mean()), 4), "val_loss_items": round(self.last_eval["val"]["loss"], 5)})
        if stage == "test":
            self.write_test_results()

    def write_test_results(self) -> Path | None:
        """<run dir>/test_results.json: the test R2 (mean, per dimension) with the checkpoint it came
        from and the per-epoch history, so the fold table never depends on a (possibly overwritten) csv."""
        trainer = self.trainer
        if not trainer.is_global_zero or trainer.sanity_checking:
            return None
        out = Path(trainer.default_root_dir) / "test_results.json"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps({**self.last_eval["test"], "ckpt_path": trainer.ckpt_path,
                                   "history": self.history, "written_at": time.strftime("%Y-%m-%dT%H:%M:%S")},
                                  indent=1))
        return out

    def on_validation_epoch_end(self) -> None:
        self._eval_epoch_end("val")

    def on_test_epoch_end(self) -> None:
        self._eval_epoch_end("test")

    # ---- inference -------------------------------------------------------------------------
    @torch.no_grad()
    def score_performance(self, performance: str | Path, score_midi: str | Path,
                          score_xml: str | Path | None = None, cache_dir: str | Path | None = None) -> dict[str, float]:
        """The 19 named scores in [0, 1] of one performance MIDI against its score."""
        from datamodules.percepiano.datamodule import collate_slices
        from datamodules.percepiano.note_table import extract_segment
        from datamodules.percepiano.score_features import XmlCache
        from datamodules.percepiano.slices import measure_slices

        table = extract_segment(Path(performance), Path(score_midi), Path(score_xml) if score_xml else None,
                                XmlCache(cache_dir) if cache_dir else None, **self.feature_cfg)
        feats = (torch.from_numpy(table.features) - self.feature_mean.cpu()) / self.feature_std.cpu()
        slices = []
        for start, end in measure_slices(table.measure, slice_len=400):
            dense = lambda a, s=start, e=end: torch.from_numpy(np.unique(a[s:e], return_inverse=True)[1].reshape(-1))
            slices.append({"x": feats[start:end], "beat": dense(table.beat), "measure": dense(table.measure),
                           "voice": dense(table.voice), "labels": torch.zeros(19), "item": 0})
        batch = {k: v.to(self.device) for k, v in collate_slices(slices).items()}
        self.eval()
        pred = self.predict_from_logits(self(batch)).mean(0).cpu().numpy()
        log.info("alignment: %.3f of score notes matched", table.alignment.matched_fraction)
        return dict(zip(self.label_names, (round(float(p), 4) for p in pred)))

    def run_inference(self, cfg, out_dir: Path) -> dict[str, Any]:
        performance, score_midi = cfg.get("performance"), cfg.get("score_midi")
        if not performance or not score_midi:
            raise ValueError("PercePiano inference needs +performance=<performance.mid> +score_midi=<score.mid> "
                             "(and optionally +score_xml=<score.musicxml>)")
        return self.score_performance(performance, score_midi, cfg.get("score_xml"),
                                      cfg.get("paths", {}).get("cache_dir"))


def aggregate_by_item(outputs: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]) -> tuple[np.ndarray, np.ndarray]:
    """Slices -> performances: mean prediction per item id; (N_items, 19) pred and target."""
    items = torch.cat([o[0] for o in outputs]).numpy()
    pred = torch.cat([o[1] for o in outputs]).numpy()
    target = torch.cat([o[2] for o in outputs]).numpy()
    ids, inverse = np.unique(items, return_inverse=True)
    sums = np.zeros((len(ids), pred.shape[1]))
    np.add.at(sums, inverse, pred)
    counts = np.bincount(inverse, minlength=len(ids))[:, None]
    first = np.zeros(len(ids), dtype=np.int64)
    first[inverse[::-1]] = np.arange(len(items))[::-1]
    return sums / counts, target[first]
