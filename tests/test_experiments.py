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
