"""``mammo run``: the installed stages found through entry points, end to end at tiny size."""

from __future__ import annotations

import json
from importlib.metadata import entry_points

import numpy as np
from conftest import write_models
from PIL import Image
from typer.testing import CliRunner

from mammo_common.cli import app
from mammo_common.oneshot import discover_stages


def test_stages_are_discovered_through_entry_points():
    names = {ep.name for ep in entry_points(group="mammo.stages")}
    assert {"breastseg", "massseg", "massclass"} <= names
    plugins, notes = discover_stages()
    assert [p.name for p in plugins] == ["breastseg", "massseg", "massclass"]
    assert notes == []


def test_mammo_run_all_stages(models_dir, mammogram, tmp_path):
    out, report = tmp_path / "overlay.png", tmp_path / "run.json"
    result = CliRunner().invoke(app, [
        "run", str(mammogram), "--models", str(models_dir), "--out", str(out),
        "--json", str(report), "--work-size", "64x64",
    ])
    assert result.exit_code == 0, result.output
    assert "#1" in result.output and "diagnosis:" in result.output
    summary = json.loads(report.read_text())
    assert summary["stages_run"] == ["breastseg", "massseg", "massclass"]
    assert summary["model_ids"]["massclass"] == ["massclass/tinycnn/fold_1"]
    assert len(summary["masses"]) == 1
    mass = summary["masses"][0]
    assert 0.0 <= mass["probability"] <= 1.0 and mass["label"] in ("benign", "malignant")
    assert summary["diagnosis"]["label"] == mass["label"]
    rgb = np.asarray(Image.open(out))
    # the matplotlib overlay: the 120x90 image drawn at least 400 px tall, title and legend
    assert rgb.ndim == 3 and rgb.shape[2] == 3 and rgb.shape[0] >= 400
    assert 1.0 < rgb.shape[0] / rgb.shape[1] < 2.0  # portrait, as the 120x90 mammogram


def test_mammo_run_replaces_a_whole_frame_breast_mask(models_dir, mammogram, tmp_path,
                                                      monkeypatch):
    """The safeguard in ``mammo run``: a breast mask over the whole frame (the stub model's)
    holds the labeller's breast and is far larger, so the labeller's mask is used and said."""
    from breastseg.config import PredictConfig

    monkeypatch.setattr(PredictConfig.model_fields["labeller_fallback"], "default", 0.7)
    report = tmp_path / "run.json"
    result = CliRunner().invoke(app, [
        "run", str(mammogram), "--models", str(models_dir), "--out", str(tmp_path / "o.png"),
        "--json", str(report), "--work-size", "64x64",
    ])
    assert result.exit_code == 0, result.output
    summary = json.loads(report.read_text())
    assert any("labeller's mask was used" in n for n in summary["notes"]), summary["notes"]
    # the mass (the stub marks the whole breast crop) now spans the breast's box, not the frame:
    # the phantom's breast is the half-ellipse on the left, 110 of 120 rows and 70 of 90 columns
    y0, x0, y1, x1 = summary["masses"][0]["bbox_native"]
    assert (y1 - y0) < 120 and (x1 - x0) < 80 and x0 == 0


def test_mammo_run_without_a_stage_model_notes_it(tmp_path, mammogram):
    models = write_models(tmp_path / "models", stages=("massseg",))
    result = CliRunner().invoke(app, ["run", str(mammogram), "--models", str(models),
                                      "--work-size", "64x64"])
    assert result.exit_code == 0, result.output
    assert "no breastseg model" in result.output
    assert "no massclass model" in result.output
    assert "whole image" in result.output
    assert "masses not classified" in result.output


def test_mammo_run_bad_models_folder_exits_2(mammogram, tmp_path):
    result = CliRunner().invoke(app, ["run", str(mammogram), "--models", str(tmp_path / "x")])
    assert result.exit_code == 2
    assert "not a folder" in result.output
