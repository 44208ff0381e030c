"""Loss weighting strategies: bounds, DWA's ratios, GradNorm's balancing."""
from __future__ import annotations

import math

import pytest
import torch

from lightning_modules.components.loss_weighting import (
    DWAWeighting,
    FixedWeighting,
    GradNormWeighting,
    UncertaintyWeighting,
)


def test_fixed_weights_and_validation():
    w = FixedWeighting(3, [1.0, 0.5, 2.0])
    total, _ = w(torch.tensor([1.0, 2.0, 3.0]))
    assert float(total) == pytest.approx(8.0)
    with pytest.raises(ValueError):
        FixedWeighting(2, [1.0, -1.0])


def test_uncertainty_formula_and_clamped_sigmas():
    w = UncertaintyWeighting(2, s_min=-1.0, s_max=1.0)
    losses = torch.tensor([2.0, 0.5])
    total, info = w(losses)
    assert float(total) == pytest.approx(float((losses / 2).sum()))  # s = 0
    with torch.no_grad():
        w.log_var.copy_(torch.tensor([50.0, -50.0]))  # an optimiser pushed them far out
    total, info = w(losses)
    assert info["weights"].tolist() == pytest.approx([math.exp(-1) / 2, math.exp(1) / 2])
    assert info["sigmas"].tolist() == pytest.approx([math.exp(0.5), math.exp(-0.5)])
    w.after_optimizer_step()
    assert w.log_var.tolist() == [1.0, -1.0]
    # learning s: a big loss raises its sigma, but never past the bound (the task is not silenced)
    w = UncertaintyWeighting(2, s_min=-2.0, s_max=2.0)
    opt = torch.optim.SGD(w.parameters(), lr=0.5)
    for _ in range(200):
        opt.zero_grad()
        w(torch.tensor([100.0, 0.01]))[0].backward()
        opt.step()
        w.after_optimizer_step()
    assert w.log_var.tolist() == [2.0, -2.0]
    assert float(w.weights()[0]) >= math.exp(-2.0) / 2 - 1e-6


def test_dwa_weights_follow_the_loss_ratios():
    w = DWAWeighting(2, temperature=1.0)
    for epoch_losses in ([1.0, 1.0], [0.5, 1.0]):  # task 0 halves, task 1 stalls
        w.observe(torch.tensor(epoch_losses))
        w.on_epoch_end()
    weights = w.weights()
    assert float(weights.sum()) == pytest.approx(2.0)
    expected = 2 * torch.softmax(torch.tensor([0.5, 1.0]), 0)
    torch.testing.assert_close(weights, expected)
    assert weights[1] > weights[0]  # the slow task gets more weight


def test_gradnorm_raises_the_weight_of_the_lagging_task_and_renormalises():
    torch.manual_seed(0)
    shared = torch.nn.Linear(4, 4)
    heads = torch.nn.ModuleList([torch.nn.Linear(4, 1), torch.nn.Linear(4, 1)])
    w = GradNormWeighting(2, alpha=1.5)
    opt = torch.optim.SGD(w.parameters(), lr=0.05)
    x = torch.randn(32, 4)
    for step in range(20):
        h = shared(x)
        scale = 1.0 if step == 0 else 0.3  # task 0 "trains fast": its loss drops relative to its start
        losses = torch.stack([heads[0](h).pow(2).mean() * scale, heads[1](h).pow(2).mean()])
        opt.zero_grad()
        total, _ = w(losses, shared_params=[shared.weight])
        total.backward()
        opt.step()
        w.after_optimizer_step()
    assert float(w.w.sum()) == pytest.approx(2.0)
    assert w.w[1] > w.w[0]
    with pytest.raises(ValueError, match="shared_params"):
        w(torch.ones(2, requires_grad=True))


@pytest.mark.parametrize("weighting", [FixedWeighting, UncertaintyWeighting, DWAWeighting, GradNormWeighting])
def test_every_strategy_trains_the_fractal_module(weighting):
    from tests.fractal.helpers import random_batch, tiny_module

    module = tiny_module(3, weighting=weighting)
    opt = torch.optim.AdamW(module.parameters(), lr=1e-2)
    batch = random_batch()
    for _ in range(2):
        opt.zero_grad()
        loss = module.training_step(batch, 0)
        loss.backward()
        opt.step()
        module.on_train_batch_end(None, batch, 0)
    module.on_train_epoch_end()
    assert torch.isfinite(loss)
    assert float(module.weighting.weights().detach().min()) > 0
