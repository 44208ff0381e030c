"""The fold table reads each run's test_results.json, survives a damaged csv and names what is missing."""
import json

from lightning_modules.percepiano_report import main, pair_of, read_run


def _run(dir_, r2=None, csv_rows=None, ckpt=True, epochs=3):
    (dir_ / "checkpoints").mkdir(parents=True)
    ckpt_path = dir_ / "checkpoints" / f"best-epoch={epochs - 1:02d}-r2=0.3000.ckpt"
    if ckpt:
        ckpt_path.write_bytes(b"not a real checkpoint")
    if r2 is not None:
        hist = [{"epoch": e, "step": 100 * (e + 1), "val_r2": 0.1 * e, "epoch_seconds": 200.0 + e} for e in range(epochs)]
        (dir_ / "test_results.json").write_text(json.dumps({"r2": r2, "r2_per_dim": {}, "ckpt_path": str(ckpt_path),
                                                            "history": hist}))
    if csv_rows is not None:
        (dir_ / "csv").mkdir()
        (dir_ / "csv" / "metrics.csv").write_text("epoch,step,val/r2,test/r2,train/epoch_seconds\n" + "\n".join(csv_rows) + "\n")


def test_test_results_json_wins_over_a_damaged_csv(tmp_path):
    # a later duplicate run overwrote the csv: one epoch, no test; the json of the real run still says it all
    _run(tmp_path / "han" / "fold0", r2=0.31, csv_rows=["0,10,0.05,,99"])
    r = read_run(tmp_path / "han" / "fold0")
    assert r["status"] == "done" and r["test_r2"] == 0.31 and r["source"] == "test_results.json"
    assert r["epochs"] == 3 and r["steps"] == 300 and r["best_val_r2"] == 0.2 and r["epoch_seconds"] == 201.0
    assert r["best_epoch"] == 2


def test_missing_pieces_are_named(tmp_path):
    _run(tmp_path / "a", csv_rows=["0,10,0.05,,99", "0,10,,0.12,"])  # an old run: test only in the csv
    assert read_run(tmp_path / "a")["status"] == "done" and read_run(tmp_path / "a")["test_r2"] == 0.12
    _run(tmp_path / "b", csv_rows=["0,10,0.05,,99"])  # trained, never tested
    assert read_run(tmp_path / "b")["status"].startswith("no test result; best checkpoint present")
    _run(tmp_path / "c", ckpt=False)
    assert "no checkpoint" in read_run(tmp_path / "c")["status"]


def test_report_table_means_and_pairs(tmp_path):
    for k, (h, b) in enumerate([(0.30, 0.20), (0.40, 0.10)]):
        _run(tmp_path / "percepiano_han_cpu" / f"fold{k}", r2=h)
        _run(tmp_path / "percepiano_baseline_cpu" / f"fold{k}", r2=b)
    _run(tmp_path / "percepiano_baseline_cpu" / "fold2", csv_rows=["0,10,0.05,,99"])
    table = main([f"logs_dir={tmp_path}", "ablation=false"])
    report = json.loads((tmp_path / "report.json").read_text())
    assert abs(report["means"]["percepiano_han_cpu"]["mean_test_r2"] - 0.35) < 1e-9
    base = report["means"]["percepiano_baseline_cpu"]
    assert abs(base["mean_test_r2"] - 0.15) < 1e-9 and base["folds_done"] == 2  # the untested fold 2 is left out
    assert "no test result" in table and pair_of("percepiano_han_cpu") == "percepiano_baseline_cpu"
    assert pair_of("percepiano_baseline") is None
