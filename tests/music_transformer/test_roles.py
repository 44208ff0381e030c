"""Role data sets on real pieces: preparation, integrity check, control tokens, windows, splits."""
import json

import numpy as np
import pytest
import symusic

from datamodules.role_datamodule import RoleDataModule
from datamodules.role_tokens import (RemiNoteDecoder, build_prompt, build_role_tokenizer, chord_notes_to_score,
                                     control_ids, ensure_control_tokens)
from datamodules.roles import check_role_dataset, prepare_role_dataset
from datamodules.tokenizer import build_tokenizer, decode_ids, encode_score, tokenizer_from_json, tokenizer_to_json
from datamodules.windows import IGNORE_INDEX
from tests.midi_fixtures import write_messy_folder

TOKENIZER = dict(kind="REMI", pitch_range=[21, 109], beat_res={"0_4": 8, "4_12": 4}, num_velocities=16,
                 use_tempos=False, use_time_signatures=False, use_programs=False)


@pytest.fixture(scope="module")
def tokenizer():
    return build_role_tokenizer(**TOKENIZER)


@pytest.fixture(scope="module")
def roles(tmp_path_factory, shared_data, platform_cache):
    out = tmp_path_factory.mktemp("roles")
    reports = {
        "wjazzd": prepare_role_dataset("wjazzd", "lead", out, platform_cache, shared_data / "wjazzd", limit=4,
                                       max_semitones=1, progress=False),
        "pop909": prepare_role_dataset("pop909", "lead", out, platform_cache, shared_data / "pop909", limit=1,
                                       max_semitones=1, progress=False),
        "chorales": prepare_role_dataset("chorales", "lead", out, platform_cache, limit=2, max_semitones=1,
                                         progress=False),
    }
    return out, reports


def test_prepared_samples_are_whole_and_transposed(roles):
    out, reports = roles
    assert {k: r.written for k, r in reports.items()} == {"wjazzd": 12, "pop909": 3, "chorales": 6}
    check = check_role_dataset(out, "lead")
    assert check.ok and check.samples == 21, check.problems
    folder = next((out / "lead").glob("wjazzd__*__t+0"))
    meta = json.loads((folder / "meta.json").read_text())
    assert {"source", "piece_id", "transposition", "tempo", "key", "bars", "target_notes",
            "conditioning_notes"} <= set(meta)
    assert meta["conditioning_tracks"] == ["CHORDS", "BASS"] and meta["target_tracks"] == ["SOLO"]
    up = folder.with_name(folder.name.replace("__t+0", "__t+1"))
    for name in ("target.mid", "conditioning.mid"):
        a, b = symusic.Score(str(folder / name)), symusic.Score(str(up / name))
        pa = np.concatenate([t.notes.numpy()["pitch"] for t in a.tracks])
        pb = np.concatenate([t.notes.numpy()["pitch"] for t in b.tracks])
        assert np.array_equal(pa + 1, pb)  # the same notes a semitone up
        assert len(a.tempos) == 1  # one tempo: ticks, bars and seconds line up
    assert json.loads((up / "meta.json").read_text())["key"] != meta["key"]
    chorale = json.loads(next((out / "lead").glob("chorales__*__t+0/meta.json")).read_text())
    assert chorale["target_tracks"] == ["Soprano"] and chorale["conditioning_tracks"] == ["Alto", "Tenor", "Bass"]


def test_broken_input_is_skipped_with_reasons_and_the_check_catches_damage(tmp_path, platform_cache):
    expected = write_messy_folder(tmp_path / "midi")  # {file name: the reason it must be skipped}
    report = prepare_role_dataset("folder", "lead", tmp_path / "roles", platform_cache, tmp_path / "midi",
                                  max_semitones=0, min_target_notes=4, progress=False)
    reasons = {s["sample"]: s["reason"] for s in report.skipped}
    assert reasons == {name.rsplit(".", 1)[0]: reason for name, reason in expected.items()}
    n_files = len(list((tmp_path / "midi").iterdir()))
    assert report.written == n_files - len(expected) >= 4  # incl. the name that starts with a space
    summary = json.loads((tmp_path / "roles" / "lead" / "prepare_folder.json").read_text())
    assert summary["skipped_by_reason"]["unreadable"] == 2
    assert check_role_dataset(tmp_path / "roles", "lead").ok
    victim = sorted((tmp_path / "roles" / "lead").glob("folder__valid_0*"))[0]
    (victim / "target.mid").write_bytes((victim / "target.mid").read_bytes()[:30])
    check = check_role_dataset(tmp_path / "roles", "lead", remove_bad=True)
    assert [p["sample"] for p in check.problems] == [victim.name] and not victim.exists()


def test_control_tokens_survive_the_checkpoint_round_trip(tokenizer):
    again = tokenizer_from_json(tokenizer_to_json(tokenizer))
    assert again.vocab == tokenizer.vocab and control_ids(again) == control_ids(tokenizer)
    plain = build_tokenizer(**TOKENIZER)
    rebuilt = ensure_control_tokens(plain)
    assert rebuilt.vocab == tokenizer.vocab and len(plain.config.special_tokens) == 4  # input untouched
    ids = control_ids(tokenizer)
    assert ids.tempo(50) == tokenizer["TEMPO_0"] and ids.tempo(125) == tokenizer["TEMPO_110"]
    assert ids.tempo(400) == tokenizer["TEMPO_220"]
    decoded = decode_ids(tokenizer, [ids.bos, ids.role("lead"), ids.sep, tokenizer["Bar_None"]])
    assert decoded.note_num() == 0  # control tokens never become notes


def test_prompt_from_chord_notes_and_note_stream(tokenizer, roles):
    ids = control_ids(tokenizer)
    chords = chord_notes_to_score([[48, 52, 55, 59], [50, 53, 57, 60]], tempo=100)
    prompt = build_prompt(tokenizer, chords, role="lead", tempo=100, n_bars=3)
    assert prompt[:3] == [ids.bos, ids.role("lead"), ids.tempo(100)] and prompt[-1] == ids.sep
    assert prompt.count(ids.bar) == 3  # two chord bars + one empty bar
    body = decode_ids(tokenizer, prompt)
    assert sorted(n.pitch for n in body.tracks[0].notes) == [48, 50, 52, 53, 55, 57, 59, 60]
    out, _ = roles
    solo = symusic.Score(str(next((out / "lead").glob("wjazzd__*__t+0")) / "target.mid"))
    stream_ids = encode_score(tokenizer, solo)
    decoder = RemiNoteDecoder(tokenizer)
    streamed = [n for i in stream_ids for n in decoder.feed(int(i))]
    whole = decode_ids(tokenizer, stream_ids)
    notes = whole.tracks[0].notes
    assert len(streamed) == len(notes) > 100
    tpq = whole.tpq
    assert all(round(s.onset_beats * tpq) == n.time and s.pitch == n.pitch for s, n in zip(streamed, notes))


def test_windows_mask_the_prefix_and_keep_pieces_in_one_split(tokenizer, roles, platform_cache):
    out, _ = roles
    dm = RoleDataModule(str(out), "lead", tokenizer, str(platform_cache), seq_len=128, batch_size=4,
                        sources=["wjazzd"])
    dm.setup()
    split_of = {}
    for name, dataset in dm.datasets.items():
        for sample_idx, _, _ in dataset.windows:
            piece = dataset.samples[sample_idx].meta["piece_id"]
            assert split_of.setdefault(piece, name) == name  # no piece in two splits
    assert set(split_of.values()) == {"train", "val", "test"}
    ids = control_ids(tokenizer)
    train = dm.datasets["train"]
    for index in range(0, len(train), max(1, len(train) // 25)):
        item = train[index]
        x, y = item["input_ids"].numpy(), item["labels"].numpy()
        sep = int(np.flatnonzero(x == ids.sep)[0])
        assert x[0] == ids.bos and x[1] == ids.role("lead")
        assert (y[:sep] == IGNORE_INDEX).all() and y[sep] != IGNORE_INDEX  # loss from the first target id on
        prefix, target, bars = train.parts(index)
        assert np.count_nonzero(np.asarray(prefix) == ids.bar) == np.count_nonzero(bars == ids.bar)
        assert target[-1] in (ids.bar, ids.eos)
    held = dm.heldout(2)
    assert held and all(h["meta"]["transposition"] == 0 and h["prompt"][-1] == ids.sep for h in held)
