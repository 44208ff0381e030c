"""LoRA on any platform nn.Module through peft: wrap, save the adapter, export merged weights.

`apply_lora` freezes the base and adds low-rank adapters to the Linear layers named in
`target_modules` (peft matches a name or a dotted suffix, e.g. "query" or "ff.0"), plus
optional trainable rows of embedding tables (`trainable_tokens={"tok_emb": [ids]}`: new
control tokens learn an embedding while every other row stays frozen).
`merged_copy` folds the adapters into plain weights: the result is the original module
class with an ordinary state dict, loadable without peft.
peft is imported lazily (its import takes seconds), only where LoRA is used.
"""
from __future__ import annotations

import copy
from pathlib import Path
from typing import Sequence

import torch.nn as nn

DEFAULT_TARGETS = ("query", "key", "value", "out", "ff.0", "ff.2")


def apply_lora(net: nn.Module, r: int = 8, alpha: float = 16.0, dropout: float = 0.05,
               target_modules: Sequence[str] = DEFAULT_TARGETS,
               trainable_tokens: dict[str, list[int]] | None = None) -> nn.Module:
    """A peft model around `net`; only the adapters (and the given token rows) require grad."""
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(r=r, lora_alpha=alpha, lora_dropout=dropout, target_modules=list(target_modules),
                        bias="none", trainable_token_indices=dict(trainable_tokens) if trainable_tokens else None)
    try:
        return get_peft_model(net, config)
    except ValueError as err:  # peft names the targets it could not find
        names = sorted({n.rsplit(".", 1)[-1] for n, m in net.named_modules() if isinstance(m, nn.Linear)})
        raise ValueError(f"LoRA target_modules {list(target_modules)} do not fit {type(net).__name__} "
                         f"(its Linear layers end in {names}): {err}") from err


def is_peft(net: nn.Module) -> bool:
    return hasattr(net, "peft_config")


def base_module(net: nn.Module) -> nn.Module:
    """The wrapped model itself (with adapters injected), or net if it is not a peft model."""
    return net.get_base_model() if is_peft(net) else net


def save_adapter(net: nn.Module, out_dir: str | Path) -> Path:
    """adapter_config.json + adapter_model.safetensors (adapter weights only, kilobytes)."""
    if not is_peft(net):
        raise TypeError(f"{type(net).__name__} has no LoRA adapter to save")
    out_dir = Path(out_dir)
    net.save_pretrained(str(out_dir))
    return out_dir


def load_adapter(net: nn.Module, adapter_dir: str | Path, trainable: bool = False) -> nn.Module:
    """Attach a saved adapter to a base module (the base weights must be those it was trained on)."""
    from peft import PeftModel

    return PeftModel.from_pretrained(net, str(adapter_dir), is_trainable=trainable)


def merged_copy(net: nn.Module) -> nn.Module:
    """A plain module equal to base + adapters (the peft model itself is left untouched)."""
    if not is_peft(net):
        return copy.deepcopy(net)
    return copy.deepcopy(net).merge_and_unload()


def trainable_parameter_count(net: nn.Module) -> tuple[int, int]:
    trainable = sum(p.numel() for p in net.parameters() if p.requires_grad)
    return trainable, sum(p.numel() for p in net.parameters())
