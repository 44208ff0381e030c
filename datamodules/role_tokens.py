"""Control tokens of role-conditioned sequences, prompts, and a REMI note-by-note decoder.

A training / generation sequence is
    BOS ROLE_<role> TEMPO_<bucket> <conditioning tokens> COND_SEP <target tokens> (Bar | EOS)
The control tokens are miditok *special tokens* declared in the tokenizer config, so they sit
at fixed ids and survive `tokenizer_to_json` / `tokenizer_from_json` (tokens added later with
miditok's `add_to_vocab` come back at other ids after a round trip: that is why they are
declared, never appended), and `decode_ids` drops them like PAD/BOS/EOS.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import miditok
import numpy as np
import symusic
import torch

from datamodules.tokenizer import build_tokenizer, encode_score, tokenizer_from_json

BASE_SPECIAL_TOKENS = ("PAD", "BOS", "EOS", "MASK")
ROLES = ("lead", "bass", "chords")
# lower edges (bpm) of the TEMPO_* buckets; TEMPO_0 = below 70, TEMPO_220 = 220 and above
TEMPO_EDGES = (0, 70, 90, 110, 130, 150, 180, 220)
COND_SEP = "COND_SEP"


def role_token(role: str) -> str:
    return f"ROLE_{role.upper()}"


def tempo_tokens(edges: Sequence[int] = TEMPO_EDGES) -> list[str]:
    return [f"TEMPO_{int(e)}" for e in edges]


def control_tokens(roles: Sequence[str] = ROLES, tempo_edges: Sequence[int] = TEMPO_EDGES) -> list[str]:
    return [role_token(r) for r in roles] + tempo_tokens(tempo_edges) + [COND_SEP]


def build_role_tokenizer(roles: Sequence[str] = ROLES, tempo_edges: Sequence[int] = TEMPO_EDGES,
                         special_tokens: Sequence[str] = BASE_SPECIAL_TOKENS, **config) -> miditok.MusicTokenizer:
    """`build_tokenizer` with the control tokens declared as special tokens (fixed ids)."""
    return build_tokenizer(special_tokens=[*special_tokens, *control_tokens(roles, tempo_edges)], **config)


def ensure_control_tokens(tokenizer: miditok.MusicTokenizer, roles: Sequence[str] = ROLES,
                          tempo_edges: Sequence[int] = TEMPO_EDGES) -> miditok.MusicTokenizer:
    """The tokenizer itself if it declares every control token, else a rebuilt one that does
    (ids of a rebuilt tokenizer differ: never mix it with ids of the old one)."""
    missing = [t for t in control_tokens(roles, tempo_edges) if t not in tokenizer.vocab]
    if not missing:
        return tokenizer
    special = list(dict.fromkeys([*tokenizer.config.special_tokens, *missing]))
    config = miditok.TokenizerConfig.from_dict({**tokenizer.config.to_dict(), "special_tokens": special})
    return type(tokenizer)(tokenizer_config=config)


def tokenizer_from_checkpoint(ckpt_path: str | Path) -> miditok.MusicTokenizer:
    """The tokenizer a platform checkpoint was trained with (its model_kwargs.tokenizer_json)."""
    path = Path(ckpt_path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} not found: pretrain first (experiment=mt_pretrain) "
                                "and pass model.base_ckpt=<run>/checkpoints/<best>.ckpt")
    meta = torch.load(path, map_location="cpu", weights_only=False).get("musicplat", {})
    text = meta.get("model_kwargs", {}).get("tokenizer_json")
    if not text:
        raise ValueError(f"{path} carries no tokenizer (model_kwargs.tokenizer_json); "
                         "is it a token-model checkpoint trained with train.py?")
    return tokenizer_from_json(text)


def role_tokenizer(ckpt_path: str | Path | None = None, **config) -> miditok.MusicTokenizer:
    """The base checkpoint's tokenizer when ckpt_path is given (fine-tuning must keep its ids),
    else `build_role_tokenizer(**config)`."""
    return tokenizer_from_checkpoint(ckpt_path) if ckpt_path else build_role_tokenizer(**config)


@dataclass(frozen=True)
class ControlIds:
    bos: int
    eos: int
    pad: int
    bar: int
    sep: int
    roles: dict[str, int]  # role name -> id
    tempo_edges: tuple[int, ...]
    tempo_ids: tuple[int, ...]

    def role(self, role: str) -> int:
        if role not in self.roles:
            raise KeyError(f"role {role!r} has no control token in this tokenizer; known: {sorted(self.roles)}")
        return self.roles[role]

    def tempo(self, bpm: float) -> int:
        index = int(np.searchsorted(np.asarray(self.tempo_edges), float(bpm), side="right")) - 1
        return self.tempo_ids[max(index, 0)]


def control_ids(tokenizer: miditok.MusicTokenizer) -> ControlIds:
    """Ids of the control tokens, read from the vocabulary (raises if they are missing)."""
    vocab = tokenizer.vocab
    if COND_SEP not in vocab:
        raise ValueError("this tokenizer has no control tokens (COND_SEP, ROLE_*, TEMPO_*): build it "
                         "with datamodules.role_tokens.build_role_tokenizer (data/tokenizer=remi_roles)")
    roles = {tok.split("_", 1)[1].lower(): i for tok, i in vocab.items() if tok.startswith("ROLE_")}
    tempos = sorted((int(tok.split("_", 1)[1]), i) for tok, i in vocab.items() if tok.startswith("TEMPO_"))
    return ControlIds(bos=vocab["BOS_None"], eos=vocab["EOS_None"], pad=tokenizer.pad_token_id,
                      bar=vocab["Bar_None"], sep=vocab[COND_SEP], roles=roles,
                      tempo_edges=tuple(e for e, _ in tempos), tempo_ids=tuple(i for _, i in tempos))


def split_bars(ids: np.ndarray, bar_id: int) -> list[np.ndarray]:
    """REMI ids -> one array per bar, each starting with its Bar token (anything before the
    first Bar joins bar 0)."""
    ids = np.asarray(ids)
    starts = np.flatnonzero(ids == bar_id)
    if starts.size == 0:
        return [ids] if ids.size else []
    starts[0] = 0
    return np.split(ids, starts[1:])


def build_prompt(tokenizer: miditok.MusicTokenizer, conditioning: symusic.Score | Sequence[int],
                 role: str = "lead", tempo: float = 120.0, n_bars: int | None = None) -> list[int]:
    """BOS ROLE TEMPO <conditioning bars> COND_SEP: the ids a model continues with the role's part.

    conditioning: a Score (all its tracks merged, time 0 = bar 0) or its REMI ids.
    n_bars: keep the first n bars (padded with empty bars when the conditioning is shorter).
    """
    ids = control_ids(tokenizer)
    cond = encode_score(tokenizer, conditioning) if isinstance(conditioning, symusic.Score) \
        else np.asarray(conditioning, dtype=np.int64)
    bars = split_bars(cond, ids.bar)
    if n_bars is not None:
        bars = bars[:n_bars] + [np.array([ids.bar])] * max(0, n_bars - len(bars))
    body = np.concatenate(bars).tolist() if bars else []
    return [ids.bos, ids.role(role), ids.tempo(tempo), *map(int, body), ids.sep]


def chord_notes_to_score(chords: Sequence, tempo: float = 120.0, tpq: int = 480,
                         beats_per_chord: float = 4.0, velocity: int = 60) -> symusic.Score:
    """A conditioning Score from chord notes, for `build_prompt`.

    chords: either a list of pitch lists (one chord per `beats_per_chord` beats, from beat 0),
    or a list of (onset_beats, duration_beats, pitches) triples.
    """
    score = symusic.Score(tpq)
    score.tempos.append(symusic.Tempo(0, float(tempo)))
    score.time_signatures.append(symusic.TimeSignature(0, 4, 4))
    track = symusic.Track("CHORDS", 0, False)
    for index, chord in enumerate(chords):
        if len(chord) == 3 and not np.isscalar(chord[2]) and np.isscalar(chord[0]):
            onset, duration, pitches = chord
        else:
            onset, duration, pitches = index * beats_per_chord, beats_per_chord, chord
        for pitch in pitches:
            track.notes.append(symusic.Note(round(onset * tpq), max(1, round(duration * tpq)),
                                            int(pitch), velocity))
    track.notes.sort()
    score.tracks.append(track)
    return score


def _duration_beats(value: str) -> float:
    beats, ticks, resolution = (int(x) for x in value.split("."))
    return beats + ticks / resolution


def token_tables(tokenizer: miditok.MusicTokenizer, beats_per_bar: int = 4) -> dict[str, torch.Tensor]:
    """Per-id lookup tables (V,) for vectorised processors: pitch_class (-1 = not a pitch),
    is_bar, position_beats (-1 = not a position)."""
    size = len(tokenizer)
    pitch_class = torch.full((size,), -1, dtype=torch.long)
    is_bar = torch.zeros(size, dtype=torch.bool)
    position = torch.full((size,), -1.0)
    resolution = max(tokenizer.config.beat_res.values())
    for tok, i in tokenizer.vocab.items():
        kind, _, value = tok.partition("_")
        if kind == "Pitch":
            pitch_class[i] = int(value) % 12
        elif kind == "Bar":
            is_bar[i] = True
        elif kind == "Position":
            position[i] = int(value) / resolution
    return {"pitch_class": pitch_class, "is_bar": is_bar, "position_beats": position,
            "beats_per_bar": torch.tensor(float(beats_per_bar))}


@dataclass(frozen=True)
class StreamNote:
    onset_beats: float  # from the first Bar of the stream
    pitch: int
    velocity: int
    duration_beats: float


class RemiNoteDecoder:
    """Feed REMI ids one at a time; a note comes out as soon as its Duration token arrives.

    The same note times as miditok's decode of the whole stream (4/4 bars, no time-signature
    tokens); control and special tokens are ignored.
    """

    def __init__(self, tokenizer: miditok.MusicTokenizer, beats_per_bar: int = 4):
        self.kind: dict[int, tuple[str, str]] = {i: tuple(tok.split("_", 1)) if "_" in tok else (tok, "")
                                                 for tok, i in tokenizer.vocab.items()}
        self.resolution = max(tokenizer.config.beat_res.values())
        self.beats_per_bar = beats_per_bar
        self.bar, self.position, self.pitch, self.velocity = -1, 0.0, None, 100

    def feed(self, token_id: int) -> list[StreamNote]:
        kind, value = self.kind.get(int(token_id), ("", ""))
        if kind == "Bar":
            self.bar, self.position = self.bar + 1, 0.0
        elif kind == "Position":
            self.position = int(value) / self.resolution
        elif kind == "Pitch":
            self.pitch = int(value)
        elif kind == "Velocity":
            self.velocity = int(value)
        elif kind == "Duration" and self.pitch is not None:
            note = StreamNote(max(self.bar, 0) * self.beats_per_bar + self.position, self.pitch,
                              self.velocity, _duration_beats(value))
            self.pitch = None
            return [note]
        return []
