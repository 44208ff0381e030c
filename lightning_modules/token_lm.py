"""Next-token language model over MIDI tokens: the spine's first generative family."""
from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import Any, Callable

import torch

from datamodules.midi_io import save_piano_roll_png
from datamodules.tokenizer import decode_ids, tokenizer_from_json
from lightning_modules.base import PlatformModule
from lightning_modules.sampling import build_processors


class TokenLM(PlatformModule):
    def __init__(self, net: Callable[..., torch.nn.Module], vocab_size: int, pad_id: int, bos_id: int,
                 eos_id: int, tokenizer_json: str, optimizer: Callable | None = None,
                 scheduler: Callable | None = None, generation: dict | None = None):
        super().__init__(optimizer, scheduler)
        self.net = net(vocab_size=vocab_size)
        self.pad_id, self.bos_id, self.eos_id = pad_id, bos_id, eos_id
        self.tokenizer_json = tokenizer_json
        self.generation = dict(generation or {})
        self.save_hyperparameters(ignore=["net", "optimizer", "scheduler", "tokenizer_json"])

    @cached_property
    def tokenizer(self):
        return tokenizer_from_json(self.tokenizer_json)

    def _step(self, batch: dict, stage: str) -> torch.Tensor:
        loss = self.net.loss(batch["input_ids"], batch["labels"])
        self.log(f"{stage}/loss", loss, prog_bar=True, batch_size=batch["input_ids"].size(0),
                 sync_dist=stage != "train")
        return loss

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        return self._step(batch, "train")

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        self._step(batch, "val")

    def test_step(self, batch: dict, batch_idx: int) -> None:
        self._step(batch, "test")

    @torch.no_grad()
    def generate_ids(self, n_samples: int = 1, max_new_tokens: int = 512, temperature: float = 1.0,
                     top_k: int | None = None, top_p: float | None = None, seed: int = 0,
                     prompt: list[int] | None = None) -> list[list[int]]:
        """Sample token id sequences from BOS (or a given prompt). Deterministic in `seed`."""
        was_training = self.training
        self.eval()
        gen = torch.Generator(device=self.device).manual_seed(seed)
        start = torch.tensor([prompt or [self.bos_id]] * n_samples, device=self.device)
        procs = build_processors(temperature, top_k, top_p, forbidden=[self.pad_id])
        out = self.net.generate(start, max_new_tokens, procs, eos_id=self.eos_id, generator=gen)
        self.train(was_training)
        return [[int(i) for i in row if i != self.eos_id] for row in out.tolist()]

    def write_samples(self, out_dir: Path, n_samples: int = 2, **sampling: Any) -> list[Path]:
        """Generate, decode and write `<out_dir>/sample_<i>.mid` plus a piano-roll PNG each."""
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        paths = []
        for i, ids in enumerate(self.generate_ids(n_samples=n_samples, **sampling)):
            score = decode_ids(self.tokenizer, ids)
            midi = out_dir / f"sample_{i}.mid"
            score.dump_midi(str(midi))
            if score.note_num():
                save_piano_roll_png(score, midi.with_suffix(".png"), title=f"sample {i}")
            paths.append(midi)
        return paths

    def run_inference(self, cfg, out_dir: Path) -> dict[str, Any]:
        overrides = {k: v for k, v in dict(cfg.get("sampling") or {}).items() if v is not None}
        sampling = {**self.generation, **overrides, "seed": cfg.get("seed", 0)}
        midis = self.write_samples(out_dir, n_samples=cfg.get("n_samples", 1), **sampling)
        return {"midi": [str(p) for p in midis], "png": [str(p.with_suffix(".png")) for p in midis
                                                         if p.with_suffix(".png").exists()]}
