"""Music Transformer decoding speed: time to first token and ms/token, with and without KV cache.

    python -m bench.mt_generation                      # Stage A config (random init), 1 thread
    python -m bench.mt_generation --ckpt <run>/checkpoints/merged.ckpt --threads 2 --name mt_generation_t2

For each context C in --contexts: the model's window is C, a 64-token prompt, greedy decoding
(top_k=1, so both paths must produce the same ids: checked) until the sequence holds C tokens.
- ttft_ms: prompt forward + first sample.
- ms_per_token: mean over the remaining C - 65 steps (without cache every step re-reads the
  whole sequence so far, 65..C ids).
- ms_per_token_full: mean of the last 16 steps, where the window is (nearly) full: the cost of
  continuous generation at that context.
Best of --repeats runs. Writes bench/results/<name>.json and .md.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

from bench.report import write_results
from lightning_modules.checkpoint import load_module
from lightning_modules.sampling import stream_tokens, top_k

CONF = Path(__file__).resolve().parents[1] / "conf"
PROMPT = 64


def stage_a_net(context: int, vocab_size: int = 280) -> torch.nn.Module:
    """The net of conf/model/music_transformer.yaml (Stage A defaults), random init, window `context`."""
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose("train", overrides=["experiment=mt_pretrain", f"data.seq_len={context}"])
    torch.manual_seed(0)
    return instantiate(cfg.model.net)(vocab_size=vocab_size).eval()


def time_decoding(net, context: int, use_cache: bool, seed: int = 0) -> dict:
    prompt = torch.randint(20, net.head.out_features, (1, PROMPT), generator=torch.Generator().manual_seed(seed))
    stamps, tokens = [time.perf_counter()], []
    with torch.inference_mode():
        for tok, _ in stream_tokens(net, prompt, context - PROMPT, [top_k(1)], use_cache=use_cache):
            stamps.append(time.perf_counter())
            tokens.append(int(tok[0]))
    steps = [b - a for a, b in zip(stamps[1:-1], stamps[2:])]
    return {"ttft_ms": 1e3 * (stamps[1] - stamps[0]), "ms_per_token": 1e3 * sum(steps) / len(steps),
            "ms_per_token_full": 1e3 * sum(steps[-16:]) / len(steps[-16:]), "tokens": tokens}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ckpt", default=None, help="a platform checkpoint (default: Stage A config, random init)")
    parser.add_argument("--contexts", type=int, nargs="+", default=[128, 256, 512])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--name", default="mt_generation")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rows = []
    for context in args.contexts:
        if args.ckpt:
            net = load_module(args.ckpt).decoder.eval()
            net.max_len = context
        else:
            net = stage_a_net(context)
        results = {}
        for use_cache in (True, False):
            runs = [time_decoding(net, context, use_cache) for _ in range(args.repeats)]
            results[use_cache] = min(runs, key=lambda r: r["ms_per_token"])
        same = results[True]["tokens"] == results[False]["tokens"]
        for use_cache in (True, False):
            r = results[use_cache]
            rows.append({"context": context, "kv_cache": use_cache, "ttft_ms": r["ttft_ms"],
                         "ms_per_token": r["ms_per_token"], "ms_per_token_full": r["ms_per_token_full"],
                         "new_tokens": context - PROMPT, "same_tokens": same})
        rows[-2]["speedup"] = rows[-1]["ms_per_token"] / rows[-2]["ms_per_token"]
        rows[-2]["speedup_full"] = rows[-1]["ms_per_token_full"] / rows[-2]["ms_per_token_full"]
        print(rows[-2], rows[-1], flush=True)
    source = args.ckpt or "conf/model/music_transformer.yaml (Stage A defaults, random init, vocab 280)"
    write_results(args.name, rows, notes=f"model: {source}; {PROMPT}-token prompt, greedy decoding to `context` "
                                         f"tokens; threads {args.threads}; best of {args.repeats}. speedup = "
                                         "ms/token without cache / with cache (mean over the run; `_full`: "
                                         "last 16 steps, window full).")


if __name__ == "__main__":
    main()
