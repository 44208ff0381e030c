"""Score <-> roll on the beat grid, windows, and the fractal DataModule on real POP909."""
from __future__ import annotations

import numpy as np
import pytest
import symusic

from datamodules.fractal_datamodule import FractalDataModule
from datamodules.piano_roll import (
    beat_fraction,
    cut_window,
    piece_chroma,
    roll_to_score,
    score_to_roll,
    window_starts,
)
from datamodules.sources.pop909 import Pop909Source


def _score(notes, tpq=480, qpm=100.0):
    score = symusic.Score(tpq)
    score.tempos.append(symusic.Tempo(0, qpm))
    track = symusic.Track("t", 0, False)
    for time, dur, pitch, vel in notes:
        track.notes.append(symusic.Note(time, dur, pitch, vel))
    score.tracks.append(track)
    return score


def test_tick_grid_round_trip_keeps_onsets_velocities_durations():
    notes = [(0, 480, 60, 90), (120, 240, 64, 70), (960, 120, 67, 40), (960, 480, 48, 100)]
    roll = score_to_roll(_score(notes), steps_per_beat=4, pitch_low=21, n_pitches=88)
    assert roll.velocity.shape == (9, 88)
    assert roll.velocity[0, 60 - 21] == 90 and roll.duration[0, 60 - 21] == 4
    assert roll.velocity[1, 64 - 21] == 70 and roll.duration[1, 64 - 21] == 2
    back = roll_to_score(roll.velocity, roll.duration, 4, 21, qpm=100.0)
    got = sorted((n.time, n.duration, n.pitch, n.velocity) for n in back.tracks[0].notes)
    assert got == sorted(notes)
    assert piece_chroma(back)[0] == 1.0  # C: the longest pitch class


def test_beat_annotations_define_the_grid_under_rubato():
    # beats drift (0.5 s then 0.7 s apart); notes sit on the annotated beats and an 8th after
    beats = np.array([0.0, 0.5, 1.0, 1.7, 2.4, 3.1])
    assert beat_fraction(np.array([1.35, 3.8]), beats).tolist() == pytest.approx([2.5, 6.0])
    score = symusic.Score(480)
    score.tempos.append(symusic.Tempo(0, 120.0))  # 1 beat = 0.5 s in ticks: the ticks alone would drift
    track = symusic.Track("t", 0, False)
    for seconds, pitch in ((1.0, 60), (1.35, 62), (2.4, 64)):
        track.notes.append(symusic.Note(int(seconds * 960), 100, pitch, 80))
    score.tracks.append(track)
    roll = score_to_roll(score, 4, 21, 88, beat_times=beats, downbeat_times=np.array([0.5]))
    onsets = {(int(t), int(p) + 21) for t, p in zip(*np.nonzero(roll.velocity))}
    assert onsets == {(8, 60), (10, 62), (16, 64)}
    assert roll.first_downbeat == 4


def test_windows_start_on_bars_and_pad_short_songs():
    roll = score_to_roll(_score([(0, 480, 60, 90), (480 * 40, 480, 62, 90)]), 4, 21, 88)
    starts = window_starts(roll, 64, 32, 16)
    assert starts == [0, 32, 64, 96]
    vel, _ = cut_window(roll, 128, 64)
    assert vel.shape == (64, 88) and vel[160 - 128, 62 - 21] == 90
    short = score_to_roll(_score([(0, 480, 60, 90)]), 4, 21, 88)
    assert window_starts(short, 64, 32, 16) == [0]
    assert cut_window(short, 0, 64)[0].shape == (64, 88)


def test_pop909_datamodule_windows(shared_data, tmp_path):
    source = Pop909Source(shared_data / "pop909")
    dm = FractalDataModule(source, str(tmp_path), window_bars=4, limit_files=3, batch_size=2,
                           train_on_all=True, max_windows_per_song=2)
    dm.setup()
    assert len(dm.songs) == 3 and len(dm.datasets["train"]) == 6
    batch = next(iter(dm.train_dataloader()))
    assert batch["velocity"].shape == (2, 64, 88) and batch["chroma"].shape == (2, 12)
    assert int((batch["velocity"] > 0).sum()) > 20
    assert dm.model_kwargs()["window_steps"] == 64 and 40 < dm.model_kwargs()["qpm"] < 200
    again = FractalDataModule(source, str(tmp_path), window_bars=4, limit_files=3)
    again.setup()  # from the cache
    assert np.array_equal(again.songs[1].roll.velocity, dm.songs[1].roll.velocity)


def test_pop909_onsets_sit_on_the_annotated_beat_grid(shared_data):
    """POP909's MIDI follows the audio: on the annotated beats its onsets fall on 16ths
    (mean distance to the grid ~0.01 step), on the file's tick grid they do not."""
    song = shared_data / "pop909" / "001"
    score = symusic.Score(str(song / "001.mid"))
    beats = np.loadtxt(song / "beat_midi.txt")[:, 0]
    seconds = np.concatenate([t.notes.numpy()["time"] for t in score.to("second").tracks])
    ticks = np.concatenate([t.notes.numpy()["time"] for t in score.tracks]) / score.tpq * 4
    on_beats = beat_fraction(seconds, beats) * 4
    beat_error = np.mean(np.abs(on_beats - np.rint(on_beats)))
    tick_error = np.mean(np.abs(ticks - np.rint(ticks)))
    assert beat_error < 0.05 and tick_error > 4 * beat_error
