"""Seconds per PercePiano training step (forward + backward) on real batches: the PackedSequence
LSTM path vs the fused padded path (lightning_modules/components/lstm_runner.py), HAN and the
7-layer baseline, one torch thread; plus the DataLoader's own time per batch.

    OMP_NUM_THREADS=1 python -m bench.percepiano_step_speed [--batches 6] [--fold 0] [--profile]

--profile also prints torch.profiler's top operators for one step of each model and path.

Both paths run on the same batches, alternating, so load from other jobs hits them alike.
"""
from __future__ import annotations

import argparse
import copy
import os
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from bench.report import write_results
from datamodules.percepiano.datamodule import PercePianoDataModule
from lightning_modules.components.han import HANEncoder, VirtuosoNetSingle

ROOT = Path(__file__).resolve().parents[1]


def step(net: torch.nn.Module, batch: dict) -> float:
    start = time.perf_counter()
    logits = net(batch["x"], batch["lengths"], batch["beat"], batch["measure"], batch["voice"])
    net.zero_grad(set_to_none=True)
    F.mse_loss(torch.sigmoid(logits), batch["labels"]).backward()
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--batches", type=int, default=6)
    ap.add_argument("--fold", type=int, default=0)
    ap.add_argument("--profile", action="store_true")
    ap.add_argument("--root", default=str(ROOT.parent / "shared" / "data" / "percepiano"))
    args = ap.parse_args()
    torch.set_num_threads(1)
    cache = os.environ.get("MUSICPLAT_CACHE", str(Path.home() / ".cache" / "musicplat"))
    dm = PercePianoDataModule(root=args.root, cache_dir=cache, fold=args.fold)
    dm.setup()
    loader = dm.train_dataloader()
    t0 = time.perf_counter()
    batches = [b for _, b in zip(range(args.batches + 1), loader)]
    load_s = (time.perf_counter() - t0) / len(batches)
    notes = [int(b["lengths"].sum()) for b in batches[1:]]
    rows = []
    for name, cls in (("HAN", HANEncoder), ("7-layer Bi-LSTM baseline", VirtuosoNetSingle)):
        torch.manual_seed(0)
        nets = {"packed": cls(batches[0]["x"].shape[-1], lstm_impl="packed")}
        nets["padded"] = copy.deepcopy(nets["packed"])
        nets["padded"].lstm_impl = "padded"
        times = {k: [] for k in nets}
        for net in nets.values():
            net.train()
            step(net, batches[0])  # warm-up
        for batch in batches[1:]:
            for impl, net in nets.items():
                times[impl].append(step(net, batch))
        if args.profile:
            from torch.profiler import ProfilerActivity, profile

            for impl, net in nets.items():
                with profile(activities=[ProfilerActivity.CPU]) as prof:
                    step(net, batches[1])
                print(f"== {name}, lstm_impl={impl}, {notes[0]} notes ==")
                print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=8))
        per = {k: sum(v) / len(v) for k, v in times.items()}
        for impl in nets:
            rows.append({"model": name, "lstm_impl": impl, "s_per_batch": per[impl],
                         "notes_per_s": sum(notes) / sum(times[impl]),
                         "speedup_vs_packed": per["packed"] / per[impl],
                         "epoch_s_estimate": per[impl] * len(loader)})
    rows.append({"model": "DataLoader (collate, slices)", "lstm_impl": "-", "s_per_batch": load_s})
    notes_txt = (f"Fold {args.fold} training batches (batch 8 slices, slice_len 400): {len(notes)} timed batches, "
                 f"{sum(notes) / len(notes):.0f} notes per batch on average; forward + backward of the full-size nets, "
                 f"one torch thread, train mode; `epoch_s_estimate` = s/batch x {len(loader)} batches per epoch "
                 f"(training only). Load average at the end: {os.getloadavg()[0]:.1f} (2 cores, shared).")
    write_results("percepiano_step_speed", rows, notes_txt)


if __name__ == "__main__":
    main()
