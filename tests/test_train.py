"""The spine end to end: compose, fit, test, resume, sweep, DDP, infer — real runs on CPU."""
import json
from pathlib import Path

import pytest
import torch
from omegaconf import open_dict

import train
from lightning_modules.checkpoint import load_module
from tests.spine import TINY, compose_train, run_cli


def test_default_train_writes_checkpoints_samples_and_summary(tmp_path, platform_cache):
    cfg = compose_train(TINY + ["logger=csv", "callbacks.throughput.log_every_n_steps=1", "callbacks.samples.max_new_tokens=24",
                               "trainer.log_every_n_steps=1"], tmp_path, platform_cache)
    metrics = train.train(cfg)
    assert torch.isfinite(torch.tensor(metrics["val/loss"])) and "test/loss" in metrics
    ckpts = sorted(p.name for p in (tmp_path / "checkpoints").glob("*.ckpt"))
    assert "last.ckpt" in ckpts
    assert any(n.startswith("epoch=00-val_loss=") for n in ckpts), ckpts  # metric in the name
    assert (tmp_path / "checkpoints" / "tokenizer.json").exists()
    assert (tmp_path / "samples" / "sample_0.mid").exists()
    summary = json.loads((tmp_path / "data_summary.json").read_text())
    assert summary["read"] >= 14 and summary["tokens"] > 1000
    logged = (tmp_path / "csv" / "metrics.csv").read_text()
    assert "train/tokens_per_s" in logged.splitlines()[0]


def test_loss_falls_when_overfitting(tmp_path, platform_cache):
    cfg = compose_train(TINY + ["debug=overfit", "logger=none", "callbacks=none", "trainer.overfit_batches=1",
                                "trainer.max_epochs=150", "model.net.d_model=64", "model.net.dropout=0.0",
                                "model.optimizer.lr=3e-3", "data.augment=null",
                                "model.scheduler.warmup_steps=1"], tmp_path, platform_cache)
    with open_dict(cfg):
        cfg.test = False
    metrics = train.train(cfg)
    assert metrics["train/loss"] < 2.0, metrics  # from ~ln(389) = 6.0 at init


def _state(ckpt: Path) -> dict:
    return torch.load(ckpt, map_location="cpu", weights_only=False)["state_dict"]


def test_resume_from_last_equals_uninterrupted_run(tmp_path, platform_cache):
    common = TINY + ["logger=csv", "callbacks=none", "+callbacks.ckpt._target_=lightning.pytorch.callbacks.ModelCheckpoint",
                     f"+callbacks.ckpt.dirpath={tmp_path / 'ck'}", "+callbacks.ckpt.save_last=true",
                     "trainer.limit_train_batches=3", "trainer.max_epochs=-1",
                     "+model.scheduler.total_steps=12"]  # the same schedule for the stopped run
    straight = compose_train(common + ["trainer.max_steps=12"], tmp_path / "straight", platform_cache)
    with open_dict(straight):
        straight.callbacks.ckpt.dirpath = str(tmp_path / "straight_ck")
        straight.test = False
    train.train(straight)

    first = compose_train(common + ["trainer.max_steps=6"], tmp_path / "first", platform_cache)
    with open_dict(first):
        first.callbacks.ckpt.dirpath = str(tmp_path / "resumed_ck")
        first.test = False
    train.train(first)
    second = compose_train(common + ["trainer.max_steps=12", f"ckpt_path={tmp_path / 'resumed_ck' / 'last.ckpt'}"],
                           tmp_path / "second", platform_cache)
    with open_dict(second):
        second.callbacks.ckpt.dirpath = str(tmp_path / "resumed_ck")
        second.test = False
    train.train(second)

    a, b = _state(tmp_path / "straight_ck" / "last.ckpt"), _state(tmp_path / "resumed_ck" / "last.ckpt")
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=1e-6, msg=key)
    loss = lambda d: [l for l in (d / "csv" / "metrics.csv").read_text().splitlines()]  # noqa: E731
    assert len(loss(tmp_path / "straight")) > 1


def test_infer_cli_rebuilds_model_from_checkpoint_alone(tmp_path, platform_cache):
    cfg = compose_train(TINY + ["logger=none", "callbacks=none",
                                "+callbacks.ckpt._target_=lightning.pytorch.callbacks.ModelCheckpoint",
                                f"+callbacks.ckpt.dirpath={tmp_path / 'ck'}", "+callbacks.ckpt.save_last=true"],
                        tmp_path, platform_cache)
    with open_dict(cfg):
        cfg.test = False
    train.train(cfg)
    ckpt = tmp_path / "ck" / "last.ckpt"
    module = load_module(ckpt)
    assert module.tokenizer.vocab_size > 300
    out = tmp_path / "gen"
    proc = run_cli("infer.py", [f"ckpt_path={ckpt}", "n_samples=2", "sampling.max_new_tokens=48",
                                f"out_dir={out}", f"hydra.run.dir={tmp_path / 'hy'}"], platform_cache)
    outputs = json.loads((out / "outputs.json").read_text())
    assert len(outputs["midi"]) == 2 and all(Path(p).exists() for p in outputs["midi"])
    assert "sample_0.mid" in proc.stdout
    with pytest.raises(AssertionError, match="not found"):
        run_cli("infer.py", [f"ckpt_path={tmp_path / 'missing.ckpt'}", f"hydra.run.dir={tmp_path / 'hy2'}"],
                platform_cache)


def test_multirun_with_two_values_completes_and_uses_wandb_offline(tmp_path, platform_cache):
    sweep = tmp_path / "sweep"
    run_cli("train.py", ["-m", "model.optimizer.lr=1e-3,3e-4", *TINY, "logger=wandb", "callbacks=none",
                         "test=false", f"hydra.sweep.dir={sweep}"], platform_cache)
    runs = sorted(p.name for p in sweep.iterdir() if p.is_dir() and p.name.isdigit())
    assert runs == ["0", "1"]
    for run in runs:
        assert list((sweep / run / "wandb").glob("offline-run-*")), f"no offline W&B run in job {run}"


def test_optuna_sweep_two_trials(tmp_path, platform_cache):
    sweep = tmp_path / "optuna"
    proc = run_cli("train.py", ["-m", "hparams_search=optuna", "hydra.sweeper.n_trials=2",
                                "hydra.sweeper.sampler.n_startup_trials=2", *TINY, "logger=none",
                                "callbacks=none", "test=false", f"hydra.sweep.dir={sweep}"], platform_cache)
    best = sweep / "optimization_results.yaml"
    assert best.exists(), proc.stdout[-2000:]
    assert "best_value" in best.read_text()


def test_ddp_cpu_two_processes_fit(tmp_path, platform_cache):
    proc = run_cli("train.py", ["trainer=ddp_cpu", *TINY, "logger=csv", "callbacks=none", "test=false",
                                f"hydra.run.dir={tmp_path / 'ddp'}"], platform_cache)
    text = proc.stdout + proc.stderr
    assert "GLOBAL_RANK: 1" in text or "world_size=2" in text.replace(" ", "") or "distributed_backend=gloo" in text
    assert (tmp_path / "ddp" / "csv" / "metrics.csv").exists()
