"""Training throughput of the default small LM: Lightning loop vs a bare PyTorch loop.

Same model init, same batches (pre-materialised from the chorales DataModule), same optimizer.
    python -m bench.train_throughput [--steps 20] [--rounds 3] [--batch-size 16] [--seq-len 256]
"""
from __future__ import annotations

import argparse
import copy
import time
from pathlib import Path

import lightning as L
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from omegaconf import open_dict
from torch.utils.data import DataLoader

from bench.report import write_results
from callbacks.throughput import count_tokens

CONF = Path(__file__).resolve().parents[1] / "conf"


class Recorded(torch.utils.data.Dataset):
    def __init__(self, batches):
        self.batches = batches

    def __len__(self):
        return len(self.batches)

    def __getitem__(self, i):
        return self.batches[i]


def bare_loop(model, batches, lr: float) -> float:
    opt = torch.optim.AdamW(model.parameters(), lr=lr)
    model.train()
    start = time.perf_counter()
    for batch in batches:
        loss = model.net.loss(batch["input_ids"], batch["labels"])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
    return time.perf_counter() - start


class LoopTimer(L.Callback):
    """Times the training loop only: Trainer setup and teardown are not per-step overhead."""

    def on_train_start(self, trainer, pl_module):
        self.start = time.perf_counter()

    def on_train_end(self, trainer, pl_module):
        self.seconds = time.perf_counter() - self.start


def lightning_loop(model, batches, lr: float) -> float:
    model.optimizer_factory = lambda params: torch.optim.AdamW(params, lr=lr)
    model.scheduler_factory = None
    loader = DataLoader(Recorded(batches), batch_size=None, shuffle=False)
    trainer = L.Trainer(accelerator="cpu", devices=1, max_steps=len(batches), logger=False,
                        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                        gradient_clip_val=1.0, limit_val_batches=0, num_sanity_val_steps=0,
                        callbacks=[timer := LoopTimer()])
    trainer.fit(model, train_dataloaders=loader)
    return timer.seconds


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=20, help="steps per round")
    parser.add_argument("--rounds", type=int, default=3, help="alternating bare/Lightning rounds (load drifts)")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--seq-len", type=int, default=256)
    args = parser.parse_args()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose("train", overrides=[f"data.batch_size={args.batch_size}", f"data.seq_len={args.seq_len}",
                                          "data.augment=null"])
    with open_dict(cfg):
        cfg.paths.output_dir = cfg.paths.log_dir = "/tmp/musicplat_bench"
    L.seed_everything(0)
    dm = instantiate(cfg.data)
    dm.setup("fit")
    batches = []
    for batch in dm.train_dataloader():
        batches.append(batch)
        if len(batches) == args.steps + args.warmup:
            break
    tokens = sum(count_tokens(b) for b in batches[args.warmup:])
    base = instantiate(cfg.model, **dm.model_kwargs())
    models = {"bare PyTorch": (bare_loop, copy.deepcopy(base)), "Lightning": (lightning_loop, copy.deepcopy(base))}
    for loop, model in models.values():
        loop(model, batches[: args.warmup], 1e-3)  # warm up allocator / kernels
    seconds = {name: [] for name in models}
    for _ in range(args.rounds):  # alternate so both loops see the same machine load
        for name, (loop, model) in models.items():
            seconds[name].append(loop(model, batches[args.warmup:], 1e-3))
    rows = [{"loop": name, "steps": args.steps * args.rounds, "seconds": sum(s), "tokens_per_s": tokens * args.rounds / sum(s),
             "ms_per_step": 1000 * sum(s) / (args.steps * args.rounds)} for name, s in seconds.items()]
    ratios = sorted(lt / bt for lt, bt in zip(seconds["Lightning"], seconds["bare PyTorch"]))
    rows.append({"loop": "overhead ratio (Lightning / bare time), median of rounds", "seconds": ratios[len(ratios) // 2]})
    params = sum(p.numel() for p in base.parameters())
    write_results("train_throughput", rows, notes=f"TokenLM {params / 1e6:.2f}M params, batch {args.batch_size} x "
                                                  f"{args.seq_len} tokens, chorales, CPU.")


if __name__ == "__main__":
    main()
