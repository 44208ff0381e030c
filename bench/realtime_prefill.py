"""Worker-side cost of answering a chord: JamGenerator.prompt (prefill + first note sampled), per
backend and prompt-cache setting, on a real checkpoint, without MIDI ports (the KPI harness,
bench/realtime_kpi.py, measures the whole chain).

    python -m bench.realtime_prefill --ckpt <merged.ckpt>                       # role_conditioned
    python -m bench.realtime_prefill --ckpt <merged.ckpt> --rt 2 --cond-bars 1
    python -m bench.realtime_prefill --ckpt <token_lm.ckpt> --prompt remi

Plays the KPI harness's progression (one chord per bar, 16-bar segments at the given tempos)
and, after each prompt, generates the rest of the bar as the worker would. Reports prompt() time
p50 / p99 / max and the tokens put through the net per prompt; results in
bench/results/realtime_prefill_<tag>.{json,md}. --rt N runs at SCHED_FIFO N (as the worker does).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import numpy as np
import torch

from bench.realtime_kpi_devices import PROGRESSION
from bench.report import write_results
from datamodules.chords import parse_chord, voice_chord
from lightning_modules.checkpoint import load_module
from realtime.generation_worker import warm_up
from realtime.jam_generator import JamGenerator
from realtime.prompt_builder import PromptRequest, RemiPromptBuilder, RoleConditionedPromptBuilder
from realtime.remi_stream import RemiVocab
from realtime.step_model import build_step_model

ROLE = {"name": "solo", "min_pitch": 60, "max_pitch": 96, "max_notes_per_position": 1}


def requests(bpms: list[float], bars_per_segment: int = 16) -> list[PromptRequest]:
    out, bar = [], 0
    for bpm in bpms:
        for _ in range(bars_per_segment):
            label = PROGRESSION[bar % len(PROGRESSION)]
            pitches = tuple(voice_chord(parse_chord(label), low=48))
            out.append(PromptRequest(bar + 1, 4.0 * bar, pitches, 84, label, bpm))
            bar += 1
    return out


def measure(module, backend: str, cache: int, prompt: str, cond_bars: int, bpms, onnx_dir) -> dict:
    vocab = RemiVocab(module.tokenizer)
    options = {"onnx_path": os.path.join(onnx_dir, "model.onnx")} if backend != "torch" else {}
    model = build_step_model(module, backend=backend, num_threads=1, **options)
    if prompt == "role_conditioned":
        builder = RoleConditionedPromptBuilder(
            vocab, module.tokenizer, role=ROLE, role_token="lead", cond_bars=cond_bars
        )
    else:
        builder = RemiPromptBuilder(vocab, role=ROLE)
    gen = JamGenerator(model, vocab, builder, prompt_cache_size=cache, seed=0)
    warm_up(gen)  # clears the prompt cache too
    gen.counts = dict.fromkeys(gen.counts, 0)
    gen.prompt_cache.counts = dict.fromkeys(gen.prompt_cache.counts, 0)
    times, fed = [], []
    for request in requests(bpms):
        t0 = time.perf_counter()
        gen.prompt(request)
        times.append(1000 * (time.perf_counter() - t0))
        fed.append(gen.prompt_fed)
        while gen.decoder.horizon < request.beat + 4.0:  # the rest of the bar, as the worker would
            gen.step()
        gen.flush()
    t = np.asarray(times)
    return {
        "backend": backend,
        "prompt": prompt + (f" (cond_bars={cond_bars})" if prompt == "role_conditioned" else ""),
        "prompt_cache": cache,
        "prompts": len(t),
        "prompt_ms_p50": float(np.percentile(t, 50)),
        "prompt_ms_p99": float(np.percentile(t, 99)),
        "prompt_ms_max": float(t.max()),
        "tokens_fed_mean": float(np.mean(fed)),
        "tokens_fed_max": int(max(fed)),
        "cache_hits": gen.counts.get("prompt_cache_hits", 0),
        "cache_partial": gen.counts.get("prompt_cache_partial", 0),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--ckpt", required=True)
    parser.add_argument(
        "--prompt", default="role_conditioned", choices=["role_conditioned", "remi"]
    )
    parser.add_argument("--cond-bars", type=int, default=2)
    parser.add_argument("--backends", nargs="+", default=["torch", "onnx"])
    parser.add_argument(
        "--cache", nargs="+", type=int, default=[0, 32], help="prompt_cache_size values"
    )
    parser.add_argument("--bpm", nargs="+", type=float, default=[120, 140, 160, 180, 200])
    parser.add_argument(
        "--rt", type=int, default=0, help="SCHED_FIFO priority (0: normal scheduling)"
    )
    parser.add_argument("--tag", default="music_transformer")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    if args.rt:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(args.rt))
    module = load_module(args.ckpt)
    onnx_dir = tempfile.mkdtemp(prefix="musicplat_prefill_")
    rows = [
        measure(module, backend, cache, args.prompt, args.cond_bars, args.bpm, onnx_dir)
        for backend in args.backends
        for cache in args.cache
    ]
    load = os.getloadavg()
    notes = (
        f"checkpoint `{args.ckpt}` ({type(module.net).__name__}), JamGenerator.prompt() = prefill + "
        f"first note sampled, 1 thread, SCHED_FIFO {args.rt or 'off'}, load average after "
        f"{load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} (2 cores shared with other jobs)"
    )
    write_results(f"realtime_prefill_{args.tag}", rows, notes)


if __name__ == "__main__":
    main()
