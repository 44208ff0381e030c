"""Music Transformer family: pretraining, LoRA fine-tuning on role data, conditioned generation.

    python train.py experiment=mt_pretrain                       # base LM (chorales by default)
    python train.py experiment=mt_lora_lead model.base_ckpt=...  # LoRA on data/roles/lead
    python infer.py ckpt_path=<run>/checkpoints/merged.ckpt +conditioning=chords.mid +n_bars=8

A LoRA run saves its adapter (`lora_adapter/`) and a merged checkpoint (`merged.ckpt`, plain
weights, loads without peft) next to its checkpoints when fitting ends.
"""
from __future__ import annotations

import copy
import logging
from functools import cached_property
from pathlib import Path
from typing import Any, Callable, Iterator

import lightning as L
import numpy as np
import torch

from datamodules.role_tokens import (RemiNoteDecoder, StreamNote, control_ids, token_tables)
from datamodules.tokenizer import tokenizer_from_json
from lightning_modules.base import CHECKPOINT_KEY
from lightning_modules.components.lora import apply_lora, base_module, is_peft, merged_copy, save_adapter
from lightning_modules.sampling import (build_processors, chord_tone_mask, generate_batch, pitch_class_mask,
                                        stream_tokens)
from lightning_modules.sampling import repetition_penalty as repetition_processor
from lightning_modules.token_lm import TokenLM

log = logging.getLogger(__name__)
ARCHITECTURE_KEYS = ("d_model", "n_layers", "n_heads", "d_ff", "relative", "max_relative_distance", "tie_weights")
MAJOR, MINOR = (0, 2, 4, 5, 7, 9, 11), (0, 2, 3, 5, 7, 8, 10)


class BarStop:
    """Row b is finished once it has produced n_bars[b] + 1 Bar tokens (the closing Bar)."""

    def __init__(self, bar_id: int, n_bars: torch.Tensor, already: torch.Tensor | None = None):
        self.bar_id, self.limit = bar_id, n_bars + 1
        self.count = already.clone() if already is not None else torch.zeros_like(n_bars)

    def __call__(self, nxt: torch.Tensor) -> torch.Tensor:
        self.count += (nxt == self.bar_id).long()
        return self.count >= self.limit


def sounding_pitch_classes(ids: list[int], decoder: RemiNoteDecoder, steps_per_beat: int = 4) -> np.ndarray:
    """(steps, 12) bool: pitch classes sounding in the conditioning ids on a 1/steps_per_beat grid."""
    notes = [n for i in ids for n in decoder.feed(i)]
    end = max((n.onset_beats + n.duration_beats for n in notes), default=1.0)
    grid = np.zeros((int(np.ceil(end * steps_per_beat)) + 1, 12), dtype=bool)
    for n in notes:
        first = int(n.onset_beats * steps_per_beat)
        last = max(first + 1, int(np.ceil((n.onset_beats + n.duration_beats) * steps_per_beat)))
        grid[first:last, n.pitch % 12] = True
    return grid


def scale_pitch_classes(key: str) -> torch.Tensor:
    """'Bb:maj' -> (12,) bool of its scale (natural minor for ':min')."""
    from datamodules.role_sources import _note_pc

    tonic, _, mode = key.partition(":")
    allowed = torch.zeros(12, dtype=torch.bool)
    allowed[[(_note_pc(tonic) + i) % 12 for i in (MINOR if mode.startswith("min") else MAJOR)]] = True
    return allowed


class MusicTransformerLM(TokenLM):
    """TokenLM over a `MusicTransformer` net, plus LoRA and role-conditioned generation.

    base_ckpt: a platform checkpoint whose `net.*` weights initialise this net (architecture
        and vocabulary must match; checked with a clear error).
    lora: {r, alpha, dropout, target_modules, train_control_tokens} -> only adapters train.
    export: {dir} where the adapter and merged checkpoint go (default: the trainer's ckpt dir).
    """

    def __init__(self, net: Callable[..., torch.nn.Module], vocab_size: int, pad_id: int, bos_id: int,
                 eos_id: int, tokenizer_json: str, optimizer: Callable | None = None,
                 scheduler: Callable | None = None, generation: dict | None = None,
                 base_ckpt: str | None = None, lora: dict | None = None, export: dict | None = None):
        super().__init__(net, vocab_size, pad_id, bos_id, eos_id, tokenizer_json, optimizer, scheduler, generation)
        self.base_ckpt, self.lora_cfg, self.export = base_ckpt, dict(lora or {}), dict(export or {})
        self.base_loaded = bool(base_ckpt) and self._load_base(Path(base_ckpt))
        if self.lora_cfg:
            lora_cfg = dict(self.lora_cfg)
            tokens = None
            if lora_cfg.pop("train_control_tokens", True):
                ids = control_ids(self.tokenizer)
                tokens = {"tok_emb": sorted([ids.sep, *ids.roles.values(), *ids.tempo_ids])}
            self.net = apply_lora(self.net, trainable_tokens=tokens, **lora_cfg)

    # ------------------------------------------------------------------ base weights
    def _load_base(self, path: Path) -> bool:
        if not path.is_file():
            log.warning("base checkpoint %s not found: the net starts from random weights (fine only "
                        "when a full checkpoint of this run is loaded next)", path)
            return False
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
        meta = ckpt.get(CHECKPOINT_KEY, {})
        base_tok = meta.get("model_kwargs", {}).get("tokenizer_json")
        if base_tok and tokenizer_from_json(base_tok).vocab != self.tokenizer.vocab:
            raise ValueError(f"the vocabulary of {path} differs from this run's; build the data's tokenizer "
                             "from it (data.tokenizer._target_=datamodules.role_tokens.tokenizer_from_checkpoint)")
        base_net = meta.get("model_cfg", {}).get("net", {})
        ours = base_module(self.net)
        mine = {"d_model": ours.tok_emb.embedding_dim, "n_layers": len(ours.blocks)}
        diffs = {k: (base_net[k], mine[k]) for k in mine if k in base_net and base_net[k] != mine[k]}
        if diffs:
            raise ValueError(f"{path} was trained with another architecture {diffs} (base, this run): "
                             f"set model.net.<key> to the base values ({ARCHITECTURE_KEYS})")
        state = {k[len("net."):]: v for k, v in ckpt["state_dict"].items() if k.startswith("net.")}
        try:
            self.net.load_state_dict(state)
        except RuntimeError as err:
            raise ValueError(f"{path} does not fit this net (is it a LoRA run's last.ckpt? use its "
                             f"merged.ckpt as a base): {str(err)[:500]}") from err
        log.info("loaded base weights from %s", path)
        return True

    def on_fit_start(self) -> None:
        if self.base_ckpt and not self.base_loaded and self.trainer.ckpt_path is None:
            raise FileNotFoundError(f"model.base_ckpt={self.base_ckpt} does not exist: pretrain first "
                                    "(experiment=mt_pretrain) and pass its checkpoint")

    # ------------------------------------------------------------------ LoRA export
    def on_fit_end(self) -> None:
        if not is_peft(self.net) or not self.trainer.is_global_zero:
            return
        callback = self.trainer.checkpoint_callback
        out_dir = Path(self.export.get("dir") or (callback.dirpath if callback else self.trainer.default_root_dir))
        best = getattr(self.trainer.checkpoint_callback, "best_model_path", "") or ""
        source = self
        if best and Path(best).is_file():
            source = copy.deepcopy(self)
            source.load_state_dict(torch.load(best, map_location="cpu", weights_only=False)["state_dict"])
        save_adapter(source.net, out_dir / "lora_adapter")
        path = source.export_merged(out_dir / "merged.ckpt")
        log.info("LoRA adapter -> %s, merged checkpoint -> %s (from %s)", out_dir / "lora_adapter", path,
                 best or "the last weights")

    def export_merged(self, path: str | Path) -> Path:
        """A platform checkpoint of base + adapters as plain weights: load_module builds it without peft."""
        merged = merged_copy(self.net)
        meta = {k: v for k, v in self.platform_meta.items() if k != "rng"}
        model_cfg = dict(meta.get("model_cfg") or {})
        model_cfg.update(base_ckpt=None, lora=None, export=None)
        meta.update(model_cfg=model_cfg, merged_from={"base_ckpt": self.base_ckpt, "lora": self.lora_cfg})
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save({"state_dict": {f"net.{k}": v for k, v in merged.state_dict().items()},
                    CHECKPOINT_KEY: meta, "pytorch-lightning_version": L.__version__}, path)
        return path

    # ------------------------------------------------------------------ generation
    @property
    def decoder(self) -> torch.nn.Module:
        """The MusicTransformer (with adapters injected when LoRA is on) that generation calls."""
        return base_module(self.net)

    @cached_property
    def controls(self):
        return control_ids(self.tokenizer)

    @cached_property
    def tables(self) -> dict[str, torch.Tensor]:
        return token_tables(self.tokenizer)

    def processors(self, prompts: list[list[int]], temperature: float = 1.0, top_k: int | None = None,
                   top_p: float | None = 0.95, repetition_penalty: float = 1.0, repetition_window: int = 64,
                   scale: str | None = None, scale_penalty: float = float("inf"),
                   chord_penalty: float | None = None, **_unused) -> list:
        """Never a special/control id except EOS; then penalties and masks, then the sampling cut."""
        procs = build_processors(temperature, top_k, top_p,
                                 forbidden=[i for i in self.tokenizer.special_tokens_ids if i != self.eos_id])
        extra = []
        if repetition_penalty and repetition_penalty != 1.0:
            pitch_ids = torch.nonzero(self.tables["pitch_class"] >= 0).flatten().tolist()
            extra.append(repetition_processor(repetition_penalty, repetition_window, pitch_ids))
        if scale:
            extra.append(pitch_class_mask(self.tables["pitch_class"], scale_pitch_classes(scale), scale_penalty))
        if chord_penalty:
            grids = [sounding_pitch_classes(p[3:-1], RemiNoteDecoder(self.tokenizer)) for p in prompts]
            table = np.zeros((len(grids), max(len(g) for g in grids), 12), dtype=bool)
            for row, g in enumerate(grids):
                table[row, :len(g)] = g
                table[row, len(g):] = g[-1] if len(g) else True
            extra.append(chord_tone_mask(self.tables["pitch_class"], self.tables["is_bar"],
                                         self.tables["position_beats"], torch.from_numpy(table), 4,
                                         start=max(len(p) for p in prompts), penalty=chord_penalty))
        return procs[:1] + extra + procs[1:]

    @torch.no_grad()
    def generate_conditioned(self, prompts: list[list[int]], n_bars: int | list[int], seed: int = 0,
                             max_new_tokens: int = 1024, use_cache: bool = True,
                             primer_bars: list[int] | None = None, **sampling: Any) -> list[list[int]]:
        """Continue each prompt (build_prompt ids, optionally + primer) with n_bars bars of target ids.

        The closing Bar / EOS is dropped; rows are generated together in one batch.
        """
        was_training = self.training
        self.eval()
        bars = torch.as_tensor([n_bars] * len(prompts) if isinstance(n_bars, int) else n_bars, device=self.device)
        already = torch.as_tensor(primer_bars or [0] * len(prompts), device=self.device)
        stop = BarStop(self.controls.bar, bars, already)
        generator = torch.Generator(device=self.device).manual_seed(seed)
        out = generate_batch(self.decoder, prompts, max_new_tokens, self.processors(prompts, **sampling),
                             self.pad_id, self.eos_id, generator, use_cache, stop)
        self.train(was_training)
        return [row[:-1] if row and row[-1] in (self.eos_id, self.controls.bar) else row for row in out]

    @torch.no_grad()
    def stream_notes(self, prompt: list[int], n_bars: int, seed: int = 0, max_new_tokens: int = 1024,
                     **sampling: Any) -> Iterator[StreamNote]:
        """Yield each note of the generated part the moment its last token is decoded
        (onsets in beats from the first target bar)."""
        self.eval()
        decoder = RemiNoteDecoder(self.tokenizer)
        stop = BarStop(self.controls.bar, torch.tensor([n_bars], device=self.device))
        generator = torch.Generator(device=self.device).manual_seed(seed)
        ids = torch.tensor([prompt], device=self.device)
        for tok, _ in stream_tokens(self.decoder, ids, max_new_tokens, self.processors([prompt], **sampling),
                                    eos_id=self.eos_id, generator=generator, stop=stop):
            token = int(tok[0])
            if token == self.eos_id or bool(stop.count[0] >= stop.limit[0]):
                return
            yield from decoder.feed(token)

    def generate_ids(self, n_samples: int = 1, max_new_tokens: int = 512, temperature: float = 1.0,
                     top_k: int | None = None, top_p: float | None = None, seed: int = 0,
                     prompt: list[int] | None = None, **_unused) -> list[list[int]]:
        """Unconditional samples (TokenLM contract), generated through the adapter-aware decoder."""
        was_training = self.training
        self.eval()
        gen = torch.Generator(device=self.device).manual_seed(seed)
        start = torch.tensor([prompt or [self.bos_id]] * n_samples, device=self.device)
        procs = build_processors(temperature, top_k, top_p, forbidden=[
            i for i in self.tokenizer.special_tokens_ids if i != self.eos_id])
        out = self.decoder.generate(start, max_new_tokens, procs, eos_id=self.eos_id, generator=gen)
        self.train(was_training)
        return [[int(i) for i in row if i != self.eos_id] for row in out.tolist()]

    # ------------------------------------------------------------------ infer.py
    def run_inference(self, cfg, out_dir: Path) -> dict[str, Any]:
        """`+conditioning=<MIDI>`: lead (and combined) MIDI of `+n_bars` bars; without it, samples."""
        if not cfg.get("conditioning"):
            return super().run_inference(cfg, out_dir)
        from lightning_modules.mt_generation import write_conditioned

        return write_conditioned(self, cfg, Path(out_dir))
