"""The fractal family's nets: depths, caching, generation controls, migration, velocity sampling."""
from __future__ import annotations

import pytest
import torch

from lightning_modules.components.fractal import FlatFractal, reference_values
from lightning_modules.fractal_migration import flat_to_recursive, recursive_to_flat
from tests.fractal.helpers import OUTPUT, SPECS, random_batch, tiny_module


@pytest.mark.parametrize("depth", [2, 3, 4])
def test_depth_builds_trains_a_step_and_samples(depth):
    module = tiny_module(depth)
    assert len(module.chain) == depth and module.level_names[-1] == "notes"
    batch = random_batch()
    opt = torch.optim.AdamW(module.parameters(), lr=1e-2)
    before = [p.detach().clone() for p in module.parameters()]
    losses = module.level_losses(batch)
    assert losses.shape == (depth,) and bool(torch.isfinite(losses).all()) and bool((losses > 0).all())
    total, _ = module.weighting(losses)
    total.backward()
    opt.step()
    changed = sum(not torch.equal(a, b) for a, b in zip(before, module.parameters()))
    assert changed > 0.9 * len(before)  # every level gets gradient
    levels = module.generate_levels(n_samples=2, seed=1)
    assert len(levels) == depth
    assert levels[-1]["velocity"].shape == (2, 32, 24)
    for lv, unit in zip(levels[:-1], module.level_units[:-1]):
        assert all(v.shape[:2] == (2, 32 // unit) for v in lv.values())


def test_output_kv_cache_matches_uncached():
    module = tiny_module(4).eval()
    out = module.chain[-1]
    parent = torch.randn(3, 32, SPECS["steps"]["d_model"])
    chroma = torch.rand(3, 12)
    cond, memory, mask = out.condition(parent, chroma)
    # logits of a full prefix == logits built token by token through the cache
    seq = torch.randint(0, 24, (cond.size(0), 4))
    x = out.embed(seq, torch.zeros_like(seq), torch.zeros_like(seq))
    full, _ = out(x, cond, memory, mask)
    past, steps = None, []
    for k in range(4):
        h, past = out(out.embed(seq[:, k:k + 1], torch.zeros_like(seq[:, :1]), torch.zeros_like(seq[:, :1]), k),
                      cond, memory, mask, past)
        steps.append(h)
    torch.testing.assert_close(torch.cat(steps, 1), full, atol=1e-5, rtol=1e-5)
    # and the sampled notes are identical with and without the cache
    cached = out.sample_steps(cond, memory, mask, generator=torch.Generator().manual_seed(3), use_cache=True)
    plain = out.sample_steps(cond, memory, mask, generator=torch.Generator().manual_seed(3), use_cache=False)
    assert torch.equal(cached[0], plain[0]) and torch.equal(cached[1], plain[1])
    assert int((cached[0] > 0).sum()) > 0


def test_inpainting_keeps_the_context_outside_the_range():
    module = tiny_module(4, bars=4)
    ref = random_batch(batch=1, bars=4, density=0.1, seed=5)
    reference = {"velocity": ref["velocity"], "duration": ref["duration"]}
    levels = module.generate_levels(n_samples=3, reference=reference, step_range=(16, 32), seed=2)
    vel, dur = levels[-1]["velocity"], levels[-1]["duration"]
    outside = torch.ones(64, dtype=torch.bool)
    outside[16:32] = False
    assert torch.equal(vel[:, outside], ref["velocity"].expand(3, -1, -1)[:, outside])
    assert torch.equal(dur[:, outside], ref["duration"].expand(3, -1, -1)[:, outside])
    assert not torch.equal(vel[:, 16:32], ref["velocity"].expand(3, -1, -1)[:, 16:32])  # the range is new
    refs = reference_values(module.chain, ref["velocity"], ref["duration"])
    beats_outside = torch.ones(16, dtype=torch.bool)
    beats_outside[4:8] = False
    assert torch.equal(levels[1]["pitches"][:, beats_outside], refs[1]["pitches"].expand(3, -1, -1)[:, beats_outside])


def test_target_levels_resampling_keeps_the_kept_levels():
    module = tiny_module(4)
    ref = random_batch(batch=1, seed=7)
    reference = {"velocity": ref["velocity"], "duration": ref["duration"]}
    refs = reference_values(module.chain, ref["velocity"], ref["duration"])
    levels = module.generate_levels(n_samples=2, reference=reference, target_levels=[2, 3], seed=4)
    for kept in (0, 1):
        for kind, value in refs[kept].items():
            assert torch.equal(levels[kept][kind], value.expand_as(levels[kept][kind])), (kept, kind)
    assert not torch.equal(levels[3]["velocity"], ref["velocity"].expand(2, -1, -1))
    with pytest.raises(ValueError, match="reference"):
        module.generate_levels(target_levels=[3])


def test_migration_round_trip_gives_identical_outputs():
    recursive = tiny_module(4)
    shared = dict(n_pitches=24, pitch_low=48, window_steps=32, n_density=6, velocity_bins=8, duration_classes=4)
    levels = [{"name": n, **SPECS[n]} for n in ("bars", "beats", "steps")]
    torch.manual_seed(123)
    flat = FlatFractal(levels, dict(OUTPUT), shared)
    flat_state = flat.state_dict()  # levels.N.*
    mapped = flat_to_recursive(flat_state)
    root_state = {k[len("root."):]: v for k, v in mapped.items()}
    missing = recursive.root.load_state_dict(root_state, strict=True)
    assert not missing.missing_keys and not missing.unexpected_keys
    batch = random_batch()
    recursive.eval(), flat.eval()
    torch.manual_seed(9)
    a = recursive.root(batch["velocity"], batch["duration"], batch["chroma"])
    torch.manual_seed(9)
    b = flat(batch["velocity"], batch["duration"], batch["chroma"])
    assert [float(x.detach()) for x in a] == [float(x.detach()) for x in b]
    gen_a = recursive.root.sample(batch["chroma"], 32, generator=torch.Generator().manual_seed(1))
    gen_b = flat.sample(batch["chroma"], 32, generator=torch.Generator().manual_seed(1))
    assert torch.equal(gen_a[-1]["velocity"], gen_b[-1]["velocity"])
    back = recursive_to_flat({"root." + k: v for k, v in recursive.root.state_dict().items()})
    assert set(back) == set(flat_state)
    assert all(torch.equal(back[k], flat_state[k]) for k in flat_state)


def test_velocity_is_sampled_from_its_distribution():
    module = tiny_module(2).eval()
    out = module.chain[-1]
    probs = torch.tensor([0.0, 0.1, 0.0, 0.2, 0.0, 0.3, 0.0, 0.4])
    with torch.no_grad():
        out.velocity_head[-1].weight.zero_()
        out.velocity_head[-1].bias.copy_(torch.log(probs.clamp(min=1e-12)))
        out.pitch_head.weight.zero_()
        out.pitch_head.bias.fill_(-30.0)
        out.pitch_head.bias[10] = 30.0  # pitch 10 first, then END (ascending order forbids 10 again)
        out.pitch_head.bias[out.end_id] = 0.0
    n = 4000
    cond = torch.zeros(n, 1, out.d_model)
    memory, mask = torch.zeros(n, 1, out.d_model), torch.ones(n, 1, dtype=torch.bool)
    vel, _ = out.sample_steps(cond, memory, mask, generator=torch.Generator().manual_seed(0))
    classes = (vel[:, 10] * 8 // 128)
    freq = torch.bincount(classes, minlength=8).float() / n
    torch.testing.assert_close(freq, probs, atol=0.03, rtol=0)
