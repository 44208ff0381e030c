"""LoRA through peft on the Music Transformer: frozen base, merged == unmerged, peft-free export."""
import subprocess
import sys
import textwrap

import pytest
import torch
from hydra.utils import instantiate

from datamodules.role_tokens import build_role_tokenizer, control_ids
from datamodules.tokenizer import tokenizer_to_json
from lightning_modules.components.lora import base_module, is_peft, load_adapter, save_adapter
from lightning_modules.checkpoint import load_module
from lightning_modules.music_transformer import MusicTransformerLM
from tests.spine import ROOT

NET = {"_target_": "lightning_modules.components.music_transformer.MusicTransformer", "_partial_": True,
       "d_model": 32, "n_layers": 2, "n_heads": 2, "d_ff": 64, "max_len": 64, "max_relative_distance": 16,
       "dropout": 0.0}
LORA = {"r": 4, "alpha": 8, "dropout": 0.0, "target_modules": ["query", "key", "value", "out", "ff.0", "ff.2"],
        "train_control_tokens": True}


@pytest.fixture(scope="module")
def kwargs():
    tok = build_role_tokenizer(kind="REMI", use_time_signatures=False, use_tempos=False)
    ids = control_ids(tok)
    return {"vocab_size": len(tok), "pad_id": ids.pad, "bos_id": ids.bos, "eos_id": ids.eos,
            "tokenizer_json": tokenizer_to_json(tok)}


def build(kwargs, **cfg):
    model_cfg = {"_target_": "lightning_modules.music_transformer.MusicTransformerLM", "net": NET, **cfg}
    module = instantiate(model_cfg, **kwargs)
    module.platform_meta = {"model_cfg": model_cfg, "model_kwargs": kwargs, "target": model_cfg["_target_"]}
    return module


@pytest.fixture(scope="module")
def base_ckpt(tmp_path_factory, kwargs):
    torch.manual_seed(0)
    base = build(kwargs)
    path = tmp_path_factory.mktemp("base") / "base.ckpt"
    torch.save({"state_dict": base.state_dict(), "musicplat": base.platform_meta}, path)
    return path


def train_steps(module, steps: int = 5) -> None:
    opt = torch.optim.AdamW([p for p in module.parameters() if p.requires_grad], lr=1e-2)
    gen = torch.Generator().manual_seed(1)
    ids = control_ids(module.tokenizer)
    for _ in range(steps):
        x = torch.randint(20, module.hparams.vocab_size, (4, 24), generator=gen)
        x[:, 1] = ids.role("lead")  # control tokens appear, so their trainable rows get gradient
        loss = module.net.loss(x[:, :-1], x[:, 1:])
        loss.backward()
        opt.step()
        opt.zero_grad()


@pytest.fixture(scope="module")
def tuned(kwargs, base_ckpt):
    torch.manual_seed(0)
    module = build(kwargs, base_ckpt=str(base_ckpt), lora=LORA)
    train_steps(module)
    return module.eval()


def test_only_adapters_train_and_base_weights_stay(tuned, base_ckpt):
    assert is_peft(tuned.net)
    trainable = [n for n, p in tuned.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n or "trainable_tokens_delta" in n for n in trainable), trainable
    base = {k[len("net."):]: v for k, v in torch.load(base_ckpt, weights_only=False)["state_dict"].items()}
    checked = 0
    for name, value in base_module(tuned.net).state_dict().items():
        plain = name.replace("tok_emb.token_adapter.base_layer", "tok_emb").replace(".base_layer", "")
        if "lora_" in name or "trainable_tokens" in name or plain not in base:
            continue
        torch.testing.assert_close(value, base[plain], rtol=0, atol=0, msg=name)
        checked += 1
    assert checked == len(base)  # every base tensor is still there, bit for bit
    deltas = [p for n, p in tuned.named_parameters() if "lora_B" in n]
    assert any(d.abs().sum() > 0 for d in deltas)  # the adapters did learn something


def test_merged_equals_unmerged_and_adapter_reloads(tuned, base_ckpt, kwargs, tmp_path):
    x = torch.randint(0, kwargs["vocab_size"], (2, 30), generator=torch.Generator().manual_seed(2))
    x[:, 1] = control_ids(tuned.tokenizer).role("lead")
    with torch.no_grad():
        unmerged = tuned.net(x)[0]
        merged_path = tuned.export_merged(tmp_path / "merged.ckpt")
        merged = load_module(merged_path)
        assert not is_peft(merged.net) and merged.lora_cfg == {}
        torch.testing.assert_close(merged.net(x)[0], unmerged, rtol=1e-4, atol=1e-4)
        base = build(kwargs, base_ckpt=str(base_ckpt))
        assert (base.net(x)[0] - unmerged).abs().max() > 1e-3  # LoRA changed the function
        reloaded = load_adapter(base.net, save_adapter(tuned.net, tmp_path / "adapter"))
        torch.testing.assert_close(reloaded(x)[0], unmerged, rtol=1e-5, atol=1e-5)
    size = sum(f.stat().st_size for f in (tmp_path / "adapter").iterdir())
    assert size < (tmp_path / "merged.ckpt").stat().st_size / 2  # the adapter alone is small
    torch.save({"x": x, "logits": unmerged}, tmp_path / "expected.pt")
    code = textwrap.dedent(f"""
        import sys, torch
        sys.modules["peft"] = None  # any import of peft now fails
        from lightning_modules.checkpoint import load_module
        module = load_module({str(merged_path)!r})
        expected = torch.load({str(tmp_path / 'expected.pt')!r})
        with torch.no_grad():
            torch.testing.assert_close(module.net(expected["x"])[0], expected["logits"], rtol=1e-4, atol=1e-4)
        print("loaded without peft")
    """)
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and "loaded without peft" in proc.stdout, proc.stderr[-3000:]


def test_mismatched_base_is_a_clear_error(kwargs, base_ckpt):
    net = instantiate({**NET, "d_model": 48})
    with pytest.raises(ValueError, match="another architecture.*d_model"):
        MusicTransformerLM(net, base_ckpt=str(base_ckpt), **kwargs)
