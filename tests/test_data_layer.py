import numpy as np
import pytest
import symusic

from datamodules.augment import TokenAugmenter, transpose, _value_table
from datamodules.midi_datamodule import MidiDataModule
from datamodules.midi_io import MidiSkip, load_score
from datamodules.sources.base import MidiItem
from datamodules.sources.folder import MidiFolderSource
from datamodules.splits import split_by_piece
from datamodules.token_cache import TokenCache
from datamodules.tokenizer import (build_tokenizer, decode_ids, encode_score, tokenizer_from_json,
                                   tokenizer_hash, tokenizer_to_json)
from datamodules.windows import EpochShuffleSampler, TokenWindowDataset
from tests.midi_fixtures import make_score, write_messy_folder


@pytest.fixture(scope="module")
def tokenizer():
    return build_tokenizer("REMI", beat_res={"0_4": 8, "4_12": 4}, num_velocities=32, use_tempos=True,
                           num_tempos=32, tempo_range=[40, 250])


def test_messy_folder_loads_valid_and_reports_each_skip(tmp_path, tokenizer):
    expected = write_messy_folder(tmp_path / "midi")
    items = MidiFolderSource(tmp_path / "midi").items()
    report = TokenCache(tmp_path / "cache", tokenizer).build(items, progress=False)
    loaded = sorted(f.item.path.name for f in report.files)
    assert loaded == sorted([" leading space.MID", "valid_0.mid", "valid_1.mid", "valid_2.mid"])
    skipped = {path.rsplit("/", 1)[-1]: reason for path, reason, _ in report.skipped}
    assert skipped == expected
    summary = report.summary()
    assert summary["read"] == 4 and summary["skipped"] == 5
    assert summary["skipped_by_reason"] == {"unreadable": 2, "empty_file": 1, "no_notes": 1, "too_long": 1}


def test_token_cache_second_build_tokenizes_nothing(tmp_path, tokenizer):
    write_messy_folder(tmp_path / "midi")
    items = MidiFolderSource(tmp_path / "midi").items()
    first = TokenCache(tmp_path / "cache", tokenizer).build(items, progress=False)
    second = TokenCache(tmp_path / "cache", tokenizer).build(items, progress=False)
    assert first.tokenized == len(items) and second.tokenized == 0
    assert second.cache_hits == len(items)
    cache = TokenCache(tmp_path / "cache", tokenizer)
    ids = cache.ids()
    assert isinstance(ids, np.memmap)
    for a, b in zip(first.files, second.files):
        assert (a.offset, a.length) == (b.offset, b.length)
        expected = encode_score(tokenizer, load_score(a.item.path))
        np.testing.assert_array_equal(ids[a.offset:a.offset + a.length], expected)


def test_interrupted_build_drops_unindexed_tail(tmp_path, tokenizer):
    write_messy_folder(tmp_path / "midi")
    items = MidiFolderSource(tmp_path / "midi").items()
    cache = TokenCache(tmp_path / "cache", tokenizer)
    report = cache.build(items, progress=False)
    with open(cache.tokens_path, "ab") as f:  # ids written after the last index save
        f.write(np.arange(50, dtype=np.int32).tobytes())
    again = TokenCache(tmp_path / "cache", tokenizer).build(items, progress=False)
    assert again.tokenized == 0
    assert cache.tokens_path.stat().st_size == sum(f.length for f in report.files) * 4


def test_encode_decode_round_trip_preserves_notes(tokenizer):
    score = make_score(n_bars=4, tracks=2)
    decoded = decode_ids(tokenizer, encode_score(tokenizer, score))

    def notes(s):  # (onset in quarters, duration in quarters, pitch), velocity bins checked apart
        return sorted((n.time / s.tpq, n.duration / s.tpq, n.pitch) for t in s.tracks for n in t.notes)

    assert notes(decoded) == notes(score)
    in_vel = sorted(n.velocity for t in score.tracks for n in t.notes)
    out_vel = sorted(n.velocity for t in decoded.tracks for n in t.notes)
    assert max(abs(a - b) for a, b in zip(in_vel, out_vel)) <= 4  # 32 velocity bins


def test_tokenizer_survives_checkpoint_serialisation(tokenizer):
    clone = tokenizer_from_json(tokenizer_to_json(tokenizer))
    assert clone.vocab == tokenizer.vocab and tokenizer_hash(clone) == tokenizer_hash(tokenizer)
    other = build_tokenizer("REMI", num_velocities=16)
    assert tokenizer_hash(other) != tokenizer_hash(tokenizer)


def test_bad_tokenizer_kind_names_the_config_key():
    with pytest.raises(ValueError, match="data.tokenizer.kind"):
        build_tokenizer("NotATokenizer")


def test_missing_file_is_a_named_skip(tmp_path):
    with pytest.raises(MidiSkip) as err:
        load_score(tmp_path / "nope.mid")
    assert err.value.reason == "missing"


def test_transpose_shifts_pitches_and_stays_in_range(tokenizer):
    ids = encode_score(tokenizer, make_score())
    pitch_ids, pitch_values = _value_table(tokenizer, "Pitch")
    up = transpose(ids, pitch_ids, pitch_values, 5)
    before = pitch_values[np.searchsorted(pitch_ids, ids[np.isin(ids, pitch_ids)])]
    after = pitch_values[np.searchsorted(pitch_ids, up[np.isin(up, pitch_ids)])]
    np.testing.assert_array_equal(after, before + 5)
    np.testing.assert_array_equal(up[~np.isin(ids, pitch_ids)], ids[~np.isin(ids, pitch_ids)])
    huge = transpose(ids, pitch_ids, pitch_values, 100)  # clamped at the top of the range
    top = pitch_values[np.searchsorted(pitch_ids, huge[np.isin(huge, pitch_ids)])]
    assert top.max() == pitch_values.max() and np.all(np.diff(top - before) == 0)


def test_augmenter_is_reproducible_and_changes_only_its_token_types(tokenizer):
    ids = encode_score(tokenizer, make_score())
    aug = TokenAugmenter(tokenizer, transpose_p=1.0, velocity_p=1.0, stretch_p=1.0)
    a = aug(ids, np.random.default_rng(3))
    b = aug(ids, np.random.default_rng(3))
    np.testing.assert_array_equal(a, b)
    types = lambda seq: [tokenizer[int(i)].split("_")[0] for i in seq]  # noqa: E731
    assert types(a) == types(ids)  # same token types in the same places
    assert not np.array_equal(a, ids)


def test_split_by_piece_is_deterministic_and_never_leaks():
    pieces = [f"song{i // 3}" for i in range(300)]  # 3 versions per piece
    split = split_by_piece(pieces, 0.1, 0.1, seed=7)
    assert split == split_by_piece(list(reversed(pieces)), 0.1, 0.1, seed=7)
    assert set(split.values()) == {"train", "val", "test"}
    counts = {s: sum(v == s for v in split.values()) for s in ("train", "val", "test")}
    assert counts == {"train": 80, "val": 10, "test": 10}
    assert split != split_by_piece(pieces, 0.1, 0.1, seed=8)


def test_windows_cover_files_and_regenerate_each_epoch(tmp_path, tokenizer):
    ids = np.arange(10, 1010, dtype=np.int32)  # two "files" of 600 and 400 ids
    path = tmp_path / "tokens.bin"
    ids.tofile(path)
    ds = TokenWindowDataset(path, [(0, 600), (600, 400)], seq_len=128, bos_id=1, eos_id=2, pad_id=0,
                            stride=64, jitter=True, seed=0)
    first = ds[0]
    assert first["input_ids"][0] == 1 and first["input_ids"][1] == 10  # BOS then the file start
    assert (first["labels"][:-1] == first["input_ids"][1:]).all()
    epoch = {"now": 0}
    sampler = EpochShuffleSampler(ds, seed=0, epoch_fn=lambda: epoch["now"])
    keys0 = list(sampler)
    e0 = [ds.window(i, e).tolist() for e, i in sorted(keys0, key=lambda k: k[1])]
    epoch["now"] = 1
    keys1 = list(sampler)
    e1 = [ds.window(i, e).tolist() for e, i in sorted(keys1, key=lambda k: k[1])]
    assert e0 != e1 and [i for _, i in keys0] != [i for _, i in keys1]  # new slices, new order
    epoch["now"] = 0
    assert list(sampler) == keys0
    for w in e0 + e1:  # a window never mixes two files
        body = [t for t in w if t >= 10]
        assert all(b - a == 1 for a, b in zip(body, body[1:]))
    last = ds.window(len(ds) - 1)
    assert 2 in last.tolist()  # EOS closes the last file


def test_datamodule_end_to_end_on_messy_folder(tmp_path, tokenizer):
    write_messy_folder(tmp_path / "midi", n_valid=6)
    dm = MidiDataModule(MidiFolderSource(tmp_path / "midi"), tokenizer, str(tmp_path / "cache"),
                        seq_len=64, batch_size=4, val_frac=0.2, test_frac=0.2,
                        summary_dir=str(tmp_path / "out"))
    dm.prepare_data()
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    assert batch["input_ids"].shape == (4, 64) and batch["labels"].shape == (4, 64)
    assert sum(dm.split_sizes.values()) == 7 and dm.split_sizes["test"] >= 1
    assert (tmp_path / "out" / "data_summary.json").exists()
    assert dm.model_kwargs()["vocab_size"] == len(tokenizer)
