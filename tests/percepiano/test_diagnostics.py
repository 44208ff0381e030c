"""The diagnostics callbacks are generic: the same objects run on TokenLM and on PercePiano."""
import math

import lightning as L
import pytest
from hydra.utils import instantiate

from callbacks.attention_entropy import AttentionEntropy
from callbacks.diagnostics import ActivationCheck, HierarchyIndexCheck
from callbacks.gradient_monitor import GradientMonitor
from callbacks.slice_regeneration import SliceRegeneration
from tests.percepiano.helpers import TINY_HAN, percepiano_root
from tests.spine import TINY, compose_train


def _fit(cfg, callbacks, epochs=1):
    dm = instantiate(cfg.data)
    model = instantiate(cfg.model, **dm.model_kwargs())
    trainer = L.Trainer(max_epochs=epochs, limit_train_batches=3, limit_val_batches=1, logger=False,
                        enable_checkpointing=False, enable_progress_bar=False, num_sanity_val_steps=0,
                        reload_dataloaders_every_n_epochs=1, callbacks=callbacks)
    trainer.fit(model, datamodule=dm)
    return dm


def _diagnostics():
    return (ActivationCheck(), GradientMonitor(every_n_steps=1), HierarchyIndexCheck(n_batches=2), AttentionEntropy())


def test_diagnostics_on_token_lm(tmp_path, platform_cache):
    cfg = compose_train(TINY + ["callbacks=none", "logger=none"], tmp_path, platform_cache)
    act, grad, hier, ent = _diagnostics()
    _fit(cfg, [act, grad, hier, ent])
    assert act.report["n_dims"] > 100 and act.report["logits_std"] > 0  # the LM head's vocab logits
    assert "pred_target_std_ratio" not in act.report  # integer token labels: no ratio
    assert len(grad.history) == 3 and any(k.startswith("net.blocks") for k in grad.history[0])
    assert hier.absent and not hier.report
    row = ent.history[0]
    names = [k for k in row if k != "epoch"]
    assert len(names) == 1 and all("attn" in n for n in names)  # TINY has one block
    assert all(0 < row[n] <= 1 for n in names)


@pytest.mark.realdata
def test_diagnostics_and_slice_regeneration_on_percepiano(shared_data, tmp_path, platform_cache):
    root = percepiano_root(shared_data)
    cfg = compose_train(["experiment=percepiano_han", "callbacks=none", "logger=none", f"data.root={root}",
                         "data.limit_files=120", "data.batch_size=4", "data.slice_len=60"] + TINY_HAN,
                        tmp_path, platform_cache)
    act, grad, hier, ent = _diagnostics()
    regen = SliceRegeneration()
    dm = _fit(cfg, [act, grad, hier, ent, regen], epochs=2)
    assert act.report["n_dims"] == 19 and 0 < act.report["pred_target_std_ratio"] < 10
    assert set(hier.report) == {"beat", "measure", "voice"}
    assert all(r["negative_inside"] == 0 and r["non_monotone"] == 0 and r["padding_not_minus_one"] == 0
               for r in hier.report.values())
    assert {"net.beat_attention", "net.measure_attention", "net.final_attention"} <= set(ent.history[0])
    assert all(0 <= v <= 1 for k, v in ent.history[0].items() if k != "epoch" and not math.isnan(v))
    assert regen.calls == [0, 1, 2] and dm.datasets["train"].epoch == 2
    plan_now = list(dm.datasets["train"].plan)
    dm.regenerate_slices(0)
    assert dm.datasets["train"].plan != plan_now  # another epoch, other boundaries
