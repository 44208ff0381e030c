"""Small PercePiano fixtures made in code, and the tiny model overrides for real-data runs."""
from __future__ import annotations

from pathlib import Path

import symusic

TINY_MODEL = ["model.net.note_size=16", "model.net.hidden=16", "model.net.contracted=32",
              "model.net.final_heads=2"]
TINY_HAN = TINY_MODEL + ["model.net.num_attention_head=2"]
TINY_RUN = ["data.limit_files=120", "data.batch_size=4", "trainer.max_epochs=2", "trainer.limit_train_batches=3",
            "trainer.limit_val_batches=1.0", "trainer.limit_test_batches=1.0", "logger=csv",
            "trainer.log_every_n_steps=1", "callbacks.gradient_monitor.every_n_steps=1"]


def percepiano_root(shared_data: Path) -> Path:
    root = shared_data / "percepiano"
    if not (root / "performances").is_dir():
        import pytest

        pytest.skip("../shared/data/percepiano absent: real-data test skipped")
    return root


def write_score_and_performance(folder: Path, stretch: float = 1.3, drop: int = 5, extra_pitch: int = 99):
    """A 4-bar 3/4 score MIDI (two staves) and a 'performance' of it: slower, jittered, with one
    score note left out and one wrong extra note. Returns (score path, performance path)."""
    folder.mkdir(parents=True, exist_ok=True)
    tpq = 480
    score = symusic.Score(tpq)
    score.tempos.append(symusic.Tempo(0, 100.0))
    score.time_signatures.append(symusic.TimeSignature(0, 3, 4))
    right, left = symusic.Track(name="RH"), symusic.Track(name="LH")
    melody = [72, 74, 76, 77, 79, 77, 76, 74, 72, 71, 72, 74]
    for i, p in enumerate(melody):
        right.notes.append(symusic.Note(i * tpq, tpq, p, 80))
    for bar in range(4):
        left.notes.append(symusic.Note(bar * 3 * tpq, 3 * tpq, 48, 70))
        left.notes.append(symusic.Note(bar * 3 * tpq, 3 * tpq, 55, 70))
    score.tracks.extend([right, left])
    score_path = folder / "piece_4bars_Score_1.mid"
    score.dump_midi(str(score_path))

    perf = symusic.Score(tpq)
    perf.tempos.append(symusic.Tempo(0, 120.0))
    track = symusic.Track(name="perf")
    notes = sorted([(n.time, n.duration, n.pitch) for n in right.notes] + [(n.time, n.duration, n.pitch) for n in left.notes])
    for k, (t, d, p) in enumerate(notes):
        if k == drop:
            continue
        jitter = (k % 3 - 1) * 10
        track.notes.append(symusic.Note(int(t * stretch) + jitter + 20, int(d * stretch * 0.8), p, 60 + k))
    track.notes.append(symusic.Note(int(5.5 * tpq * stretch), 100, extra_pitch, 50))
    track.controls.append(symusic.ControlChange(0, 64, 0))
    track.controls.append(symusic.ControlChange(int(3 * tpq * stretch), 64, 127))
    track.controls.append(symusic.ControlChange(int(6 * tpq * stretch), 64, 0))
    track.controls.append(symusic.ControlChange(0, 67, 100))
    perf.tracks.append(track)
    perf_path = folder / "piece_4bars_7_1.mid"
    perf.dump_midi(str(perf_path))
    return score_path, perf_path, notes, drop
