"""End to end like a user: train HAN and baseline with train.py, score a performance with
infer.py, aggregate folds (and the hierarchy ablation) with the report command."""
import json
import re
from pathlib import Path

import pytest

from tests.percepiano.helpers import TINY_HAN, TINY_MODEL, TINY_RUN, percepiano_root
from tests.spine import run_cli

pytestmark = [pytest.mark.slow, pytest.mark.realdata]


def test_train_infer_report(shared_data, tmp_path, platform_cache):
    root = percepiano_root(shared_data)
    runs = tmp_path / "runs"
    for exp, tiny in (("percepiano_baseline", TINY_MODEL), ("percepiano_han", TINY_HAN)):
        run_cli("train.py", [f"experiment={exp}", "data.fold=1", f"data.root={root}",
                             f"hydra.run.dir={runs / exp / 'fold1'}", *TINY_RUN, *tiny], platform_cache)
        ckpts = [p.name for p in (runs / exp / "fold1" / "checkpoints").glob("best-*.ckpt")]
        assert len(ckpts) == 1 and re.fullmatch(r"best-epoch=\d\d-r2=-?\d+\.\d{4}\.ckpt", ckpts[0]), ckpts
        tested = json.loads((runs / exp / "fold1" / "test_results.json").read_text())
        assert Path(tested["ckpt_path"]).name == ckpts[0] and len(tested["r2_per_dim"]) == 19
        assert [h["epoch"] for h in tested["history"]] == [0, 1]
        summary = json.loads((runs / exp / "fold1" / "percepiano_data_summary.json").read_text())
        assert summary["usable"] == 119 and summary["score_matched_fraction"]["mean"] > 0.9

    best = next((runs / "percepiano_han" / "fold1" / "checkpoints").glob("best-*.ckpt"))
    perf = root / "performances" / "Beethoven_WoO80_var3_8bars_26_2.mid"
    # '=' in the checkpoint name: quote the value for Hydra's override parser
    proc = run_cli("infer.py", [f"ckpt_path='{best}'", f"+performance={perf}",
                                f"+score_midi={root / 'score_midi' / 'Beethoven_WoO80_var3_8bars_Score_2.mid'}",
                                f"+score_xml={root / 'score_xml' / 'Beethoven_WoO80_var3_8bars_Score_2.musicxml'}",
                                f"out_dir={tmp_path / 'infer'}"], platform_cache)
    scores = dict(re.findall(r"^(\S+): ([0-9.]+)$", proc.stdout, flags=re.MULTILINE))
    assert len(scores) == 19 and "Interpretation_Unsatisfactory/doubtful_Convincing" in scores
    assert all(0 <= float(v) <= 1 for v in scores.values())

    proc = run_cli("-m lightning_modules.percepiano_report", [f"logs_dir={runs}", f"data_root={root}",
                                                              f"cache_dir={platform_cache}"], platform_cache)
    report = json.loads((runs / "report.json").read_text())
    assert report["means"]["percepiano_han"]["folds_done"] == 1
    assert "delta (hierarchy)" in proc.stdout and list(report["ablation"]) == ["percepiano_han/1"]
    assert report["runs"]["percepiano_han"]["1"]["source"] == "test_results.json"
