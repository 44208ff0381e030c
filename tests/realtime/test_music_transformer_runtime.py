"""The Music Transformer family in the realtime runtime: its ONNX export (relative attention, KV
cache) against the eager net, and the prompt cache of role-conditioned prompts (exact reuse)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from lightning_modules.components.music_transformer import MusicTransformer
from realtime.jam_generator import JamGenerator
from realtime.onnx_backend import OnnxStepModel, parity
from realtime.prompt_builder import PromptRequest, RoleConditionedPromptBuilder
from realtime.prompt_cache import PromptCache
from realtime.remi_stream import NoteStart, RemiVocab
from realtime.step_model import TorchStepModel, build_step_model
from tests.realtime.conftest import role_tokenizer

ROLE = {"name": "solo", "min_pitch": 60, "max_pitch": 96, "max_notes_per_position": 1}


@pytest.fixture(scope="module")
def tokenizer():
    return role_tokenizer()


def mt_module(tokenizer, relative: bool = True, table: int = 64, seed: int = 0):
    """A small MusicTransformer with random weights; the relative tables scaled up so relative
    position matters in the logits (a wrong distance or skew would show)."""
    torch.manual_seed(seed)
    net = MusicTransformer(
        len(tokenizer),
        d_model=32,
        n_layers=2,
        n_heads=2,
        d_ff=64,
        max_len=128,
        max_relative_distance=table,
        relative=relative,
        dropout=0.0,
    ).eval()
    if relative:
        for block in net.blocks:
            block.attn.rel_emb.data.normal_(0.0, 1.0)
    return SimpleNamespace(net=net, tokenizer=tokenizer, hparams={"vocab_size": len(tokenizer)})


def greedy(step_model, prompt: list[int], n: int) -> list[int]:
    step_model.reset()
    logits, out = step_model.feed(prompt), []
    for _ in range(n):
        out.append(int(logits.argmax()))
        logits = step_model.feed([out[-1]])
    return out


def greedy_uncached(net, prompt: list[int], n: int) -> list[int]:
    ids = list(prompt)
    with torch.no_grad():
        for _ in range(n):
            ids.append(int(net(torch.tensor([ids]))[0][0, -1].argmax()))
    return ids[len(prompt) :]


@pytest.mark.parametrize(
    "relative,table", [(True, 64), (True, 8), (False, 64)], ids=["relative", "clipped", "absolute"]
)
def test_onnx_music_transformer_matches_torch_with_kv_cache(tokenizer, tmp_path, relative, table):
    """Logits of a prefill and of single steps over a growing cache (the 'clipped' table is
    shorter than the sequence: distances past it share the last row), and greedy tokens."""
    module = mt_module(tokenizer, relative, table)
    model = build_step_model(module, backend="onnx", onnx_path=str(tmp_path / "mt.onnx"))
    assert isinstance(model, OnnxStepModel) and (tmp_path / "mt.onnx").exists()
    for n_prompt, n_steps in ((27, 20), (1, 40)):
        report = parity(module, model, n_prompt=n_prompt, n_steps=n_steps)
        assert report["max_abs_diff"] < 1e-4 and report["argmax_agreement"] == 1.0, report
    prompt = torch.randint(4, len(tokenizer), (16,), generator=torch.Generator().manual_seed(1))
    assert greedy(model, prompt.tolist(), 24) == greedy_uncached(module.net, prompt.tolist(), 24)
    # a cut-back cache (truncate) continues exactly as a fresh one
    model.reset()
    model.feed(prompt.tolist())
    model.truncate(9)
    with torch.no_grad():
        want = module.net(torch.cat([prompt[:9], prompt[3:7]])[None])[0][0, -1]
    assert torch.allclose(model.feed(prompt[3:7].tolist()), want, atol=1e-4)


def test_onnx_int8_music_transformer_runs_and_stays_close(tokenizer, tmp_path):
    module = mt_module(tokenizer)
    model = build_step_model(module, backend="onnx_int8", onnx_path=str(tmp_path / "mt.onnx"))
    report = parity(module, model)
    assert report["argmax_agreement"] >= 0.6 and report["max_abs_diff"] < 1.0, report


def role_generator(module, tokenizer, model, cache_size: int) -> JamGenerator:
    vocab = RemiVocab(tokenizer)
    builder = RoleConditionedPromptBuilder(
        vocab, tokenizer, role=ROLE, role_token="lead", cond_bars=2
    )
    return JamGenerator(model, vocab, builder, seed=1, prompt_cache_size=cache_size)


# chords of a jam: a repeat (C at 120 again), a new chord at the same tempo, a new tempo, an
# onset off the bar line, and the worker's own re-prompts when the conditioned bars run out
REQUESTS = [
    PromptRequest(1, 0.0, (48, 52, 55), 80, "C:maj", 120.0),
    PromptRequest(2, 4.0, (45, 48, 52), 70, "A:min", 120.0),
    PromptRequest(3, 8.0, (48, 52, 55), 90, "C:maj", 120.0),
    PromptRequest(4, 12.0, (43, 47, 50, 53), 80, "G:7", 160.0),
    PromptRequest(5, 17.5, (48, 52, 55), 80, "C:maj", 160.0),
]


def play(gen: JamGenerator, requests=REQUESTS, bars_each: float = 2.5) -> tuple[list, list]:
    """Prompt each chord and generate past its conditioned bars; returns the tokens and the
    logits after every prompt's prefill."""
    tokens, logits = [], []
    for request in requests:
        first = gen.prompt(request)
        assert isinstance(first[0], NoteStart) and first[0].beat == request.beat
        logits.append(gen.logits if gen.logits is not None else None)
        while gen.decoder.horizon < request.beat + 4 * bars_each:
            gen.step()
        gen.flush()
        tokens.append(list(gen.tokens))
    return tokens, logits


@pytest.mark.parametrize("backend", ["torch", "onnx"])
def test_prompt_cache_is_exact_and_skips_repeated_prefills(tokenizer, tmp_path, backend):
    module = mt_module(tokenizer)

    def step_model():
        if backend == "torch":
            return TorchStepModel.from_module(module)
        return build_step_model(module, backend="onnx", onnx_path=str(tmp_path / "mt.onnx"))

    cached = role_generator(module, tokenizer, step_model(), cache_size=32)
    plain = role_generator(module, tokenizer, step_model(), cache_size=0)
    got, got_logits = play(cached)
    want, want_logits = play(plain)
    assert got == want  # same sampled line, token for token
    for a, b in zip(got_logits, want_logits):
        assert torch.allclose(a, b, atol=1e-5)
    with torch.no_grad():
        fresh = module.net(torch.tensor([cached.tokens]))[0][0, -1]
    assert torch.allclose(cached.logits, fresh, atol=1e-4)  # the live cache equals a fresh forward
    c, p = cached.counts, plain.counts
    assert p["prompt_cache_hits"] == p["prompt_cache_partial"] == 0
    assert c["prompt_cache_hits"] >= 2  # the repeated C:maj at 120 and a worker re-prompt
    assert c["prompt_cache_partial"] >= 2  # a new chord after the shared opening
    assert c["prompt_tokens_prefilled"] < p["prompt_tokens_prefilled"]
    assert c["prompts"] == p["prompts"] > len(REQUESTS)


def test_prompt_cache_restores_the_longest_shared_prefix_and_evicts_lru(tokenizer):
    module = mt_module(tokenizer)
    model = TorchStepModel.from_module(module)
    cache = PromptCache(size=2)
    a, b, c = [1, 5, 6, 7, 8], [1, 5, 6, 9], [1, 5, 2, 2, 2, 2]
    with torch.no_grad():
        want = {tuple(s): module.net(torch.tensor([s]))[0][0, -1] for s in (a, b, c)}
    assert (
        torch.allclose(cache.prefill(model, a), want[tuple(a)], atol=1e-5) and cache.last_fed == 5
    )
    assert (
        torch.allclose(cache.prefill(model, b), want[tuple(b)], atol=1e-5) and cache.last_fed == 1
    )
    assert len(model) == len(b)
    assert torch.equal(cache.prefill(model, a), cache.entries[tuple(a)][1]) and cache.last_fed == 0
    assert len(model) == len(a)
    # a prompt that is a prefix of a stored one still feeds its last token (for its logits)
    assert (
        torch.allclose(
            cache.prefill(model, a[:3]), module.net(torch.tensor([a[:3]]))[0][0, -1], atol=1e-5
        )
        and cache.last_fed == 1
    )
    assert list(cache.entries) == [tuple(a), tuple(a[:3])]  # size 2: b, the least recent, went
    cache.prefill(model, c)
    assert cache.last_fed == 4 and tuple(a) not in cache.entries
    with pytest.raises(ValueError, match="at least one token"):
        cache.prefill(model, [])
