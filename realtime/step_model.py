"""The small interface the generation worker drives: ids in, next-token logits out, KV cache inside.

Any family plugs into the realtime runtime by providing a StepModel (selected by config,
`generation.backend`): TorchStepModel wraps a platform module whose net follows the
TransformerDecoder protocol `net(ids (1, T), past) -> (logits (1, T, V), past)` with a
`max_len`; realtime.onnx_backend.OnnxStepModel runs the same protocol exported to ONNX Runtime.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, Protocol

import torch

log = logging.getLogger(__name__)


class StepModel(Protocol):
    max_len: int
    vocab_size: int

    def __len__(self) -> int:
        """Positions held in the KV cache."""

    def feed(self, ids: Sequence[int]) -> torch.Tensor:
        """Append ids to the context; returns (V,) float logits for the token after the last id."""

    def truncate(self, n: int) -> None:
        """Keep the first n cached positions."""

    def reset(self) -> None: ...

    def snapshot(self) -> Any:
        """An opaque copy of the cache state (cheap: caches are never modified in place)."""

    def restore(self, state: Any) -> None: ...


class TorchStepModel:
    def __init__(self, net: torch.nn.Module, vocab_size: int, num_threads: int | None = 1):
        if num_threads:
            torch.set_num_threads(num_threads)
        self.net = net.eval()
        self.max_len = int(net.max_len)
        self.vocab_size = vocab_size
        self.past: list[tuple[torch.Tensor, torch.Tensor]] | None = None
        self.length = 0

    @classmethod
    def from_module(
        cls, module: torch.nn.Module, net_attr: str = "net", num_threads: int | None = 1, **_unused
    ) -> TorchStepModel:
        net = getattr(module, net_attr, None)
        if net is None or not hasattr(net, "max_len"):
            raise TypeError(
                f"{type(module).__name__}.{net_attr} is not a KV-cached decoder with max_len; "
                "set generation.net_attr to the module's decoder, or give the family a StepModel"
            )
        vocab = int(getattr(module, "hparams", {}).get("vocab_size", 0) or net.head.out_features)
        return cls(net, vocab, num_threads)

    def __len__(self) -> int:
        return self.length

    @torch.inference_mode()
    def feed(self, ids: Sequence[int]) -> torch.Tensor:
        if self.length + len(ids) > self.max_len:
            raise ValueError(f"context of {self.length + len(ids)} exceeds max_len {self.max_len}")
        x = torch.tensor([list(ids)], dtype=torch.long)  # (1, T)
        logits, self.past = self.net(x, self.past)
        self.length += len(ids)
        return logits[0, -1].float()

    def truncate(self, n: int) -> None:
        if n >= self.length:
            return
        if n == 0:
            self.reset()
            return
        self.past = [(k[:, :, :n], v[:, :, :n]) for k, v in self.past]  # (B, H, n, D)
        self.length = n

    def reset(self) -> None:
        self.past, self.length = None, 0

    def snapshot(self) -> Any:
        return self.past, self.length

    def restore(self, state: Any) -> None:
        self.past, self.length = state


def build_step_model(module: torch.nn.Module, backend: str = "torch", **options: Any) -> StepModel:
    """backend: torch (default) | onnx | onnx_int8 (options go to the backend's constructor)."""
    if backend == "torch":
        return TorchStepModel.from_module(module, **options)
    if backend in ("onnx", "onnx_int8"):
        from realtime.onnx_backend import OnnxStepModel

        return OnnxStepModel.from_module(module, quantize=backend == "onnx_int8", **options)
    raise ValueError(f"generation.backend={backend!r}: choose torch, onnx or onnx_int8")
