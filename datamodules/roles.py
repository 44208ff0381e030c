"""Role data sets: `data/roles/<role>/<sample_id>/{conditioning.mid, target.mid, meta.json}`.

    python -m datamodules.roles source=wjazzd                      # lead, +-6 semitones
    python -m datamodules.roles source=pop909 transpose.all_keys=true out_dir=/data/roles
    python -m datamodules.roles source=folder root=/my/midi split_pitch=60
    python -m datamodules.roles source=wjazzd check_only=true      # integrity check only

Every transposition of a piece is a sample; meta.json records source, piece_id (the split
key: a tune and its transpositions never straddle splits), transposition, tempo, key, bars
and note counts. Both files get one tempo (the piece's median), so their ticks, bars and
seconds line up. Broken or empty pieces are skipped with a logged reason (summary in
`<out_dir>/<role>/prepare_<source>.json`); the integrity check runs at the end.
"""
from __future__ import annotations

import json
import logging
import math
import os
import shutil
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import hydra
import numpy as np
import symusic
from omegaconf import DictConfig
from rich.progress import Progress

from datamodules.midi_io import MidiSkip, load_score
from datamodules.role_sources import RoleCandidate, RoleSkip, candidates, estimate_key, transpose_key

log = logging.getLogger(__name__)

CONDITIONING, TARGET, META = "conditioning.mid", "target.mid", "meta.json"


def transpositions(max_semitones: int = 6, all_keys: bool = False) -> list[int]:
    """Shifts to write: -max..+max (0 first), or the 12 keys -5..+6 when all_keys."""
    shifts = range(-5, 7) if all_keys else range(-max_semitones, max_semitones + 1)
    return sorted(shifts, key=lambda s: (abs(s), s))


def flatten_tempo(score: symusic.Score) -> float:
    """Replace the tempo map by its tick-weighted median (in place); return that qpm."""
    tempos = sorted(score.tempos, key=lambda t: t.time)
    if not tempos:
        qpm = 120.0
    else:
        times = np.array([t.time for t in tempos] + [max(score.end(), tempos[-1].time + 1)], dtype=np.float64)
        weights = np.diff(times).clip(min=0) + 1e-9
        values = np.array([t.qpm for t in tempos])
        order = np.argsort(values)
        cum = np.cumsum(weights[order])
        qpm = float(values[order][np.searchsorted(cum, cum[-1] / 2)])
    score.tempos = [symusic.Tempo(0, qpm)]
    return qpm


def n_bars(score: symusic.Score) -> int:
    """Bars (from tick 0, following the time signatures; 4/4 without any) holding [0, end)."""
    end = score.end()
    if end <= 0:
        return 0
    signatures = sorted((ts.time, ts.numerator, ts.denominator) for ts in score.time_signatures)
    if not signatures or signatures[0][0] > 0:
        signatures.insert(0, (0, 4, 4))
    bars = 0
    for index, (start, numerator, denominator) in enumerate(signatures):
        if start >= end:
            break
        stop = min(signatures[index + 1][0], end) if index + 1 < len(signatures) else end
        bar_length = max(1, round(numerator * score.tpq * 4 / denominator))
        bars += math.ceil((stop - start) / bar_length)
    return bars


def pitch_bounds(*scores: symusic.Score) -> tuple[int, int]:
    pitches = [n.pitch for s in scores for t in s.tracks for n in t.notes]
    return min(pitches), max(pitches)


@dataclass
class PrepareReport:
    written: int = 0
    existing: int = 0
    pieces: int = 0
    skipped: list[dict] = field(default_factory=list)

    def summary(self) -> dict:
        return {"written": self.written, "already_present": self.existing, "pieces": self.pieces,
                "skipped": len(self.skipped),
                "skipped_by_reason": dict(Counter(s["reason"] for s in self.skipped)),
                "skips": self.skipped}


def _write_sample(folder: Path, cond: symusic.Score, target: symusic.Score, meta: dict) -> None:
    """All three files or none: written into a temp folder, then renamed into place."""
    tmp = folder.with_name(folder.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    cond.dump_midi(str(tmp / CONDITIONING))
    target.dump_midi(str(tmp / TARGET))
    (tmp / META).write_text(json.dumps(meta, indent=1))
    shutil.rmtree(folder, ignore_errors=True)
    os.replace(tmp, folder)


def prepare_piece(candidate: RoleCandidate, source: str, role: str, role_dir: Path,
                  shifts: list[int], pitch_range: tuple[int, int], min_target_notes: int,
                  min_conditioning_notes: int, overwrite: bool, report: PrepareReport) -> None:
    stem = f"{source}__{candidate.name}"
    wanted = [role_dir / f"{stem}__t{s:+d}" for s in shifts]
    if not overwrite and all((w / META).is_file() for w in wanted):
        report.existing += len(wanted)
        return
    pair = candidate.load()
    for part, minimum, reason in ((pair.target, min_target_notes, "too_few_target_notes"),
                                  (pair.conditioning, min_conditioning_notes, "too_few_conditioning_notes")):
        if part.note_num() < minimum:
            raise RoleSkip(reason, f"{part.note_num()} < {minimum}")
    qpm = flatten_tempo(pair.conditioning)
    pair.target.tempos = [symusic.Tempo(0, qpm)]
    key = pair.key or estimate_key(pair.conditioning, pair.target)
    bars = max(n_bars(pair.conditioning), n_bars(pair.target))
    low, high = pitch_bounds(pair.conditioning, pair.target)
    signature = pair.conditioning.time_signatures[0] if len(pair.conditioning.time_signatures) else None
    for shift, folder in zip(shifts, wanted):
        if low + shift < pitch_range[0] or high + shift > pitch_range[1]:
            report.skipped.append({"sample": folder.name, "reason": "transposition_out_of_range",
                                   "detail": f"pitches {low}..{high} {shift:+d} leave {pitch_range}"})
            continue
        if not overwrite and (folder / META).is_file():
            report.existing += 1
            continue
        meta = {"sample_id": folder.name, "piece_id": f"{source}:{candidate.piece_id}", "source": source,
                "source_file": str(candidate.path), "role": role, "transposition": shift,
                "tempo": round(qpm, 3), "key": transpose_key(key, shift),
                "time_signature": f"{signature.numerator}/{signature.denominator}" if signature else "4/4",
                "bars": bars, "tpq": pair.target.tpq,
                "target_notes": pair.target.note_num(), "conditioning_notes": pair.conditioning.note_num(),
                "target_tracks": [t.name for t in pair.target.tracks],
                "conditioning_tracks": [t.name for t in pair.conditioning.tracks]}
        _write_sample(folder, pair.conditioning.shift_pitch(shift), pair.target.shift_pitch(shift), meta)
        report.written += 1


def prepare_role_dataset(source: str, role: str, out_dir: str | Path, cache_dir: str | Path,
                         root: str | None = None, limit: int | None = None, max_semitones: int = 6,
                         all_keys: bool = False, pitch_range: tuple[int, int] = (21, 108),
                         min_target_notes: int = 8, min_conditioning_notes: int = 4,
                         include_bridge: bool = False, split_pitch: int = 60, overwrite: bool = False,
                         progress: bool = True) -> PrepareReport:
    """Write every (piece, transposition) sample of `source` for `role`; return the report."""
    role_dir = Path(out_dir) / role
    role_dir.mkdir(parents=True, exist_ok=True)
    shifts = transpositions(max_semitones, all_keys)
    found = candidates(source, role, root, str(cache_dir), limit, include_bridge, split_pitch)
    names = Counter(c.name for c in found)
    seen: Counter = Counter()
    report = PrepareReport(pieces=len(found))
    with Progress(disable=not progress, transient=True) as bar:
        task = bar.add_task(f"{source} -> roles/{role}", total=len(found))
        for candidate in found:
            bar.advance(task)
            if names[candidate.name] > 1:  # same stem in two folders: keep both, apart
                seen[candidate.name] += 1
                candidate = RoleCandidate(f"{candidate.name}-{seen[candidate.name]}", candidate.piece_id,
                                          candidate.path, candidate.load)
            try:
                prepare_piece(candidate, source, role, role_dir, shifts, tuple(pitch_range),
                              min_target_notes, min_conditioning_notes, overwrite, report)
            except (RoleSkip, MidiSkip) as skip:
                log.warning("skipped %s: %s %s", candidate.path, skip.reason, skip.detail)
                report.skipped.append({"sample": candidate.name, "reason": skip.reason, "detail": skip.detail})
            except Exception as err:  # a hostile file must not end a long preparation
                log.warning("skipped %s: %s", candidate.path, err)
                report.skipped.append({"sample": candidate.name, "reason": "error",
                                       "detail": f"{type(err).__name__}: {err}"[:300]})
    (role_dir / f"prepare_{source}.json").write_text(json.dumps(report.summary(), indent=1))
    return report


@dataclass
class IntegrityReport:
    samples: int = 0
    problems: list[dict] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def check_sample(folder: Path, max_length_mismatch_bars: int) -> str | None:
    """None when the sample is whole, else what is wrong with it."""
    try:
        meta = json.loads((folder / META).read_text())
    except (OSError, json.JSONDecodeError) as err:
        return f"meta.json unreadable ({err})"
    parts = {}
    for name, expected in ((CONDITIONING, meta.get("conditioning_notes")), (TARGET, meta.get("target_notes"))):
        try:
            parts[name] = load_score(folder / name)
        except MidiSkip as skip:
            return f"{name}: {skip.reason} {skip.detail}".strip()
        if parts[name].note_num() != expected:
            return f"{name}: {parts[name].note_num()} notes, meta says {expected}"
    bars = {name: n_bars(score) for name, score in parts.items()}
    if max(bars.values()) != meta.get("bars"):
        return f"bars {bars} do not match meta bars {meta.get('bars')}"
    # a part may rest through an intro or outro, but it may not outlast its conditioning
    if bars[TARGET] > bars[CONDITIONING] + max_length_mismatch_bars:
        return f"target runs more than {max_length_mismatch_bars} bars past its conditioning: {bars}"
    if parts[TARGET].start() >= parts[CONDITIONING].end():
        return "target starts after the conditioning ends (misaligned timelines)"
    return None


def check_role_dataset(root: str | Path, role: str, max_length_mismatch_bars: int = 4,
                       remove_bad: bool = False) -> IntegrityReport:
    """Every sample readable, non-empty, matching its meta, the target within its conditioning's span
    (at most `max_length_mismatch_bars` past its end)."""
    report = IntegrityReport()
    role_dir = Path(root) / role
    for folder in sorted(p for p in role_dir.iterdir() if p.is_dir()) if role_dir.is_dir() else []:
        report.samples += 1
        problem = "unfinished write (.tmp)" if folder.name.endswith(".tmp") else \
            check_sample(folder, max_length_mismatch_bars)
        if problem:
            report.problems.append({"sample": folder.name, "problem": problem})
            log.warning("role sample %s: %s%s", folder, problem, " (removed)" if remove_bad else "")
            if remove_bad:
                shutil.rmtree(folder)
    return report


@hydra.main(version_base="1.3", config_path="../conf", config_name="roles")
def main(cfg: DictConfig) -> None:
    if not cfg.check_only:
        root = cfg.root if cfg.root is not None else cfg.default_roots.get(cfg.source)
        report = prepare_role_dataset(
            cfg.source, cfg.role, cfg.out_dir, cfg.cache_dir, root, cfg.limit, cfg.transpose.max_semitones,
            cfg.transpose.all_keys, tuple(cfg.pitch_range), cfg.min_target_notes, cfg.min_conditioning_notes,
            cfg.include_bridge, cfg.split_pitch, cfg.overwrite)
        summary = report.summary()
        print(f"{cfg.source} -> {Path(cfg.out_dir) / cfg.role}: {summary['written']} written, "
              f"{summary['already_present']} already present, {summary['skipped']} skipped "
              f"{summary['skipped_by_reason']}")
    check = check_role_dataset(cfg.out_dir, cfg.role, cfg.max_length_mismatch_bars, cfg.remove_bad)
    print(f"integrity: {check.samples} samples, {len(check.problems)} problems")
    if not check.ok and not cfg.remove_bad:
        raise SystemExit(f"{len(check.problems)} broken samples under {Path(cfg.out_dir) / cfg.role}, "
                         f"first: {check.problems[0]}; rerun with remove_bad=true to drop them")


if __name__ == "__main__":
    main()
