"""Peak memory of relative global attention: the skew vs the naive (L, L, D) gather.

    python -m bench.relative_attention_memory [--lengths 1024 2048] [--d-model 256 --heads 4]

Each measurement runs in a fresh process (peak RSS is per process): one attention layer at
batch 1, forward only (inference) and forward + backward (training); the reported number is
the peak resident memory above the process's state just before the call. The naive variant
builds the relative logits through an explicit (H, L, L, D) tensor (`brute_force_relative_logits`,
what the Music Transformer paper's memory-efficient skew avoids). Naive training at L >= 2048
needs > 12 GB and is skipped (--naive-train-max).
Writes bench/results/<name>.json and .md.
"""
from __future__ import annotations

import argparse
import json
import math
import resource
import subprocess
import sys
import time

import torch

from bench.report import write_results


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: kilobytes


def measure(impl: str, length: int, d_model: int, heads: int, train: bool) -> dict:
    """In this process: one call of the layer; peak RSS growth and seconds."""
    from lightning_modules.components.relative_attention import (RelativeGlobalAttention, attention_bias,
                                                                 brute_force_relative_logits)

    torch.manual_seed(0)
    layer = RelativeGlobalAttention(d_model, heads, max_relative_distance=length)
    x = torch.randn(1, length, d_model, requires_grad=train)

    def naive_forward(inp: torch.Tensor) -> torch.Tensor:
        q, k, v = (layer._heads(proj(inp)) for proj in (layer.query, layer.key, layer.value))
        rel = brute_force_relative_logits(q, layer.rel_emb, length)
        bias = attention_bias(rel, length, length, layer.head_dim ** -0.5)
        y = torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=bias)
        return layer.out(y.transpose(1, 2).reshape(1, length, d_model))

    forward = (lambda inp: layer(inp)[0]) if impl == "skew" else naive_forward
    before = peak_rss_mb()
    start = time.perf_counter()
    with torch.set_grad_enabled(train):
        y = forward(x)
        if train:
            y.square().sum().backward()
    seconds = time.perf_counter() - start
    return {"peak_mb": peak_rss_mb() - before, "seconds": seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lengths", type=int, nargs="+", default=[1024, 2048])
    parser.add_argument("--d-model", type=int, default=256)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--naive-train-max", type=int, default=1024)
    parser.add_argument("--name", default="relative_attention_memory")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:  # one measurement, printed as JSON for the parent
        impl, length, train = args.child.split(",")
        print(json.dumps(measure(impl, int(length), args.d_model, args.heads, train == "1")))
        return
    rows = []
    gathered_mb = lambda n: n * n * args.d_model * 4 / 2**20  # noqa: E731  the (H, L, L, D) float32 tensor
    for length in args.lengths:
        for train in (False, True):
            row = {"L": length, "mode": "train (fwd+bwd)" if train else "inference (fwd)",
                   "L*L*D tensor_mb": gathered_mb(length)}
            for impl in ("skew", "naive"):
                if impl == "naive" and train and length > args.naive_train_max:
                    row[f"{impl}_peak_mb"] = row[f"{impl}_s"] = math.nan
                    continue
                proc = subprocess.run([sys.executable, "-m", "bench.relative_attention_memory", "--child",
                                       f"{impl},{length},{int(train)}", "--d-model", str(args.d_model),
                                       "--heads", str(args.heads)], capture_output=True, text=True, check=True)
                result = json.loads(proc.stdout.strip().splitlines()[-1])
                row[f"{impl}_peak_mb"], row[f"{impl}_s"] = result["peak_mb"], result["seconds"]
            row["naive/skew memory"] = row["naive_peak_mb"] / row["skew_peak_mb"]
            rows.append(row)
            print(row, flush=True)
    write_results(args.name, rows, notes=f"one RelativeGlobalAttention layer, batch 1, d_model {args.d_model}, "
                                         f"{args.heads} heads, float32, CPU; peak RSS growth per call in a fresh "
                                         "process (MB). naive = relative logits through the explicit (H, L, L, D) "
                                         "gather; skew = q @ E^T then the pad-reshape skew (no L x L x D tensor).")


if __name__ == "__main__":
    main()
