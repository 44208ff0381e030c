"""Map fractal state dicts between the flat layout and the recursive one.

    flat:       levels.0.*           levels.1.*                      ...  levels.{D-1}.* (output)
    recursive:  root.generator.*     root.next_level.generator.*     ...  root.next_level...next_level.*

Keys outside the fractal net (loss weighting, ...) are kept as they are.

    python -m lightning_modules.fractal_migration old.ckpt new.ckpt --to recursive
"""
from __future__ import annotations

import argparse
import re
from pathlib import Path

import torch

FLAT, RECURSIVE = "levels.", "root."
_FLAT_KEY = re.compile(r"^(\d+)\.(.*)$")


def _flat_depth(state: dict, flat_prefix: str) -> int:
    indices = [int(m.group(1)) for k in state if k.startswith(flat_prefix)
               and (m := _FLAT_KEY.match(k[len(flat_prefix):]))]
    if not indices:
        raise KeyError(f"no '{flat_prefix}N.*' keys: not a flat fractal state dict")
    return max(indices) + 1


def flat_to_recursive(state: dict, flat_prefix: str = FLAT, recursive_prefix: str = RECURSIVE) -> dict:
    depth = _flat_depth(state, flat_prefix)
    out = {}
    for key, value in state.items():
        match = _FLAT_KEY.match(key[len(flat_prefix):]) if key.startswith(flat_prefix) else None
        if match is None:
            out[key] = value
            continue
        level, rest = int(match.group(1)), match.group(2)
        node = "generator." if level < depth - 1 else ""  # the last level is the output itself
        out[recursive_prefix + "next_level." * level + node + rest] = value
    return out


def recursive_to_flat(state: dict, flat_prefix: str = FLAT, recursive_prefix: str = RECURSIVE) -> dict:
    out = {}
    for key, value in state.items():
        if not key.startswith(recursive_prefix):
            out[key] = value
            continue
        rest, level = key[len(recursive_prefix):], 0
        while rest.startswith("next_level."):
            rest, level = rest[len("next_level."):], level + 1
        rest = rest.removeprefix("generator.")
        out[f"{flat_prefix}{level}.{rest}"] = value
    return out


def migrate_checkpoint(src: str | Path, dst: str | Path, to: str = "recursive") -> Path:
    """Rewrite a Lightning checkpoint's state_dict into the other layout (everything else kept)."""
    ckpt = torch.load(src, map_location="cpu", weights_only=False)
    state = ckpt.get("state_dict", ckpt)
    mapped = flat_to_recursive(state) if to == "recursive" else recursive_to_flat(state)
    if "state_dict" in ckpt:
        ckpt["state_dict"] = mapped
    else:
        ckpt = mapped
    dst = Path(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    torch.save(ckpt, dst)
    return dst


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("src")
    parser.add_argument("dst")
    parser.add_argument("--to", choices=["recursive", "flat"], default="recursive")
    args = parser.parse_args(argv)
    print(migrate_checkpoint(args.src, args.dst, args.to))


if __name__ == "__main__":
    main()
