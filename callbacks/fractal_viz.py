"""Per-level piano-roll stacks of a hierarchical generator and a level-by-level growth GIF.

Each level's output is upsampled to the finest resolution (steps x pitches) so the rows of the
stack line up: pitch bits as they are, chroma spread over every pitch of its class, the note
level's velocities scaled to [0, 1]. Levels whose length * unit does not match the note level
(variable-length inputs, a truncated level) are cropped or zero-padded to it, never mismatched.
Works with any module exposing `generate_levels(n_samples, seed)`, `level_units` and
`level_names` (the fractal family).
"""
from __future__ import annotations

import io
import logging
from pathlib import Path

import lightning as L
import numpy as np

log = logging.getLogger(__name__)


def _as_numpy(x) -> np.ndarray:
    return x.detach().cpu().numpy() if hasattr(x, "detach") else np.asarray(x)


def fit_length(image: np.ndarray, n_steps: int) -> np.ndarray:
    """Crop or zero-pad the time axis (0) to n_steps."""
    if image.shape[0] >= n_steps:
        return image[:n_steps]
    return np.concatenate([image, np.zeros((n_steps - image.shape[0], *image.shape[1:]), image.dtype)])


def level_rolls(levels: list[dict], units: list[int], pitch_low: int = 21) -> list[np.ndarray]:
    """One sample's levels (coarse to fine; the last has `velocity` (T, P)) -> (T, P) floats in [0, 1]."""
    final = _as_numpy(levels[-1]["velocity"]).astype(np.float32) / 127.0
    n_steps, n_pitches = final.shape
    pcs = (np.arange(n_pitches) + pitch_low) % 12
    rolls = []
    for values, unit in zip(levels[:-1], units[:-1]):
        if "pitches" in values:
            image = _as_numpy(values["pitches"]).astype(np.float32)
        elif "chroma" in values:
            image = _as_numpy(values["chroma"]).astype(np.float32)[:, pcs]
        else:  # a level with class summaries only: its first one, normalised, across all pitches
            cls = _as_numpy(next(iter(values.values()))).astype(np.float32)
            image = np.repeat((cls / max(float(cls.max()), 1.0))[:, None], n_pitches, axis=1)
        rolls.append(fit_length(np.repeat(image, unit, axis=0), n_steps))
    return [*rolls, final]


def _used_pitch_range(rolls: list[np.ndarray]) -> tuple[int, int]:
    used = np.nonzero(np.stack(rolls).any(axis=(0, 1)))[0]
    return (max(int(used.min()) - 2, 0), int(used.max()) + 3) if used.size else (0, rolls[0].shape[1])


def render_stack(rolls: list[np.ndarray], names: list[str], shown: int | None = None,
                 title: str = "") -> np.ndarray:
    """(H, W, 3) uint8 image: one row per level (levels >= shown drawn empty)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    lo, hi = _used_pitch_range(rolls)
    shown = len(rolls) if shown is None else shown
    fig, axes = plt.subplots(len(rolls), 1, figsize=(10, 1.6 * len(rolls)), dpi=80, squeeze=False)
    for i, (ax, roll, name) in enumerate(zip(axes[:, 0], rolls, names)):
        data = roll[:, lo:hi].T if i < shown else np.zeros_like(roll[:, lo:hi].T)
        ax.imshow(data, origin="lower", aspect="auto", cmap="magma", vmin=0, vmax=1, interpolation="nearest")
        ax.set_ylabel(name, fontsize=8)
        ax.set_yticks([])
    axes[-1, 0].set_xlabel("steps")
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.canvas.draw()
    image = np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()
    plt.close(fig)
    return image


def save_growth_gif(rolls: list[np.ndarray], names: list[str], path: Path, ms_per_frame: int = 700) -> Path:
    """Frame k shows levels 0..k: the piece growing from structure to notes."""
    from PIL import Image

    frames = [Image.fromarray(render_stack(rolls, names, shown=k + 1, title=f"up to {names[k]}"))
              for k in range(len(rolls))]
    path.parent.mkdir(parents=True, exist_ok=True)
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=ms_per_frame, loop=0)
    return path


class FractalLevelViz(L.Callback):
    """Every `every_n_epochs` validation epochs (and at fit end): sample one piece, save
    `<out_dir>/epoch=<e>_levels.png` and `_growth.gif`, log the stack to TensorBoard / W&B."""

    def __init__(self, out_dir: str, every_n_epochs: int = 5, seed: int = 0, temperature: float | None = None):
        self.out_dir, self.every_n_epochs, self.seed, self.temperature = Path(out_dir), every_n_epochs, seed, temperature
        self.written: list[Path] = []
        self.failures = 0

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module) -> None:
        if trainer.sanity_checking or trainer.current_epoch % self.every_n_epochs:
            return
        self.visualise(trainer, pl_module, f"epoch={trainer.current_epoch:03d}")

    def on_fit_end(self, trainer: L.Trainer, pl_module) -> None:
        self.visualise(trainer, pl_module, "final")

    def visualise(self, trainer: L.Trainer, pl_module, tag: str) -> list[Path]:
        if not trainer.is_global_zero:
            return []
        try:
            levels = pl_module.generate_levels(n_samples=1, seed=self.seed, temperature=self.temperature)
            one = [{k: v[0] for k, v in lv.items()} for lv in levels]
            rolls = level_rolls(one, pl_module.level_units, pl_module.hparams.pitch_low)
            names = list(pl_module.level_names)
            image = render_stack(rolls, names, title=tag)
            from PIL import Image

            png = self.out_dir / f"{tag}_levels.png"
            png.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(image).save(png)
            gif = save_growth_gif(rolls, names, self.out_dir / f"{tag}_growth.gif")
            self.written += [png, gif]
            self._log_image(trainer, image, png, gif)
        except Exception as err:
            self.failures += 1
            log.exception("fractal viz failed at %s: %r", tag, err)
            return []
        return [png, gif]

    @staticmethod
    def _log_image(trainer: L.Trainer, image: np.ndarray, png: Path, gif: Path) -> None:
        for logger in trainer.loggers:
            name = type(logger).__name__
            if name == "TensorBoardLogger":
                logger.experiment.add_image("fractal/levels", image, trainer.global_step, dataformats="HWC")
            elif name == "WandbLogger":
                import wandb

                logger.experiment.log({"fractal/levels": wandb.Image(str(png)), "fractal/growth": wandb.Image(str(gif)),
                                       "trainer/global_step": trainer.global_step})


def image_bytes(image: np.ndarray) -> bytes:
    """PNG bytes of an (H, W, 3) image (for UIs that stream it)."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG")
    return buf.getvalue()
