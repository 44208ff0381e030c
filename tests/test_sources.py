"""Data sources on real inputs: folder, music21 chorales, POP909, WJazzD."""
from __future__ import annotations

import json
import time

import numpy as np
import pandas as pd
import pytest
import symusic

from datamodules.chords import parse_pop909_chord
from datamodules.sources import chorales as chorales_module
from datamodules.sources import wjazzd as wjazzd_module
from datamodules.sources.chorales import ChoraleSkip, ChoraleSource, chorale_to_score
from datamodules.sources.folder import MidiFolderSource
from datamodules.sources.pop909 import Pop909Source
from datamodules.sources.wjazzd import WJazzDSource, convert_solo, wjazzd_piece_id
from tests.midi_fixtures import make_score

TPQ = 480


# ---------------------------------------------------------------- folder
def test_folder_source_handles_messy_names(tmp_path):
    (tmp_path / "sub" / "deeper").mkdir(parents=True)
    for name in (" leading space.MID", "b.midi", "sub/c.Mid", "sub/deeper/d.mid"):
        make_score(n_bars=1).dump_midi(str(tmp_path / name))
    (tmp_path / "notes.txt").write_text("not midi")
    (tmp_path / "folder.mid").mkdir()  # a directory with a MIDI-looking name

    items = MidiFolderSource(tmp_path).items()
    assert [i.path.relative_to(tmp_path).as_posix() for i in items] == [
        " leading space.MID", "b.midi", "sub/c.Mid", "sub/deeper/d.mid"]
    assert [i.piece_id for i in items] == ["leading space", "b", "c", "d"]
    assert {i.source for i in items} == {"folder"}

    by_parent = MidiFolderSource(tmp_path, pattern="sub/**/*", piece_id_from="parent").items()
    assert [i.piece_id for i in by_parent] == ["sub", "deeper"]
    only_upper = MidiFolderSource(tmp_path, extensions=(".MID",)).items()
    assert len(only_upper) == 3  # matched case-insensitively: .MID, .Mid, .mid


def test_folder_source_missing_root_names_the_config_key(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"data\.root=") as err:
        MidiFolderSource(tmp_path / "nowhere").items()
    assert "nowhere" in str(err.value)
    with pytest.raises(ValueError, match="piece_id_from"):
        MidiFolderSource(tmp_path, piece_id_from="grandparent")


# ---------------------------------------------------------------- chorales
def test_chorales_materialise_once_then_reuse_manifest(tmp_path, monkeypatch):
    source = ChoraleSource(tmp_path, limit=3, show_progress=False)
    items = source.items()
    assert len(items) == 3
    assert [i.path.name for i in items] == sorted(i.path.name for i in items)
    for item in items:
        assert item.source == "chorales" and item.piece_id.startswith("bwv")
        score = symusic.Score(str(item.path))
        assert score.ticks_per_quarter == TPQ
        assert [t.name for t in score.tracks] == ["Soprano", "Alto", "Tenor", "Bass"]
        assert all(len(t.notes) > 20 for t in score.tracks)
        soprano, bass = score.tracks[0].notes, score.tracks[3].notes
        assert np.mean([n.pitch for n in soprano]) > np.mean([n.pitch for n in bass])
    manifest = json.loads(source.manifest_path.read_text())
    assert [e["status"] for e in manifest["entries"]] == ["written"] * 3

    def no_music21(*args, **kwargs):
        raise AssertionError("music21 must not run when the manifest covers the request")

    monkeypatch.setattr(chorales_module, "list_chorales", no_music21)
    monkeypatch.setattr(chorales_module, "chorale_to_score", no_music21)
    started = time.perf_counter()
    again = ChoraleSource(tmp_path, limit=3, show_progress=False).items()
    assert again == items
    assert ChoraleSource(tmp_path, limit=2, show_progress=False).items() == sorted(
        [i for i in items if i.path.name in {e["file"] for e in manifest["entries"][:2]}],
        key=lambda i: i.path.name)
    assert time.perf_counter() - started < 1.0


def test_chorale_with_bad_repeats_is_a_named_skip():
    with pytest.raises(ChoraleSkip) as skip:
        chorale_to_score("bach/bwv277")
    assert skip.value.reason == "repeat_expansion_failed"


def test_chorale_pickup_bar_lands_on_the_grid():
    score = chorale_to_score("bach/bwv269")  # 3/4 with a one-beat pickup
    assert (score.time_signatures[0].numerator, score.time_signatures[0].denominator) == (3, 4)
    first_onset = min(t.notes[0].time for t in score.tracks)
    assert first_onset == 2 * TPQ  # the pickup is beat 3 of an (empty) first bar


def test_chorales_bad_input_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="limit"):
        ChoraleSource(tmp_path, limit=0)
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    with pytest.raises(NotADirectoryError, match="cache_dir"):
        ChoraleSource(blocker)


# ---------------------------------------------------------------- POP909
@pytest.mark.realdata
def test_pop909_items_and_song_001_annotations(shared_data):
    source = Pop909Source(shared_data / "pop909", tracks=["MELODY", "PIANO"])
    items = source.items()
    assert len(items) == 909
    assert items[0].piece_id == "001" and items[-1].piece_id == "909"
    assert items[0].path.name == "001.mid"

    notes = source.annotations(items[0])
    beats = notes.beats
    assert beats.shape[1] == 3 and len(beats) > 100
    assert np.all(np.diff(beats[:, 0]) > 0)
    assert set(np.unique(beats[:, 1:])) <= {0.0, 1.0}
    bar_gaps = np.diff(np.flatnonzero(beats[:, 2]))
    assert np.median(bar_gaps) == 4  # song 001 is in 4/4
    assert 60 < 60 / np.median(np.diff(beats[:, 0])) < 200  # plausible tempo (bpm)

    chords = notes.chords
    assert all(start < end for start, end, _ in chords)
    assert all(abs(chords[i][1] - chords[i + 1][0]) < 1e-3 for i in range(len(chords) - 1))
    parsed = [parse_pop909_chord(label) for _, _, label in chords]
    assert all(c is not None or label == "N" for c, (_, _, label) in zip(parsed, chords))
    assert sum(c is not None for c in parsed) > 0.8 * len(parsed)
    assert notes.keys == [(pytest.approx(2.6703, abs=1e-3), pytest.approx(191.98, abs=1e-2),
                           "Gb:maj")]

    score = source.load_score(items[0])
    assert [t.name for t in score.tracks] == ["MELODY", "PIANO"]


def test_pop909_bad_input_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"data\.root"):
        Pop909Source(tmp_path / "no_pop909").items()
    with pytest.raises(FileNotFoundError, match="NNN/NNN.mid"):
        Pop909Source(tmp_path).items()  # exists but holds no songs
    with pytest.raises(ValueError, match="VOCALS"):
        Pop909Source(tmp_path, tracks=["VOCALS"])


# ---------------------------------------------------------------- WJazzD
SOLOS = ["ArtPepper_Stardust-1", "ArtPepper_Stardust-2", "SonnyRollins_BlueSeven-3"]


def _csvs(root, stem):
    return (root / "mcsv_melody" / f"{stem}_FINAL.csv",
            root / "mcsv_beat" / f"{stem}_FINAL_beattrack.csv")


@pytest.mark.realdata
@pytest.mark.parametrize("stem", SOLOS)
def test_wjazzd_solo_lands_on_the_beat_grid(shared_data, stem):
    melody_csv, beat_csv = _csvs(shared_data / "wjazzd", stem)
    melody, beats = pd.read_csv(melody_csv), pd.read_csv(beat_csv)
    score = convert_solo(melody_csv, beat_csv)
    tracks = {t.name: t for t in score.tracks}
    assert list(tracks) == ["SOLO", "CHORDS", "BASS"]
    solo = tracks["SOLO"].notes
    assert len(solo) == len(melody)
    assert len(tracks["CHORDS"].notes) > 0 and len(tracks["BASS"].notes) > 0
    assert [n.pitch for n in solo] == melody["pitch"].tolist()

    # Beat k of the beat track is quarter k (counted from the first bar line), so each
    # note sits at its annotated bar/beat plus its tatum fraction, give or take the
    # player's expressive timing (a tatum is a quantised position).
    row_of = {(bar, beat): k for k, (bar, beat) in enumerate(zip(beats["bar"], beats["beat"]))}
    first_bar_offset = int(beats["beat"].iloc[0]) - 1
    expected = np.array([
        (row_of[(bar, beat)] + first_bar_offset + (tatum - 1) / division) * TPQ
        for bar, beat, tatum, division in zip(melody["bar"], melody["beat"], melody["tatum"],
                                              melody["division"])])
    ticks = np.array([n.time for n in solo])
    # BlueSeven-3 starts 0.26 beat behind the beat: laid back, yet nearest its own beat
    assert abs(ticks[0] - expected[0]) < TPQ / 2
    numerator = int(str(beats["signature"].iloc[0]).strip("'\"").split("/")[0])
    assert set(beats["signature"]) == {beats["signature"].iloc[0]}  # bar lines every numerator
    position_in_bar = (ticks[0] / TPQ) % numerator
    annotated = melody["beat"][0] - 1 + (melody["tatum"][0] - 1) / melody["division"][0]
    assert abs(position_in_bar - annotated) < 0.5
    error = np.abs(ticks - expected)
    assert np.percentile(error, 95) < TPQ / 4 and error.max() <= TPQ

    # The tempo map keeps the recording's timing: seconds differ by one constant shift.
    seconds = np.array([n.time for n in score.to("second").tracks[0].notes])
    assert np.std(seconds - melody["onset"].to_numpy()) < 0.005

    assert score.time_signatures[0].numerator == numerator


@pytest.mark.realdata
def test_wjazzd_solo_without_bass_column_converts(shared_data):
    melody_csv, beat_csv = _csvs(shared_data / "wjazzd", "JohnColtrane_Countdown")
    assert "bass" not in pd.read_csv(beat_csv, nrows=1).columns
    score = convert_solo(melody_csv, beat_csv)
    assert [t.name for t in score.tracks] == ["SOLO", "CHORDS"]


@pytest.mark.realdata
def test_wjazzd_source_groups_takes_and_caches(shared_data, tmp_path, monkeypatch):
    real = shared_data / "wjazzd"
    root = tmp_path / "wjazzd"  # a small WJazzD-shaped tree of links to the real files
    (root / "mcsv_melody").mkdir(parents=True)
    (root / "mcsv_beat").mkdir()
    for stem in SOLOS + ["ArtPepper_Anthropology"]:
        melody_csv, beat_csv = _csvs(real, stem)
        (root / "mcsv_melody" / melody_csv.name).symlink_to(melody_csv)
        if stem != "ArtPepper_Anthropology":  # this one loses its beat track
            (root / "mcsv_beat" / beat_csv.name).symlink_to(beat_csv)

    source = WJazzDSource(root, tmp_path / "cache", show_progress=False)
    items = source.items()
    assert [i.piece_id for i in items] == ["ArtPepper_Anthropology", "ArtPepper_Stardust",
                                           "ArtPepper_Stardust", "SonnyRollins_BlueSeven"]
    entries = {e["name"]: e for e in json.loads(source.manifest_path.read_text())["entries"]}
    no_beats = entries["ArtPepper_Anthropology_FINAL.csv"]
    assert no_beats["status"] == "written" and not no_beats["beat_track"]
    assert no_beats["tracks"] == ["SOLO", "CHORDS"]  # grid and chords from the melody CSV

    def no_conversion(*args, **kwargs):
        raise AssertionError("cached solos must not be converted again")

    monkeypatch.setattr(wjazzd_module, "convert_solo", no_conversion)
    assert WJazzDSource(root, tmp_path / "cache", show_progress=False).items() == items


@pytest.mark.realdata
def test_wjazzd_piece_ids_group_takes_of_one_tune(shared_data):
    stems = [p.name.removesuffix("_FINAL.csv")
             for p in sorted((shared_data / "wjazzd" / "mcsv_melody").glob("*_FINAL.csv"))]
    ids = {stem: wjazzd_piece_id(stem) for stem in stems}
    assert len(stems) == 456
    same = [("ArtPepper_Stardust-1", "ArtPepper_Stardust-2"),
            ("SonnyRollins_BlueSeven-1", "SonnyRollins_BlueSeven-3"),
            ("JohnColtrane_Impressions_1961", "JohnColtrane_Impressions_1963"),
            ("CliffordBrown_I'llRememberApril", "CliffordBrown_I'llRememberApril_AlternateTake2")]
    for a, b in same:
        assert ids[a] == ids[b]
    assert ids["ArtPepper_Anthropology"] != ids["ChrisPotter_Anthropology"]
    assert ids["ChrisPotter_PopTune#1"] == "ChrisPotter_PopTune#1"  # "#1" is in the title
    assert ids["JohnColtrane_26=2"] == "JohnColtrane_26=2"
    assert wjazzd_piece_id("ArtPepper_Stardust-1", group_by="tune") == "Stardust"


def test_wjazzd_bad_input_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"data\.root"):
        WJazzDSource(tmp_path / "no_wjazzd", tmp_path / "cache").items()
    with pytest.raises(ValueError, match="group_by"):
        WJazzDSource(tmp_path, tmp_path / "cache", group_by="year")
