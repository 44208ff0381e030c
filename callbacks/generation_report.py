"""After fit: generate parts for held-out conditionings and report metrics next to the real parts.

Needs a datamodule with `heldout(n, split)` (RoleDataModule) and a module with
`generate_conditioned` (MusicTransformerLM). Writes into `out_dir`:
  report.json / report.md   per-set mean ± std and distribution distances (metrics.report)
  per_sample.csv            one row per sample and set
  histograms.png            the metric distributions, generated vs real
  midi/<i>_generated.mid, midi/<i>_real.mid   conditioning + part, for listening
  png/<i>.png               piano rolls: generated above real, same conditioning
and logs the means (and, to W&B, the table and rolls) to the trainer's loggers.

The same report for a finished run, e.g. with other sampling settings (conf/report.yaml):
    python -m callbacks.generation_report run_dir=<role-conditioned run> sampling.chord_penalty=2.0
"""
from __future__ import annotations

import json
import logging
from pathlib import Path

import hydra
import lightning as L
import numpy as np
import pandas as pd
import symusic
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from datamodules.midi_io import save_piano_roll_png
from datamodules.tokenizer import decode_ids
from metrics.conditioned import ROLE_METRICS, score_part
from metrics.registry import METRICS
from metrics.report import OK, histogram_figure, markdown_table, summarise

log = logging.getLogger(__name__)


def _with_tempo(score: symusic.Score, tempo: float, name: str) -> symusic.Score:
    score.tempos = [symusic.Tempo(0, float(tempo))]
    for track in score.tracks:
        track.name = name
    return score


def _combined(conditioning: symusic.Score, part: symusic.Score) -> symusic.Score:
    out = conditioning.copy()
    out.tracks.extend(t.copy() for t in part.tracks)
    return out


class GenerationReport(L.Callback):
    def __init__(self, out_dir: str, n_samples: int = 8, split: str = "test", metrics: list[str] | None = None,
                 n_png: int = 4, seed: int = 0, max_new_tokens: int = 1024, sampling: dict | None = None):
        self.out_dir, self.n_samples, self.split = Path(out_dir), n_samples, split
        self.metrics = list(metrics or ROLE_METRICS)
        self.n_png, self.seed, self.max_new_tokens = n_png, seed, max_new_tokens
        self.sampling = dict(sampling or {})
        self.summary: dict | None = None

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        datamodule = trainer.datamodule
        if not trainer.is_global_zero:
            return
        if not hasattr(datamodule, "heldout") or not hasattr(pl_module, "generate_conditioned"):
            log.warning("generation report skipped: needs a role datamodule (heldout) and a conditioned "
                        "generator (generate_conditioned); got %s / %s", type(datamodule).__name__,
                        type(pl_module).__name__)
            return
        held = datamodule.heldout(self.n_samples, self.split)
        if not held:
            log.warning("generation report skipped: no held-out %s windows", self.split)
            return
        self.summary = self.report(pl_module, held)

    def report(self, module, held: list[dict]) -> dict:
        tok = module.tokenizer
        sampling = {**module.generation, **self.sampling, "max_new_tokens": self.max_new_tokens}
        sampling.pop("role", None)
        generated = module.generate_conditioned([h["prompt"] for h in held], [h["n_bars"] for h in held],
                                                seed=self.seed, **sampling)
        rows = []
        for dirname in ("midi", "png"):
            (self.out_dir / dirname).mkdir(parents=True, exist_ok=True)
        for i, (h, gen_ids) in enumerate(zip(held, generated)):
            tempo, role = h["meta"].get("tempo", 120.0), h["meta"].get("role", "lead").upper()
            cond = _with_tempo(decode_ids(tok, h["conditioning"]), tempo, "CONDITIONING")
            parts = {"generated": _with_tempo(decode_ids(tok, gen_ids), tempo, role),
                     "reference": _with_tempo(decode_ids(tok, h["target"]), tempo, role)}
            for set_name, part in parts.items():
                row = {"set": set_name, "file": h["meta"]["sample_id"], "status": OK, "reason": ""}
                if part.note_num() == 0:
                    row.update(status="skipped", reason="no notes")
                else:
                    row.update(score_part(part, cond, self.metrics, name=f"{set_name} {i}"))
                rows.append(row)
                label = "real" if set_name == "reference" else set_name
                _combined(cond, part).dump_midi(str(self.out_dir / "midi" / f"{i:02d}_{label}.mid"))
            if i < self.n_png:
                self._rolls(cond, parts, self.out_dir / "png" / f"{i:02d}.png", h["meta"]["sample_id"])
        return self._write(pd.DataFrame(rows), module)

    @staticmethod
    def _rolls(cond: symusic.Score, parts: dict, path: Path, title: str) -> None:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.image as mpimg
        import matplotlib.pyplot as plt

        images = []
        for set_name, part in parts.items():
            tmp = path.with_name(f"{path.stem}_{set_name}.png")
            save_piano_roll_png(_combined(cond, part), tmp, title=f"{title}: {set_name}")
            images.append(mpimg.imread(tmp))
            tmp.unlink()
        fig, axes = plt.subplots(len(images), 1, figsize=(12, 3.2 * len(images)), dpi=100)
        for ax, image in zip(np.atleast_1d(axes), images):
            ax.imshow(image)
            ax.axis("off")
        fig.tight_layout()
        fig.savefig(path)
        plt.close(fig)

    def _write(self, table: pd.DataFrame, module) -> dict:
        names = self.metrics + ["long_gap_count"]
        for name in names:
            if name not in table:
                table[name] = np.nan
        table.to_csv(self.out_dir / "per_sample.csv", index=False)
        summary = summarise(table, names)
        summary["metrics"] = names
        (self.out_dir / "report.json").write_text(json.dumps(summary, indent=2, allow_nan=True))
        descriptions = {n: METRICS[n].description for n in self.metrics if n in METRICS}
        descriptions["long_gap_count"] = "silences >= 180 ms (count per sample)"
        (self.out_dir / "report.md").write_text(
            "# Generation report\n\ngenerated = the model's part for held-out conditionings; reference = the "
            "real part over the same bars.\n\n" + markdown_table(summary, names, descriptions))
        histogram_figure(table, names, self.out_dir / "histograms.png")
        self._log(summary, names, module, table)
        log.info("generation report -> %s", self.out_dir)
        return summary

    def _log(self, summary: dict, names: list[str], module, table: pd.DataFrame) -> None:
        flat = {f"report/{set_name}/{name}": stats["metrics"][name]["mean"]
                for set_name, stats in summary["sets"].items() for name in names
                if np.isfinite(stats["metrics"][name]["mean"])}
        trainer = module._trainer  # None when the report runs from the command line
        for logger in trainer.loggers if trainer is not None else []:
            logger.log_metrics(flat, step=trainer.global_step)
            if type(logger).__name__ == "WandbLogger":
                logger.log_table("report/per_sample", dataframe=table.astype({"file": str}))
                pngs = sorted(str(p) for p in (self.out_dir / "png").glob("*.png"))
                if pngs:
                    logger.log_image("report/piano_rolls", images=pngs)


@hydra.main(version_base="1.3", config_path="../conf", config_name="report")
def main(cfg: DictConfig) -> dict:
    """Rebuild a finished run's role data module, load its checkpoint, write the report."""
    from lightning_modules.checkpoint import load_module

    run_config = Path(cfg.run_dir) / ".hydra" / "config.yaml"
    if not run_config.is_file():
        raise FileNotFoundError(f"{run_config} not found: run_dir must be a training run's output folder "
                                "(the one holding .hydra/ and checkpoints/)")
    ckpt = Path(cfg.ckpt_path)
    if not ckpt.is_file():
        raise FileNotFoundError(f"{ckpt} not found: pass ckpt_path=<checkpoint of {cfg.run_dir}>")
    datamodule = instantiate(OmegaConf.load(run_config).data)
    datamodule.prepare_data()
    datamodule.setup("test")
    held = datamodule.heldout(cfg.n_samples, cfg.split)
    if not held:
        raise ValueError(f"no held-out {cfg.split} windows in {cfg.run_dir}'s data set")
    L.seed_everything(cfg.seed)
    sampling = {k: v for k, v in OmegaConf.to_container(cfg.sampling).items() if v is not None}
    report = GenerationReport(cfg.out_dir, cfg.n_samples, cfg.split, n_png=cfg.n_png, seed=cfg.seed,
                              max_new_tokens=cfg.max_new_tokens, sampling=sampling)
    summary = report.report(load_module(ckpt), held)
    print((Path(cfg.out_dir) / "report.md").read_text(), flush=True)
    print(f"report: {cfg.out_dir}", flush=True)
    return summary


if __name__ == "__main__":
    main()
