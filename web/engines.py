"""Checkpoints -> engines: the fractal engine (web/fractal_engine.py) and one for the token
families (TokenLM, Music Transformer): plain generation, or a conditioning MIDI — the part
generated over it for role-conditioned checkpoints (mt_generation.write_conditioned), continued
as a prompt for the others. Progress is reported per decoded token.
"""
from __future__ import annotations

import logging
import shutil
import threading
from dataclasses import dataclass
from pathlib import Path

import symusic
import torch
from omegaconf import OmegaConf

from datamodules.role_tokens import split_bars
from datamodules.tokenizer import decode_ids, encode_score
from lightning_modules.checkpoint import load_module
from lightning_modules.fractal import FractalModule
from lightning_modules.music_transformer import MusicTransformerLM
from lightning_modules.sampling import build_processors, stream_tokens
from lightning_modules.token_lm import TokenLM
from web.fractal_engine import Emit, FractalEngine, RequestError, _json
from web.roll import score_roll
from web.schemas import GenerationRequest

log = logging.getLogger(__name__)


@dataclass
class TokenPlan:
    conditioning: Path | None
    seed: int
    n_bars: int | None
    max_new_tokens: int
    sampling: dict


class _Counting:
    """Wraps a decoder: every forward pass is one decoded token -> a progress event."""

    def __init__(self, decoder: torch.nn.Module, on_step):
        self._decoder, self._on_step = decoder, on_step

    def __call__(self, *args, **kwargs):
        out = self._decoder(*args, **kwargs)
        self._on_step()
        return out

    def __getattr__(self, name):
        return getattr(self._decoder, name)


class _Observed:
    """The module as write_conditioned sees it, decoding through a `_Counting` decoder."""

    def __init__(self, module: MusicTransformerLM, decoder: _Counting):
        self._module, self.decoder = module, decoder

    def generate_conditioned(self, *args, **kwargs):
        return type(self._module).generate_conditioned(self, *args, **kwargs)

    def __getattr__(self, name):
        return getattr(self._module, name)


class TokenEngine:
    def __init__(self, module: TokenLM, max_new_tokens: int = 2048):
        self.module = module.eval()
        self.is_mt = isinstance(module, MusicTransformerLM)
        self.family = "music_transformer" if self.is_mt else "token_lm"
        self.limit = max_new_tokens
        try:
            self.controls = module.controls if self.is_mt else None
        except ValueError:  # a Music Transformer without role tokens (pretraining vocabulary)
            self.controls = None

    @property
    def decoder(self) -> torch.nn.Module:
        return self.module.decoder if self.is_mt else self.module.net

    def describe(self) -> dict:
        roles = sorted(self.controls.roles) if self.controls else []
        return {"family": self.family, "levels": [{"index": 0, "name": "notes", "unit": 1, "kinds": ["notes"]}],
                "role_conditioned": bool(self.controls), "roles": roles, "max_len": int(self.decoder.max_len),
                "midi_uses": ["conditioning"], "steps_per_beat": 4, "beats_per_bar": 4}

    def prepare(self, req: GenerationRequest, upload: symusic.Score | None, upload_path: Path | None,
                source_dir: Path | None) -> TokenPlan:
        fractal_only = {k: getattr(req, k) for k in ("target_levels", "region", "source_job", "source_notes")
                        if getattr(req, k) is not None}
        if fractal_only or req.midi_use in ("chroma", "source"):
            raise RequestError(f"the {self.family} checkpoint generates whole parts: "
                               f"{sorted(fractal_only) or ['midi_use=' + str(req.midi_use)]} need a fractal "
                               "checkpoint (upload a MIDI with midi_use=conditioning instead)")
        max_new = req.max_new_tokens or int(self.module.generation.get("max_new_tokens") or 512)
        if max_new > self.limit:
            raise RequestError(f"max_new_tokens={max_new} is over the limit ({self.limit}, limits.max_new_tokens)")
        overrides = {"temperature": req.temperature, "top_k": req.top_k, "top_p": req.top_p}
        sampling = {k: v for k, v in self.module.generation.items() if k in ("temperature", "top_k", "top_p")}
        sampling.update({k: v for k, v in overrides.items() if v is not None})
        if upload is not None and not len(encode_score(self.module.tokenizer, upload)):
            raise RequestError("the uploaded MIDI has no notes this checkpoint's tokenizer can encode")
        return TokenPlan(upload_path if upload is not None else None, req.seed, req.length_bars, max_new, sampling)

    @torch.no_grad()
    def execute(self, plan: TokenPlan, out_dir: Path, emit: Emit) -> dict:
        if plan.conditioning is not None and self.controls is not None:
            score = self._over_conditioning(plan, out_dir, emit)
        else:
            score = self._continue(plan, emit)
        if plan.n_bars:
            score = score.clip(0, plan.n_bars * 4 * score.tpq, clip_end=True)  # 4/4 bars of the REMI grid
        score.dump_midi(str(out_dir / "result.mid"))
        roll = score_roll(score)
        (out_dir / "roll.json").write_text(_json(roll))
        return {"family": self.family, "notes": len(roll["notes"]), "n_steps": roll["n_steps"],
                "bars": roll["n_steps"] // 16}

    def _continue(self, plan: TokenPlan, emit: Emit) -> symusic.Score:
        tok, module = self.module.tokenizer, self.module
        prompt = [module.bos_id]
        if plan.conditioning is not None:
            cond = encode_score(tok, symusic.Score(str(plan.conditioning)))
            prompt += [int(i) for i in cond[: self.decoder.max_len // 2]]
        if self.is_mt:
            procs = module.processors([prompt], **plan.sampling)
        else:
            procs = build_processors(plan.sampling.get("temperature", 1.0), plan.sampling.get("top_k"),
                                     plan.sampling.get("top_p"), forbidden=[module.pad_id])
        gen = torch.Generator(device=module.device).manual_seed(plan.seed)
        ids = torch.tensor([prompt], device=module.device)
        new = []
        for step, (token, _) in enumerate(stream_tokens(self.decoder, ids, plan.max_new_tokens, procs,
                                                        eos_id=module.eos_id, generator=gen)):
            if int(token[0]) == module.eos_id:
                break
            new.append(int(token[0]))
            emit({"type": "progress", "level": "tokens", "level_index": 0, "step": step + 1,
                  "total": plan.max_new_tokens, "fraction": round((step + 1) / plan.max_new_tokens, 4)})
        return decode_ids(tok, prompt[1:] + new)

    def _over_conditioning(self, plan: TokenPlan, out_dir: Path, emit: Emit) -> symusic.Score:
        from lightning_modules.mt_generation import write_conditioned

        n_bars = plan.n_bars or len(split_bars(encode_score(self.module.tokenizer,
                                                            symusic.Score(str(plan.conditioning))),
                                               self.controls.bar))
        count = {"tokens": 0, "bars": 0}

        def on_step() -> None:
            count["tokens"] += 1
            emit({"type": "progress", "level": "tokens", "level_index": 0, "step": count["tokens"],
                  "total": None, "bars_done": count["bars"], "bars": n_bars,
                  "fraction": round(count["bars"] / max(n_bars, 1), 4)})

        observed = _Observed(self.module, _Counting(self.module.decoder, on_step))
        real = observed.generate_conditioned

        def chunk(prompts, chunk_bars, **kwargs):
            out = real(prompts, chunk_bars, **kwargs)
            count["bars"] += chunk_bars
            return out

        observed.generate_conditioned = chunk
        cfg = OmegaConf.create({"conditioning": str(plan.conditioning), "n_bars": n_bars, "seed": plan.seed,
                                "n_samples": 1, "sampling": {**plan.sampling,
                                                             "max_new_tokens": plan.max_new_tokens}})
        result = write_conditioned(observed, cfg, out_dir / "parts")
        shutil.copyfile(result["combined"][0], out_dir / "result.mid")
        return symusic.Score(str(out_dir / "result.mid"))


class ModelRegistry:
    """default: the checkpoint `ckpt_path` (served as model `default`); models: more by name.
    Modules load on first use (or at start with preload) and stay loaded."""

    def __init__(self, default: str | None = None, models: dict | None = None, map_location: str = "cpu",
                 preload: bool = False, max_length_bars: int = 64, max_new_tokens: int = 2048):
        self.paths = {**({"default": str(default)} if default else {}),
                      **{str(k): str(v) for k, v in dict(models or {}).items()}}
        if not self.paths:
            raise ValueError("no checkpoint to serve: pass ckpt_path=<run>/checkpoints/last.ckpt")
        for name, path in self.paths.items():
            if not Path(path).is_file():
                raise FileNotFoundError(f"model {name!r}: checkpoint {path} not found (ckpt_path= / models.{name}=)")
        self.map_location, self.max_length_bars, self.max_new_tokens = map_location, max_length_bars, max_new_tokens
        self._engines: dict[str, FractalEngine | TokenEngine] = {}
        self._lock = threading.Lock()
        if preload:
            for name in self.paths:
                self.engine(name)

    @property
    def default(self) -> str:
        return next(iter(self.paths))

    def engine(self, name: str | None) -> FractalEngine | TokenEngine:
        name = name or self.default
        if name not in self.paths:
            raise RequestError(f"unknown model {name!r}; choose one of {sorted(self.paths)} (GET /models)")
        with self._lock:
            if name not in self._engines:
                module = load_module(self.paths[name], self.map_location)
                if isinstance(module, FractalModule):
                    self._engines[name] = FractalEngine(module, self.max_length_bars)
                elif isinstance(module, TokenLM):
                    self._engines[name] = TokenEngine(module, self.max_new_tokens)
                else:
                    raise RequestError(f"model {name!r} is a {type(module).__name__}: a scoring family, "
                                       "nothing to generate (use infer.py for its scores)")
                log.info("model %s (%s) loaded from %s", name, self._engines[name].family, self.paths[name])
            return self._engines[name]

    def describe(self) -> list[dict]:
        return [{"name": n, "checkpoint": Path(p).name, **self.engine(n).describe()} for n, p in self.paths.items()]
