"""End-to-end: `python -m metrics.eval` on folders mixing good, corrupt and empty MIDI."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
from metrics_fixtures import FOUR_BARS, build_score

REPO = Path(__file__).resolve().parents[2]


def _write(score, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    score.dump_midi(str(path))


def test_eval_command_end_to_end(tmp_path):
    gen, ref = tmp_path / "gen", tmp_path / "ref"
    for i in range(3):
        shifted = [(t, d, p + i) for t, d, p in FOUR_BARS]
        _write(build_score(shifted), gen / f"good_{i}.mid")
        _write(build_score(shifted[::2] + [(64, 4, 60 + i)]), ref / "sub" / f"real_{i}.MID")
    (gen / "corrupt.mid").write_bytes(b"MThd\x00\x00\x00\x06garbage")
    (gen / "zero.mid").write_bytes(b"")
    _write(build_score([]), gen / "silent.mid")
    _write(build_score([], drum_notes=[(0, 4, 36)]), gen / "drums_only.mid")
    (gen / "notes.txt").write_text("not a MIDI file, not picked up")
    run_dir = tmp_path / "hydra_run"
    result = subprocess.run(
        [sys.executable, "-m", "metrics.eval", f"generated={gen}", f"reference={ref}",
         "metrics=fast", f"hydra.run.dir={run_dir}"],
        cwd=REPO, capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stderr[-3000:]

    table = pd.read_csv(run_dir / "per_file.csv", keep_default_na=False)
    assert len(table) == 10
    status = dict(zip(table["file"], table["status"]))
    reasons = dict(zip(table["file"], table["reason"]))
    assert status["good_0.mid"] == "ok" and status["sub/real_2.MID"] == "ok"
    assert status["corrupt.mid"] == "skipped" and reasons["corrupt.mid"].startswith("unreadable")
    assert reasons["zero.mid"] == "empty_file"
    assert reasons["silent.mid"] == "no_notes"
    assert reasons["drums_only.mid"].startswith("no_pitched_notes")
    good = table[table["status"] == "ok"]
    assert (good["chord_source"] == "recogniser").all()
    assert float(good[good["file"] == "good_0.mid"]["GS"].iloc[0]) == 370 / 384

    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["sets"]["generated"]["scored"] == 3
    assert summary["sets"]["generated"]["skipped"] == 4
    assert summary["sets"]["generated"]["skip_reasons"]["empty_file"] == 1
    assert summary["sets"]["reference"]["scored"] == 3
    assert summary["sets"]["generated"]["metrics"]["pitch_range"]["mean"] == 12
    distances = summary["distances"]["H4"]
    assert 0.0 <= distances["overlap_area"] <= 1.0 and distances["kl"] >= 0
    markdown = (run_dir / "summary.md").read_text()
    assert "| H4 |" in markdown and "corrupt.mid" in markdown
    png = run_dir / "histograms.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000


def test_eval_without_reference_and_explicit_out_dir(tmp_path):
    gen = tmp_path / "gen"
    _write(build_score(FOUR_BARS), gen / "a.mid")
    _write(build_score(FOUR_BARS[:5]), gen / "b.mid")
    out = tmp_path / "out"
    result = subprocess.run(
        [sys.executable, "-m", "metrics.eval", f"generated={gen}", f"out_dir={out}",
         "metrics=[H1,GS,note_density]", f"hydra.run.dir={tmp_path / 'run'}"],
        cwd=REPO, capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert list(summary["sets"]) == ["generated"] and summary["distances"] == {}
    assert summary["metrics"] == ["H1", "GS", "note_density"]
    assert (out / "histograms.png").is_file()
