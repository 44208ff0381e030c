"""ONNX Runtime backend: a decoder exported with its KV cache, optional dynamic int8.

Two net families export: `TransformerDecoder` (TokenLM; ExportableDecoder below) and the
Music Transformer's relative-attention `MusicTransformer` (realtime.onnx_music_transformer).

The exported graph takes `ids (1, T)`, `past_k`/`past_v (L, 1, H, P, D)` and returns the
last position's logits (1, V) plus the caches extended to P + T; T and P are dynamic (P may be
0). It reuses the decoder's own layers and writes the causal mask as arithmetic on positions,
so one graph serves prefill and single steps (the eager module picks SDPA paths by shape,
which a tracer would freeze). `python -m realtime.onnx_backend ckpt_path=... [int8=true]`
exports and checks parity against torch.
"""

from __future__ import annotations

import logging
import math
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

log = logging.getLogger(__name__)


class ExportableDecoder(nn.Module):
    """Cache-in / cache-out view of a TransformerDecoder (shares its parameters).

    Subclasses change how positions enter: `_embed` (absolute positions here) and
    `_position_scores` (relative logits, realtime.onnx_music_transformer).
    """

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net.eval()
        attn = net.blocks[0].attn
        self.n_layers, self.n_heads, self.head_dim = len(net.blocks), attn.n_heads, attn.head_dim

    def forward(self, ids: torch.Tensor, past_k: torch.Tensor, past_v: torch.Tensor):
        net = self.net
        t, p = ids.shape[1], past_k.shape[3]
        positions = torch.arange(t, device=ids.device) + p  # (T,) absolute positions of the queries
        keys = torch.arange(p + t, device=ids.device)  # (P + T,)
        x = self._embed(ids, positions)  # (1, T, C)
        blocked = keys[None, :] > positions[:, None]  # (T, P + T): the future is masked
        bias = torch.zeros(blocked.shape, dtype=x.dtype).masked_fill(blocked, float("-inf"))
        new_k, new_v = [], []
        for i, block in enumerate(net.blocks):
            attn = block.attn
            h = block.norm1(x)
            q, k, v = (
                self._heads(lin(h)) for lin in (attn.query, attn.key, attn.value)
            )  # (1, H, T, D)
            k, v = torch.cat([past_k[i], k], dim=2), torch.cat([past_v[i], v], dim=2)  # (1, H, P+T, D)
            scores = q @ k.transpose(-2, -1)  # (1, H, T, P + T)
            extra = self._position_scores(attn, q, keys, t, p)
            if extra is not None:
                scores = scores + extra
            scores = scores / math.sqrt(self.head_dim) + bias
            y = scores.softmax(-1) @ v  # (1, H, T, D)
            x = x + attn.out(y.transpose(1, 2).reshape(1, t, -1))
            x = x + block.ff(block.norm2(x))
            new_k.append(k)
            new_v.append(v)
        logits = net.head(net.norm(x[:, -1]))  # (1, V)
        return logits, torch.stack(new_k), torch.stack(new_v)

    def _embed(self, ids: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        return self.net.tok_emb(ids) + self.net.pos_emb(positions)

    def _position_scores(self, attn: nn.Module, q: torch.Tensor, keys: torch.Tensor, t, p) -> torch.Tensor | None:
        return None  # absolute positions are in the embedding

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        return x.view(1, -1, self.n_heads, self.head_dim).transpose(1, 2)

    def empty_cache(self) -> torch.Tensor:
        return torch.zeros(self.n_layers, 1, self.n_heads, 0, self.head_dim)


def exportable(net: nn.Module) -> nn.Module:
    """The cache-in / cache-out wrapper of a net: ExportableDecoder or ExportableMusicTransformer."""
    from lightning_modules.components.music_transformer import MusicTransformer
    from lightning_modules.components.transformer import TransformerDecoder
    from realtime.onnx_music_transformer import ExportableMusicTransformer

    if isinstance(net, MusicTransformer):
        return ExportableMusicTransformer(net)
    if isinstance(net, TransformerDecoder):
        return ExportableDecoder(net)
    raise TypeError(
        f"the ONNX backend exports TransformerDecoder and MusicTransformer nets, not "
        f"{type(net).__name__}: use realtime/backend=torch for this checkpoint"
    )


def export_onnx(net: nn.Module, path: str | Path, opset: int = 17) -> Path:
    """Write the KV-cached decoder to `path` (TorchScript-based exporter: dynamic T and P)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    wrapper = exportable(net)
    ids = torch.zeros(1, 3, dtype=torch.long)
    past = torch.zeros(wrapper.n_layers, 1, wrapper.n_heads, 2, wrapper.head_dim)
    with torch.no_grad():
        torch.onnx.export(
            wrapper,
            (ids, past, past.clone()),
            str(path),
            dynamo=False,
            opset_version=opset,
            input_names=["ids", "past_k", "past_v"],
            output_names=["logits", "new_k", "new_v"],
            dynamic_axes={
                "ids": {1: "T"},
                "past_k": {3: "P"},
                "past_v": {3: "P"},
                "new_k": {3: "PT"},
                "new_v": {3: "PT"},
            },
        )
    return path


def quantize_int8(src: str | Path, dst: str | Path) -> Path:
    """Dynamic int8 (weights int8, activations quantised on the fly): MatMul / Gemm only."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(
        str(src), str(dst), weight_type=QuantType.QInt8, op_types_to_quantize=["MatMul", "Gemm"]
    )
    return Path(dst)


def make_session(path: str | Path, num_threads: int = 1):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads, opts.inter_op_num_threads = num_threads, 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


class OnnxStepModel:
    """StepModel over an ONNX Runtime session (see realtime.step_model.StepModel)."""

    def __init__(
        self, session, n_layers: int, n_heads: int, head_dim: int, max_len: int, vocab_size: int
    ):
        self.session, self.max_len, self.vocab_size = session, max_len, vocab_size
        self.empty = np.zeros((n_layers, 1, n_heads, 0, head_dim), dtype=np.float32)
        self.reset()

    @classmethod
    def from_module(
        cls,
        module: nn.Module,
        quantize: bool = False,
        net_attr: str = "net",
        onnx_path: str | None = None,
        num_threads: int | None = 1,
        **_unused,
    ) -> OnnxStepModel:
        net = getattr(module, net_attr)
        folder = (
            Path(onnx_path).parent
            if onnx_path
            else Path(tempfile.mkdtemp(prefix="musicplat_onnx_"))
        )
        fp32 = Path(onnx_path) if onnx_path else folder / "decoder.onnx"
        if not fp32.exists():
            export_onnx(net, fp32)
        path = quantize_int8(fp32, fp32.with_suffix(".int8.onnx")) if quantize else fp32
        wrapper = exportable(net)
        return cls(
            make_session(path, num_threads or 1),
            wrapper.n_layers,
            wrapper.n_heads,
            wrapper.head_dim,
            int(net.max_len),
            int(net.head.out_features),
        )

    def __len__(self) -> int:
        return self.length

    def feed(self, ids: Sequence[int]) -> torch.Tensor:
        if self.length + len(ids) > self.max_len:
            raise ValueError(f"context of {self.length + len(ids)} exceeds max_len {self.max_len}")
        logits, self.past_k, self.past_v = self.session.run(
            None,
            {
                "ids": np.asarray([ids], dtype=np.int64),
                "past_k": self.past_k,
                "past_v": self.past_v,
            },
        )
        self.length += len(ids)
        return torch.from_numpy(logits[0])

    def truncate(self, n: int) -> None:
        if n < self.length:
            self.past_k, self.past_v = self.past_k[:, :, :, :n], self.past_v[:, :, :, :n]
            self.length = n

    def reset(self) -> None:
        self.past_k, self.past_v, self.length = self.empty, self.empty, 0

    def snapshot(self) -> Any:
        return self.past_k, self.past_v, self.length

    def restore(self, state: Any) -> None:
        self.past_k, self.past_v, self.length = state


def parity(
    module: nn.Module, step_model, n_prompt: int = 24, n_steps: int = 16, seed: int = 0
) -> dict:
    """Max |logit difference| and argmax agreement of a StepModel against the eager torch net."""
    net = module.net.eval()
    gen = torch.Generator().manual_seed(seed)
    vocab = int(net.head.out_features)
    ids = torch.randint(4, vocab, (1, n_prompt + n_steps), generator=gen)
    with torch.no_grad():
        reference = net(ids)[0][0]  # (T, V) full-sequence forward, no cache
    step_model.reset()
    got = [step_model.feed(ids[0, :n_prompt].tolist())]
    got += [step_model.feed([int(i)]) for i in ids[0, n_prompt:-1]]
    got = torch.stack(got)  # (n_steps, V)
    want = reference[n_prompt - 1 : n_prompt - 1 + len(got)]
    return {
        "max_abs_diff": float((got - want).abs().max()),
        "argmax_agreement": float((got.argmax(-1) == want.argmax(-1)).float().mean()),
    }


def main(argv: list[str]) -> None:
    """Export a checkpoint's decoder (fp32 and optionally int8) next to it and print parity."""
    from lightning_modules.checkpoint import load_module

    args = dict(a.split("=", 1) for a in argv)
    if "ckpt_path" not in args:
        raise SystemExit(
            "usage: python -m realtime.onnx_backend ckpt_path=<.ckpt> [out=<file.onnx>] [int8=true]"
        )
    module = load_module(args["ckpt_path"])
    out = Path(args.get("out") or Path(args["ckpt_path"]).with_suffix(".onnx"))
    export_onnx(module.net, out)
    print(f"wrote {out}")
    model = OnnxStepModel.from_module(module, onnx_path=str(out))
    print("fp32 parity:", parity(module, model))
    if args.get("int8", "false").lower() == "true":
        model = OnnxStepModel.from_module(module, quantize=True, onnx_path=str(out))
        print(f"wrote {out.with_suffix('.int8.onnx')}; int8 parity:", parity(module, model))


if __name__ == "__main__":
    main(sys.argv[1:])
