"""The Stage A chain at tiny sizes: pretrain -> LoRA (export + report) -> infer CLI with a conditioning.

The fast_dev_run of both experiments is in tests/test_experiments.py (SMOKE entries)."""
import json
import math

import pytest
import symusic
import torch
from omegaconf import OmegaConf, open_dict

import train
from datamodules.roles import prepare_role_dataset
from tests.spine import compose_train, run_cli

TINY_MT = ["data.seq_len=64", "data.batch_size=4", "model.net.d_model=32", "model.net.n_layers=1",
           "model.net.n_heads=2", "model.net.d_ff=64", "model.net.max_relative_distance=32",
           "trainer.limit_train_batches=2", "trainer.limit_val_batches=1", "trainer.limit_test_batches=1",
           "trainer.max_epochs=1", "logger=none"]
REPORT = ["callbacks.generation_report.n_samples=2", "callbacks.generation_report.max_new_tokens=48",
          "callbacks.generation_report.n_png=1"]


@pytest.fixture(scope="module")
def roles_root(tmp_path_factory, shared_data, platform_cache):
    root = tmp_path_factory.mktemp("roles")
    prepare_role_dataset("wjazzd", "lead", root, platform_cache, shared_data / "wjazzd", limit=4, max_semitones=0,
                         progress=False)
    return root


@pytest.fixture(scope="module")
def base_ckpt(tmp_path_factory, platform_cache):
    out = tmp_path_factory.mktemp("pretrain")
    cfg = compose_train(["experiment=mt_pretrain", *TINY_MT, "data.source.limit=8", "callbacks.samples.n_samples=1",
                         "callbacks.samples.max_new_tokens=16"], out, platform_cache)
    with open_dict(cfg):
        cfg.test = False
    train.train(cfg)
    return out / "checkpoints" / "last.ckpt"


def test_lora_run_exports_reports_and_infer_writes_lead_and_combined(tmp_path, platform_cache, roles_root,
                                                                      base_ckpt):
    run = tmp_path / "lora"
    cfg = compose_train(["experiment=mt_lora_lead", *TINY_MT, *REPORT, f"model.base_ckpt={base_ckpt}",
                         f"data.roles_root={roles_root}"], run, platform_cache)
    assert cfg.model.lora.r == 8 and cfg.data.loss_on == "target" and cfg.model.net.relative
    metrics = train.train(cfg)
    assert math.isfinite(metrics["test/loss"])
    ckpts = run / "checkpoints"
    assert (ckpts / "lora_adapter" / "adapter_config.json").exists()
    merged = torch.load(ckpts / "merged.ckpt", weights_only=False)
    assert merged["musicplat"]["model_cfg"]["lora"] is None
    assert not any("lora_" in k for k in merged["state_dict"])
    report = json.loads((run / "report" / "report.json").read_text())
    assert set(report["sets"]) == {"generated", "reference"}
    held = report["sets"]["reference"]["files"]  # one window per held-out (test split) piece
    assert held >= 1 and report["sets"]["reference"]["metrics"]["chord_tone_ratio"]["n"] == held
    assert (run / "report" / "report.md").read_text().count("chord_tone_ratio") == 1
    assert list((run / "report" / "png").glob("*.png"))
    assert len(list((run / "report" / "midi").glob("*.mid"))) == 2 * held  # generated + real

    # the same report from the command line, from the run's folder: same checkpoint weights, same samples
    (run / ".hydra").mkdir()
    OmegaConf.save(cfg, run / ".hydra" / "config.yaml", resolve=True)  # what a `python train.py` run leaves
    again = tmp_path / "report_cli"
    run_cli("-m callbacks.generation_report", [f"run_dir={run}", f"ckpt_path={ckpts / 'last.ckpt'}",
                                               "n_samples=2", "max_new_tokens=48", "n_png=1",
                                               f"hydra.run.dir={again}"], platform_cache)
    assert (again / "per_sample.csv").read_text() == (run / "report" / "per_sample.csv").read_text()

    conditioning = next(roles_root.glob("lead/*/conditioning.mid"))
    out = tmp_path / "gen"
    run_cli("infer.py", [f"ckpt_path={ckpts / 'merged.ckpt'}", f"+conditioning={conditioning}", "+n_bars=3",
                         "n_samples=2", "sampling.max_new_tokens=40", "sampling.top_k=8", f"out_dir={out}",
                         f"hydra.run.dir={tmp_path / 'hy'}"], platform_cache)
    outputs = json.loads((out / "outputs.json").read_text())
    assert outputs["n_bars"] == 3 and len(outputs["lead"]) == len(outputs["combined"]) == 2
    assert sum(outputs["lead_notes"]) > 0
    for lead_path, combined_path, n_notes in zip(outputs["lead"], outputs["combined"], outputs["lead_notes"]):
        lead, combined = symusic.Score(lead_path), symusic.Score(combined_path)
        assert lead.note_num() == n_notes and combined.tracks[0].name == "CONDITIONING"
        assert [t.name for t in lead.tracks] == (["LEAD"] if n_notes else [])  # empty tracks are not written
        assert [t.name for t in combined.tracks[1:]] == [t.name for t in lead.tracks]
        onsets = [n.time for t in lead.tracks for n in t.notes]
        assert all(t < 3 * 4 * lead.tpq for t in onsets)  # every note starts within the 3 bars asked for
