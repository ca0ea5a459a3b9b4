"""The run report gathers metrics, curves, figures and lineage into one page."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image
from test_store import write_breast, write_mammograms
from typer.testing import CliRunner

from mammo_common import open_store
from mammo_common.cli import app
from mammo_common.plots import read_history, roc_figure


def test_report_has_every_section(tmp_path: Path) -> None:
    mammo = open_store(write_mammograms(tmp_path / "m.zarr"))
    breast = write_breast(tmp_path / "b.zarr", mammo)
    (tmp_path / "metrics").mkdir()
    (tmp_path / "metrics" / "massseg.json").write_text(json.dumps({"dice_mean": 0.61, "n": 4}))
    model = tmp_path / "models" / "massseg" / "unet5l" / "fold_1"
    model.mkdir(parents=True)
    (model / "history.csv").write_text("epoch,loss,val_loss\n1,0.9,0.95\n2,0.6,0.7\n")
    (tmp_path / "plots").mkdir()
    roc_figure(np.array([0, 0.2, 1]), np.array([0, 0.8, 1])).save(tmp_path / "plots/roc.png")
    out = tmp_path / "reports"
    result = CliRunner().invoke(app, [
        "report", str(mammo.path), str(breast), "-o", str(out),
        "--metrics-dir", str(tmp_path / "metrics"), "--models-dir", str(tmp_path / "models"),
        "--plots-dir", str(tmp_path / "plots"),
    ])
    assert result.exit_code == 0, result.output
    text = (out / "report.md").read_text()
    assert "| dice_mean | 0.6100 |" in text
    assert "massseg/unet5l/fold_1" in text and "plots" not in text.split("## Figures")[0][-5:]
    assert "| breast | 3 |" in text and "mammograms `" in text
    page = (out / "index.html").read_text()
    assert page.count("data:image/png;base64,") == 4  # curves, roc, two contact sheets
    for png in out.glob("*.png"):
        assert Image.open(png).size[0] > 100


def test_report_refuses_a_missing_store(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["report", str(tmp_path / "none.zarr"), "-o",
                                      str(tmp_path / "r")])
    assert result.exit_code == 2 and not (tmp_path / "r").exists()


def test_read_history(tmp_path: Path) -> None:
    path = tmp_path / "h.csv"
    path.write_text("epoch,loss,lr\n1,0.5,0.001\n2,nan,0.001\n")
    hist = read_history(path)
    assert hist["epoch"] == [1.0, 2.0] and hist["lr"] == [0.001, 0.001]
