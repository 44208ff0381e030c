"""python -m web ckpt_path=<.ckpt> [port=8000] [models.mt=<other .ckpt>] — see docs/web.md."""
from __future__ import annotations

import logging

import hydra
from omegaconf import DictConfig

log = logging.getLogger("web")


@hydra.main(version_base="1.3", config_path="../conf", config_name="web")
def main(cfg: DictConfig) -> None:
    import uvicorn

    from web.app import app_from_config

    app = app_from_config(cfg)
    log.info("studio on http://%s:%d  (jobs in %s, kept %.0f s)", cfg.host, cfg.port, cfg.jobs.root, cfg.jobs.ttl_s)
    print(f"studio: http://{cfg.host}:{cfg.port}", flush=True)
    uvicorn.run(app, host=cfg.host, port=int(cfg.port), log_level=cfg.log_level)


if __name__ == "__main__":
    main()
