"""Compose a run from conf/, build data, model, callbacks, loggers and trainer, then fit and test.

    python train.py                                  # chorales, small LM, a few minutes on CPU
    python train.py experiment=<name> trainer=gpu     # any run is a config away
    python train.py -m model.optimizer.lr=1e-3,3e-4   # sweeps (Optuna: hparams_search=optuna)
"""
from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path

os.environ.setdefault("WANDB_MODE", "offline")  # no key on a fresh machine: never block on login

import hydra
import lightning as L
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

log = logging.getLogger("train")
# the tokenizer is saved into the checkpoint dir before fit, and resumed runs reuse theirs
warnings.filterwarnings("ignore", message=r"Checkpoint directory .* exists and is not empty")


def instantiate_group(group: DictConfig | None) -> list:
    """Instantiate every entry of a callbacks/logger group (entries set to null are skipped)."""
    return [instantiate(c) for c in (group or {}).values() if c is not None and "_target_" in c]


def resolve_ckpt_path(cfg: DictConfig) -> str | None:
    if cfg.get("ckpt_path") != "last":
        return cfg.get("ckpt_path")
    last = Path(cfg.paths.checkpoint_dir) / "last.ckpt"
    if not last.exists():
        raise FileNotFoundError(f"ckpt_path=last but {last} does not exist; pass hydra.run.dir=<the run "
                                "to resume> or ckpt_path=<path to a .ckpt>")
    return str(last)


def train(cfg: DictConfig) -> dict[str, float]:
    L.seed_everything(cfg.seed, workers=True)
    torch.set_float32_matmul_precision("high")
    datamodule = instantiate(cfg.data)
    model_kwargs = datamodule.model_kwargs() if hasattr(datamodule, "model_kwargs") else {}
    model = instantiate(cfg.model, **model_kwargs)
    # a self-describing checkpoint: infer.py / realtime rebuild the module from these alone
    model.platform_meta = {"model_cfg": OmegaConf.to_container(cfg.model, resolve=True),
                           "model_kwargs": model_kwargs, "target": cfg.model._target_}
    callbacks, loggers = instantiate_group(cfg.get("callbacks")), instantiate_group(cfg.get("logger"))
    if not loggers:  # logger=none: a learning-rate monitor has nowhere to write
        callbacks = [c for c in callbacks if not isinstance(c, L.pytorch.callbacks.LearningRateMonitor)]
    trainer: L.Trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False)
    for lg in loggers:
        lg.log_hyperparams(OmegaConf.to_container(cfg, resolve=True))
    if hasattr(datamodule, "tokenizer") and trainer.is_global_zero:
        Path(cfg.paths.checkpoint_dir).mkdir(parents=True, exist_ok=True)
        datamodule.tokenizer.save(Path(cfg.paths.checkpoint_dir))

    if cfg.get("train"):
        trainer.fit(model, datamodule=datamodule, ckpt_path=resolve_ckpt_path(cfg), weights_only=False)
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}
    best = trainer.checkpoint_callback.best_model_path if trainer.checkpoint_callback else ""
    if cfg.get("test") and not trainer.fast_dev_run:
        trainer.test(model, datamodule=datamodule, ckpt_path=best or None, weights_only=False)
        metrics.update({k: float(v) for k, v in trainer.callback_metrics.items()})
    if trainer.is_global_zero:
        report_paths(cfg, best, metrics)
    return metrics


def report_paths(cfg: DictConfig, best: str, metrics: dict[str, float]) -> None:
    out = Path(cfg.paths.output_dir)
    lines = [f"run dir:      {out}",
             f"best ckpt:    {best or '(none saved)'}",
             f"last ckpt:    {Path(cfg.paths.checkpoint_dir) / 'last.ckpt'}",
             f"samples:      {cfg.paths.sample_dir}",
             f"log file:     {out / (cfg.task_name + '.log')}"]
    if (out / "wandb").exists():
        lines.append(f"wandb (offline): wandb sync {out / 'wandb'}/offline-run-*")
    shown = {k: round(v, 4) for k, v in metrics.items() if k.startswith(("val/", "test/"))}
    lines.append(f"metrics:      {shown}")
    print("\n" + "\n".join(lines), flush=True)


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
def main(cfg: DictConfig) -> float | None:
    try:
        metrics = train(cfg)
    finally:
        import wandb  # close the run even when the job failed, so a multirun's next job starts clean

        if wandb.run is not None:
            wandb.finish()
    name = cfg.get("optimized_metric")
    if name and name not in metrics:
        raise KeyError(f"optimized_metric '{name}' was not logged; logged: {sorted(metrics)}")
    return metrics.get(name) if name else None


if __name__ == "__main__":
    main()
