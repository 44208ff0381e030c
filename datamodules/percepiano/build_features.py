"""Build (or refresh) the PercePiano feature cache and print the extraction summary.

    python -m datamodules.percepiano.build_features [data.root=...] [paths.cache_dir=...]
"""
from __future__ import annotations

import json

import hydra
from hydra.utils import instantiate
from omegaconf import DictConfig, open_dict


@hydra.main(version_base="1.3", config_path="../../conf", config_name="train")
def main(cfg: DictConfig) -> None:
    with open_dict(cfg):
        cfg.data.summary_dir = None
    dm = instantiate(cfg.data)
    dm.build_features()
    summary = {k: v for k, v in dm.summary.items() if k != "per_file_matched_fraction"}
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
