"""train.py -> infer.py (sampling, inpainting, target_levels, chroma_from) -> migration CLI."""
from __future__ import annotations

import json

import pytest
import symusic
import torch

from lightning_modules.fractal_migration import main as migrate
from tests.fractal.test_piano_roll_and_data import _score
from tests.spine import run_cli

TINY = ["data.limit_files=2", "data.window_bars=2", "data.batch_size=2", "model.output.d_model=32",
        "model.output.max_notes=4", "model.level_specs.bars.d_model=16", "model.level_specs.beats.d_model=16",
        "model.level_specs.steps.d_model=16", "trainer.max_epochs=2", "trainer.check_val_every_n_epoch=1",
        "logger=none"]


@pytest.mark.slow
def test_train_infer_and_migrate_from_the_command_line(shared_data, tmp_path, platform_cache):
    run = tmp_path / "run"
    run_cli("train.py", ["experiment=fractal_overfit", f"hydra.run.dir={run}", *TINY], platform_cache,
            env={"OMP_NUM_THREADS": "1"})
    ckpt = run / "checkpoints" / "last.ckpt"
    assert ckpt.is_file()
    reference = tmp_path / "ref.mid"
    _score([(480 * i, 240, 60 + i % 12, 80) for i in range(8)]).dump_midi(str(reference))
    out = tmp_path / "gen"
    run_cli("infer.py", [f"ckpt_path={ckpt}", f"out_dir={out}", "n_samples=2", f"+fractal.reference={reference}",
                         "+fractal.inpaint_bars=[1,2]", f"+fractal.chroma_from={reference}"], platform_cache)
    outputs = json.loads((out / "outputs.json").read_text())
    assert len(outputs["midi"]) == 2 and len(outputs["levels"]) == 2
    first_bar = sorted((n.time, n.pitch) for n in symusic.Score(outputs["midi"][0]).tracks[0].notes
                       if n.time < 4 * 480)
    assert first_bar == [(480 * i, 60 + i) for i in range(4)]  # the kept context, note for note
    out2 = tmp_path / "gen2"
    run_cli("infer.py", [f"ckpt_path={ckpt}", f"out_dir={out2}", f"+fractal.reference={reference}",
                         "+fractal.target_levels=[2,3]"], platform_cache)
    assert json.loads((out2 / "outputs.json").read_text())["midi"]
    flat, back = tmp_path / "flat.ckpt", tmp_path / "back.ckpt"
    migrate([str(ckpt), str(flat), "--to", "flat"])
    migrate([str(flat), str(back), "--to", "recursive"])
    a, b = torch.load(ckpt, weights_only=False)["state_dict"], torch.load(back, weights_only=False)["state_dict"]
    assert any(k.startswith("levels.3.") for k in torch.load(flat, weights_only=False)["state_dict"])
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
