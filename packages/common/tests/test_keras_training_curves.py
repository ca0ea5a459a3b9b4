"""mammo_common.keras.training.curves: history rows as DVCLive files, with no repository side effects.

The training run itself (the harness writing ``out_dir/dvclive`` every epoch, through a
resume) is tested in test_keras_training.py; these tests need neither Keras nor TensorFlow.
"""

from __future__ import annotations

import math
import os
import subprocess
from pathlib import Path

import pytest

from mammo_common.keras.training.curves import (
    CURVES_DIR,
    curve_names,
    read_curves,
    read_summary,
    write_curves,
)

ROWS = [
    {"epoch": 1, "phase": 1, "phase_name": "head", "phase_epoch": 1, "loss": 0.9, "auc": 0.5,
     "val_loss": 0.8, "val_auc": 0.55, "lr": 1e-3, "seconds": 2.5},
    {"epoch": 2, "phase": 1, "phase_name": "head", "phase_epoch": 2, "loss": 0.7, "auc": 0.6,
     "val_loss": float("nan"), "val_auc": 0.6, "lr": 1e-3, "seconds": 2.4},
    {"epoch": 3, "phase": 2, "phase_name": "all", "phase_epoch": 1, "loss": 0.5, "auc": 0.7,
     "val_loss": 0.6, "val_auc": 0.7, "lr": 1e-4, "seconds": 2.6},
]


def test_every_quantity_is_a_curve_with_the_global_epoch_as_step(tmp_path):
    folder = write_curves(tmp_path, ROWS)
    assert folder == tmp_path / CURVES_DIR
    curves = read_curves(tmp_path)
    # bookkeeping columns (epoch, seconds, phases) are not curves
    assert sorted(curves) == ["auc", "loss", "lr", "val_auc", "val_loss"]
    assert curve_names(ROWS) == ["loss", "auc", "val_loss", "val_auc", "lr"]
    for name, points in curves.items():
        assert [step for step, _ in points] == [1, 2, 3], name
        for (_, got), row in zip(points, ROWS, strict=True):
            want = row[name]
            assert (math.isnan(got) and math.isnan(want)) or got == want, name
    summary = read_summary(tmp_path)
    assert summary["step"] == 3
    assert summary["loss"] == 0.5 and summary["val_auc"] == 0.7


def test_rewriting_replaces_the_folder(tmp_path):
    write_curves(tmp_path, ROWS)
    (tmp_path / CURVES_DIR / "stale.txt").write_text("x")
    write_curves(tmp_path, ROWS[:1])
    assert not (tmp_path / CURVES_DIR / "stale.txt").exists()
    assert read_curves(tmp_path)["loss"] == [(1, 0.9)]
    assert read_summary(tmp_path)["step"] == 1
    # nothing staged is left beside it
    assert sorted(p.name for p in tmp_path.iterdir()) == [CURVES_DIR]


def test_no_repository_side_effects(tmp_path, monkeypatch):
    """No dvc.yaml, no `dvc init`, no experiment, no Studio post, not even with a token."""
    import dvclive.live
    import dvclive.studio

    # the overrides in curves.py name these methods: fail loudly if DVCLive renames them
    assert callable(dvclive.live.Live._init_dvc) and callable(dvclive.live.Live._init_studio)

    def no_network(*args, **kwargs):
        raise AssertionError("posted to DVC Studio")

    monkeypatch.setattr(dvclive.live, "post_to_studio", no_network)
    monkeypatch.setattr(dvclive.studio, "post_to_studio", no_network)
    monkeypatch.setenv("DVC_STUDIO_TOKEN", "not-a-token")
    monkeypatch.delenv("DVC_STUDIO_OFFLINE", raising=False)
    repo = tmp_path / "repo"
    repo.mkdir()
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    monkeypatch.chdir(repo)
    write_curves(repo / "models" / "m", ROWS)
    found = sorted(p.relative_to(repo).as_posix() for p in repo.rglob("*")
                   if ".git" not in p.relative_to(repo).parts)
    assert found == [
        "models", "models/m", "models/m/dvclive", "models/m/dvclive/metrics.json",
        "models/m/dvclive/plots", "models/m/dvclive/plots/metrics",
        *[f"models/m/dvclive/plots/metrics/{n}.tsv"
          for n in sorted(["auc", "loss", "lr", "val_auc", "val_loss"])],
    ]
    assert "DVC_STUDIO_OFFLINE" not in os.environ  # the guard is restored


@pytest.mark.parametrize("rows", [[], [{"seconds": 1.0}]])
def test_no_epoch_no_curve(tmp_path: Path, rows):
    write_curves(tmp_path, rows)
    assert read_curves(tmp_path) == {}
