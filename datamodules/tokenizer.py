"""miditok tokenizers built from config, serialised into checkpoints, and single-stream codecs."""
from __future__ import annotations

import hashlib
import json
import tempfile
from pathlib import Path
from typing import Any

import miditok
import numpy as np
import symusic

from datamodules.midi_io import merge_tracks


def build_tokenizer(kind: str = "REMI", beat_res: dict | None = None, **config: Any) -> miditok.MusicTokenizer:
    """A miditok tokenizer of class `kind` (REMI, TSD, MIDILike, ...) from plain config values.

    `beat_res` is written in config as {"0_4": 8, "4_12": 4} (YAML keys cannot be tuples).
    """
    if not hasattr(miditok, kind):
        raise ValueError(f"Unknown tokenizer kind '{kind}': set data.tokenizer.kind to a miditok class "
                         "such as REMI, TSD or MIDILike")
    if beat_res is not None:
        config["beat_res"] = {tuple(int(x) for x in str(k).split("_")): int(v) for k, v in beat_res.items()}
    for key in ("pitch_range", "tempo_range"):
        if key in config and config[key] is not None:
            config[key] = tuple(config[key])
    return getattr(miditok, kind)(miditok.TokenizerConfig(**config))


def tokenizer_to_json(tokenizer: miditok.MusicTokenizer) -> str:
    """The tokenizer's full params as JSON text (what travels inside a checkpoint)."""
    with tempfile.TemporaryDirectory() as tmp:
        tokenizer.save(Path(tmp))
        return (Path(tmp) / "tokenizer.json").read_text()


def tokenizer_from_json(text: str) -> miditok.MusicTokenizer:
    params = json.loads(text)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "tokenizer.json"
        path.write_text(text)
        return getattr(miditok, params["tokenization"])(params=path)


def tokenizer_hash(tokenizer: miditok.MusicTokenizer) -> str:
    """Stable id of a tokenizer's behaviour (library versions excluded), keys the token cache."""
    params = json.loads(tokenizer_to_json(tokenizer))
    for key in ("miditok_version", "symusic_version", "hf_tokenizers_version"):
        params.pop(key, None)
    return hashlib.sha1(json.dumps(params, sort_keys=True).encode()).hexdigest()[:16]


def encode_score(tokenizer: miditok.MusicTokenizer, score: symusic.Score) -> np.ndarray:
    """Score -> one stream of token ids (tracks merged unless the tokenizer encodes programs)."""
    if not tokenizer.one_token_stream:
        score = merge_tracks(score)
    if not score.tracks:
        return np.zeros(0, dtype=np.int32)
    seq = tokenizer.encode(score)
    if isinstance(seq, list):
        seq = seq[0]
    return np.asarray(seq.ids, dtype=np.int32)


def decode_ids(tokenizer: miditok.MusicTokenizer, ids: np.ndarray | list[int]) -> symusic.Score:
    """Token ids -> Score. Special tokens (PAD/BOS/EOS/...) are dropped first.

    Ids (not TokSequences) are passed: miditok's decode mutates TokSequence arguments.
    """
    special = set(tokenizer.special_tokens_ids)
    clean = [int(i) for i in ids if int(i) not in special]
    stream = clean if tokenizer.one_token_stream else [clean]
    return tokenizer.decode(stream)


def token_ids_matching(tokenizer: miditok.MusicTokenizer, prefix: str) -> dict[int, str]:
    """{id: value-string} of every vocabulary token of one type, e.g. prefix 'Pitch'."""
    return {i: tok.split("_", 1)[1] for tok, i in tokenizer.vocab.items() if tok.split("_", 1)[0] == prefix}
