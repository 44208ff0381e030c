"""Performance features, score features and alignment on made-up and real files."""
import numpy as np
import pytest

from datamodules.midi_io import MidiSkip
from datamodules.percepiano.alignment import align, dtw_path
from datamodules.percepiano.catalog import parse_item, pianist_id
from datamodules.percepiano.features import PERF_COLUMNS, load_performance
from datamodules.percepiano.note_table import FEATURE_NAMES, extract_segment
from datamodules.percepiano.score_features import XML_COLUMNS, XmlCache, metric_grid, score_notes
from tests.percepiano.helpers import percepiano_root, write_score_and_performance


def test_performance_features_pedals_ioi(tmp_path):
    _, perf_path, _, _ = write_score_and_performance(tmp_path)
    perf = load_performance(perf_path)
    m = perf.matrix()
    assert m.shape == (len(perf), len(PERF_COLUMNS))
    assert perf.onset[0] == 0 and np.all(np.diff(perf.onset) >= 0)
    # chord notes share their chord's ioi; the first chord's ioi is 0
    assert perf.ioi[0] == 0 and np.all(perf.ioi >= 0)
    # sustain goes down at 0, up at 3 quarters * 1.3 * 0.5 s, down at twice that
    seconds_per_tick = 0.5 / 480
    up = 3 * 480 * 1.3 * seconds_per_tick - 20 * seconds_per_tick
    assert np.all(perf.sustain_onset[perf.onset < up - 0.05] == 0)
    inside = (perf.onset > up + 0.05) & (perf.onset < 2 * up - 0.05)
    assert inside.any() and np.all(perf.sustain_onset[inside] == 1.0)
    assert np.allclose(perf.soft_onset, 100 / 127)


def test_metric_grid_measures_and_beats():
    onsets = np.array([0.0, 1.0, 2.5, 3.0, 5.9, 6.0])
    measure, beat, pos, ts = metric_grid(onsets, [(0.0, 3, 4), (6.0, 6, 8)], 9.0)
    assert measure.tolist() == [0, 0, 0, 1, 1, 2]
    assert beat.tolist() == [0, 1, 2, 3, 5, 6]  # 6/8 after quarter 6: dotted-quarter beats
    assert pos[2] == pytest.approx(2.5 / 3) and ts[-1].tolist() == [6, 8]


def test_dtw_path_is_monotone_and_complete():
    cost = np.random.default_rng(0).random((7, 11))
    path = dtw_path(cost)
    assert path[0] == (0, 0) and path[-1] == (6, 10)
    steps = np.diff(np.array(path), axis=0)
    assert np.all(steps >= 0) and np.all(steps.sum(1) >= 1) and np.all(steps <= 1)


def test_alignment_recovers_known_matching(tmp_path):
    score_path, perf_path, notes, drop = write_score_and_performance(tmp_path)
    table = extract_segment(perf_path, score_path, None, None)
    al = table.alignment
    assert al.matched_fraction == pytest.approx((len(notes) - 1) / len(notes))
    perf = load_performance(perf_path)
    matched = al.score_to_perf >= 0
    sn = score_notes(score_path, None, None)
    assert np.all(perf.pitch[al.score_to_perf[matched]] == sn.pitch[matched])
    assert 99 not in perf.pitch[al.score_to_perf[matched]]  # the wrong note stays unmatched
    assert table.features.shape == (len(notes), len(FEATURE_NAMES))
    tempo = table.features[:, FEATURE_NAMES.index("log_local_tempo")]
    # played at 120 qpm * (1 / 1.3) in seconds: local tempo ~ 92 qpm
    assert np.exp(np.median(tempo[matched])) == pytest.approx(120 / 1.3, rel=0.05)
    art = table.features[matched, FEATURE_NAMES.index("articulation")]
    assert np.median(art) == pytest.approx(np.log(0.8), abs=0.05)
    assert table.beat.max() == 11 and table.measure.max() == 3


def test_alignment_of_a_different_piece_is_poor():
    rng = np.random.default_rng(1)
    score_pitch, perf_pitch = rng.integers(60, 72, 80), rng.integers(40, 52, 80)
    assert align(score_pitch, np.arange(80.0), perf_pitch).matched_fraction == 0.0


def test_real_file_names_and_pianists(shared_data):
    root = percepiano_root(shared_data)
    messy = [p for p in (root / "performances").iterdir() if p.name.startswith(" ")]
    assert messy, "the data README promises a file name with a leading space"
    item = parse_item(messy[0])
    assert item.key == item.key.strip() and item.pianist == 2  # a test pianist
    assert pianist_id("Beethoven_WoO80_var3_8bars_26_1") == 11 and pianist_id("x_Score2_3") == -1


@pytest.mark.realdata
def test_real_score_features_join_musicxml(shared_data, tmp_path):
    root = percepiano_root(shared_data)
    name = "Schubert_D935_no.3_4bars_Score_13"
    sn = score_notes(root / "score_midi" / f"{name}.mid", root / "score_xml" / f"{name}.musicxml", XmlCache(tmp_path))
    assert sn.xml_matched.mean() > 0.9 and sn.measure.max() == 3  # 4 bars of 2/2
    assert sn.xml[:, XML_COLUMNS.index("in_slur")].sum() > 0  # the MusicXML's slurs arrive
    assert len(list((tmp_path).rglob("*.pkl"))) == 1  # cached for the next parse


def test_unusable_score_midi_raises_named_skip(tmp_path):
    (tmp_path / "empty.mid").write_bytes(b"")
    with pytest.raises(MidiSkip, match="empty_file"):
        score_notes(tmp_path / "empty.mid", None, None)
