"""The generation side: KV-cached JamGenerator on a trained checkpoint, and the ONNX backend's parity."""

from __future__ import annotations

import pytest
import torch

from lightning_modules.checkpoint import load_module
from realtime.generation_worker import warm_up
from realtime.jam_generator import JamGenerator
from realtime.onnx_backend import OnnxStepModel, parity
from realtime.prompt_builder import PromptRequest, RemiPromptBuilder
from realtime.remi_stream import NoteEnd, NoteStart, RemiVocab
from realtime.step_model import TorchStepModel, build_step_model

ROLE = {"name": "solo", "min_pitch": 60, "max_pitch": 96, "max_notes_per_position": 1}


@pytest.fixture(scope="module")
def module(tiny_ckpt):
    return load_module(tiny_ckpt)


def make_generator(module, model=None) -> JamGenerator:
    vocab = RemiVocab(module.tokenizer)
    builder = RemiPromptBuilder(vocab, role=ROLE)
    return JamGenerator(
        model or TorchStepModel.from_module(module),
        vocab,
        builder,
        temperature=1.0,
        top_p=0.95,
        compact_reserve=48,
        seed=3,
    )


def run_until(gen: JamGenerator, beat: float) -> list:
    events = []
    while gen.decoder.horizon < beat:
        events += gen.step()
    gen.flush()
    return events


def cache_matches_a_fresh_forward(gen: JamGenerator, module) -> bool:
    gen.flush()
    with torch.no_grad():
        fresh = module.net(torch.tensor([gen.tokens]))[0][0, -1]
    return torch.allclose(gen.logits, fresh, atol=1e-4)


def test_prompt_answers_at_the_onset_and_the_stream_follows_the_role(module):
    gen = make_generator(module)
    first = gen.prompt(PromptRequest(1, 8.0, (57, 60, 64), 100, "A:min", 120.0))
    assert len(first) == 1 and isinstance(first[0], NoteStart)
    assert first[0].beat == 8.0 and 60 <= first[0].pitch <= 96
    assert first[0].velocity == int(gen.v.value[gen.v.velocity_token(100)])
    events = run_until(gen, 16.0)
    starts = [e for e in first + events if isinstance(e, NoteStart)]
    ends = {e.note_id: e.beat for e in events if isinstance(e, NoteEnd)}
    assert len(starts) >= 2
    assert all(60 <= s.pitch <= 96 for s in starts)
    assert len({s.beat for s in starts}) == len(starts)  # solo: one note per position
    assert all(b.beat >= a.beat for a, b in zip(starts, starts[1:]))
    assert all(ends[s.note_id] > s.beat for s in starts if s.note_id in ends)
    assert cache_matches_a_fresh_forward(gen, module)


def test_chord_penalty_keeps_the_line_on_the_held_chord_and_follows_a_new_one(module):
    vocab = RemiVocab(module.tokenizer)
    gen = JamGenerator(TorchStepModel.from_module(module), vocab, RemiPromptBuilder(vocab, role=ROLE),
                       seed=3, chord_penalty=float("inf"))
    first = gen.prompt(PromptRequest(1, 0.0, (57, 60, 64), 100, "A:min", 120.0))
    a_minor = [e for e in first + run_until(gen, 8.0) if isinstance(e, NoteStart)]
    second = gen.prompt(PromptRequest(2, 8.0, (53, 57, 60, 62), 100, "D:min7", 120.0))
    d_minor7 = [e for e in second + run_until(gen, 16.0) if isinstance(e, NoteStart)]
    assert len(a_minor) >= 2 and len(d_minor7) >= 2
    assert {n.pitch % 12 for n in a_minor} <= {9, 0, 4}
    assert {n.pitch % 12 for n in d_minor7} <= {5, 9, 0, 2}
    assert cache_matches_a_fresh_forward(gen, module)
    # (the tiny model learnt chord-tone lines, so the mask itself is checked too)
    grammar, temperature, mask = gen._first_processors()[:3]
    logits = mask(temperature(grammar(torch.zeros(1, vocab.size))))
    open_pitches = {p for p, t in vocab.pitch_ids.items() if torch.isfinite(logits[0, t])}
    assert {p % 12 for p in open_pitches} == {5, 9, 0, 2}
    assert open_pitches == {p for p in range(60, 97) if p % 12 in {5, 9, 0, 2}}  # the role's register


def test_reprompt_cuts_the_future_and_keeps_the_cache_exact(module):
    gen = make_generator(module)
    gen.prompt(PromptRequest(1, 0.0, (48, 52, 55), 80, "C:maj", 120.0))
    run_until(gen, 10.0)
    [first] = gen.prompt(
        PromptRequest(2, 4.0, (53, 57, 60), 80, "F:maj", 120.0)
    )  # the line had run to beat 10
    cut = next(i for i, (_, beat) in enumerate(gen.states) if beat >= 4.0)
    tail = gen.tokens[cut:]  # everything from the onset on is the prompt plus the first answer
    assert {gen.v.kind[t] for t in tail} <= {
        "Bar",
        "Position",
        "Tempo",
        "Pitch",
        "Velocity",
        "Duration",
    }
    assert [gen.v.value[t] for t in tail if gen.v.kind[t] == "Pitch"] == [53, 57, 60, first.pitch]
    assert cache_matches_a_fresh_forward(gen, module)
    gen.resync(9.0)  # a fallback covered up to beat 9
    assert gen.decoder.horizon >= 9.0
    assert cache_matches_a_fresh_forward(gen, module)


def test_long_runs_compact_the_context_within_max_len(module):
    gen = make_generator(module)
    max_len = gen.model.max_len
    for ctx, beat in enumerate(range(0, 96, 4)):
        gen.prompt(PromptRequest(ctx, float(beat), (48, 52, 55), 80, "C:maj", 120.0))
        run_until(gen, beat + 6.0)
        if gen.needs_compaction():
            assert gen.compact()
        assert len(gen.model) <= max_len
    assert gen.counts["compactions"] >= 1
    assert gen.tokens[0] == gen.v.bar_id  # a compacted context starts at a bar line
    assert cache_matches_a_fresh_forward(gen, module)


def test_interrupted_compaction_leaves_the_cache_as_it_was(module):
    gen = make_generator(module)
    gen.prompt(PromptRequest(1, 0.0, (48, 52, 55), 80, "C:maj", 120.0))
    run_until(gen, 24.0)
    tokens = list(gen.tokens)
    assert not gen.compact(interrupted=lambda: True)
    assert gen.tokens == tokens and gen.counts["compactions_interrupted"] == 1
    assert cache_matches_a_fresh_forward(gen, module)


def test_onnx_export_matches_torch_with_kv_cache(module, tmp_path):
    fp32 = OnnxStepModel.from_module(module, onnx_path=str(tmp_path / "decoder.onnx"))
    report = parity(module, fp32)
    assert report["max_abs_diff"] < 1e-4 and report["argmax_agreement"] == 1.0
    int8 = build_step_model(module, backend="onnx_int8", onnx_path=str(tmp_path / "decoder.onnx"))
    approx = parity(module, int8)
    assert approx["argmax_agreement"] >= 0.6 and approx["max_abs_diff"] < 1.0
    # the worker's whole path (prompt, cut, steps, compaction) runs on the ONNX backend
    gen = make_generator(module, model=fp32)
    warm_up(gen, steps=8)
    first = gen.prompt(PromptRequest(1, 0.0, (48, 52, 55), 80, "C:maj", 120.0))
    assert isinstance(first[0], NoteStart)
    run_until(gen, 8.0)
    gen.flush()
    with torch.no_grad():
        fresh = module.net(torch.tensor([gen.tokens]))[0][0, -1]
    assert torch.allclose(gen.logits, fresh, atol=1e-3)


def test_a_non_remi_tokenizer_gets_a_clear_error():
    class Fake:
        vocab = {"PAD_None": 0, "TimeShift_1.0.8": 1, "Pitch_60": 2}

    with pytest.raises(ValueError, match="REMI-family tokenizer"):
        RemiVocab(Fake())


@pytest.mark.parametrize("use_tempos", [False, True])
def test_role_conditioned_prompts_match_the_family_format_and_drive_a_music_transformer(use_tempos):
    """The Music Transformer + LoRA family's format (datamodules/role_tokens.py) through the
    worker's generator with a MusicTransformer net (random weights: the mechanics, not music)."""
    from types import SimpleNamespace

    from datamodules.role_tokens import build_prompt, chord_notes_to_score
    from tests.realtime.conftest import role_tokenizer
    from lightning_modules.components.music_transformer import MusicTransformer
    from realtime.prompt_builder import RoleConditionedPromptBuilder

    tokenizer = role_tokenizer(use_tempos)
    vocab = RemiVocab(tokenizer)
    builder = RoleConditionedPromptBuilder(
        vocab, tokenizer, role=ROLE, role_token="lead", cond_bars=2
    )
    request = PromptRequest(1, 6.0, (57, 60, 64), 80, "A:min", 132.0)
    prefix, opening = builder.restart_tokens(request)
    score = chord_notes_to_score(
        [(2.0, 2.0, (57, 60, 64)), (4.0, 4.0, (57, 60, 64))], tempo=132.0, velocity=60
    )
    assert prefix == build_prompt(tokenizer, score, role="lead", tempo=132.0, n_bars=2)
    assert [vocab.kind[t] for t in opening] == ["Bar", "Position"]

    torch.manual_seed(0)
    net = MusicTransformer(len(tokenizer), d_model=32, n_layers=2, n_heads=2, max_len=256).eval()
    module = SimpleNamespace(net=net, tokenizer=tokenizer, hparams={"vocab_size": len(tokenizer)})
    gen = JamGenerator(TorchStepModel.from_module(module), vocab, builder, seed=1)
    [first] = gen.prompt(request)
    assert first.beat == 6.0 and 60 <= first.pitch <= 96
    events = run_until(gen, 14.0)  # past the 2 conditioned bars (beats 4-12): the worker re-prompts
    assert not gen.needs_compaction()
    assert gen.counts["prompts"] == 2
    starts = [e for e in events if isinstance(e, NoteStart)]
    assert any(s.beat == 12.0 for s in starts) and all(60 <= s.pitch <= 96 for s in starts)
    with torch.no_grad():
        fresh = net(torch.tensor([gen.tokens]))[0][0, -1]
    assert torch.allclose(gen.logits, fresh, atol=1e-4)
