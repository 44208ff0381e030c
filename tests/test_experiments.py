"""Every `experiment=` config composes, instantiates, and runs fast_dev_run on CPU."""
from pathlib import Path

import pytest
from hydra.utils import instantiate
from omegaconf import OmegaConf, open_dict

import train
from tests.conftest import SHARED_DATA
from tests.spine import CONF, compose_train

EXPERIMENTS = sorted(p.stem for p in (CONF / "experiment").glob("*.yaml"))

# experiment -> overrides that keep its smoke run to seconds (families add their entry here)
SMOKE = {
    "quickstart": ["data.source.limit=12", "data.seq_len=64", "model.net.d_model=32", "model.net.n_layers=1"],
    "fractal_overfit": ["data.limit_files=2", "data.window_bars=2", "data.batch_size=2", "model.output.d_model=32", "model.output.max_notes=4", "model.level_specs.bars.d_model=16", "model.level_specs.beats.d_model=16", "model.level_specs.steps.d_model=16", "model.level_specs.bars.mar_iters=2", "model.level_specs.beats.mar_iters=2"],
    "fractal_pop909": ["data.limit_files=3", "callbacks.fractal_viz.every_n_epochs=1", "data.window_bars=2", "data.batch_size=2", "model.output.d_model=32", "model.output.max_notes=4", "model.level_specs.bars.d_model=16", "model.level_specs.beats.d_model=16", "model.level_specs.steps.d_model=16", "model.level_specs.bars.mar_iters=2", "model.level_specs.beats.mar_iters=2"],
    "mt_pretrain": ["data.source.limit=8", "data.seq_len=64", "model.net.d_model=32", "model.net.n_layers=1", "model.net.n_heads=2", "model.net.d_ff=64", "callbacks.samples.max_new_tokens=16"],
    "mt_lora_lead": ["model.base_ckpt=null", "data.roles_root=${paths.cache_dir}/roles_smoke", "data.prepare.limit=3", "data.prepare.max_semitones=0", "data.seq_len=64", "model.net.d_model=32", "model.net.n_layers=1", "model.net.n_heads=2", "model.net.d_ff=64", "callbacks.generation_report.n_samples=1", "callbacks.generation_report.max_new_tokens=16"],
}
NEEDS_SHARED_DATA = ("pop909", "wjazzd", "percepiano", "fractal", "mt_")


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_experiment_composes_instantiates_and_runs_fast_dev_run(name, tmp_path, platform_cache):
    if any(tag in name for tag in NEEDS_SHARED_DATA) and not SHARED_DATA.is_dir():
        pytest.skip(f"experiment {name} reads ../shared/data, which is absent")
    cfg = compose_train([f"experiment={name}", "debug=fdr", "logger=none", *SMOKE.get(name, [])],
                        tmp_path, platform_cache)
    OmegaConf.resolve(cfg)  # every interpolation resolves
    with open_dict(cfg):
        cfg.test = False
    datamodule = instantiate(cfg.data)
    model = instantiate(cfg.model, **(datamodule.model_kwargs() if hasattr(datamodule, "model_kwargs") else {}))
    assert sum(p.numel() for p in model.parameters()) > 0
    metrics = train.train(cfg)
    assert metrics, f"{name} logged nothing"


@pytest.mark.parametrize("data", ["pop909", "wjazzd"])
def test_real_data_configs_fast_dev_run(data, tmp_path, platform_cache):
    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data absent")
    cfg = compose_train([f"data={data}", f"data.root={SHARED_DATA / data}", "data.limit_files=6",
                         "debug=fdr", "logger=none", "model.net.d_model=32", "model.net.n_layers=1"],
                        tmp_path, platform_cache)
    with open_dict(cfg):
        cfg.test = False
    metrics = train.train(cfg)
    assert metrics["train/loss"] > 0
    assert Path(tmp_path / "data_summary.json").exists()
