"""The run report gathers metrics, curves, figures and lineage into one page."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image
from test_store import PRODUCER, write_breast, write_mammograms
from typer.testing import CliRunner

from mammo_common import open_store
from mammo_common.cli import app
from mammo_common.plots import read_history, roc_figure
from mammo_common.report import ReportConfig, build_report, lineage_model_ids

HISTORY = "epoch,loss,val_loss\n1,0.9,0.95\n2,0.6,0.7\n"


def _model(models: Path, model_id: str) -> Path:
    folder = models / model_id
    folder.mkdir(parents=True)
    (folder / "history.csv").write_text(HISTORY)
    return folder


def test_report_has_every_section(tmp_path: Path) -> None:
    mammo = open_store(write_mammograms(tmp_path / "m.zarr"))
    producer = PRODUCER.model_copy(update={"model_ids": ["massseg/unet5l/fold_1"]})
    breast = write_breast(tmp_path / "b.zarr", mammo, producer=producer)
    (tmp_path / "metrics").mkdir()
    (tmp_path / "metrics" / "massseg.json").write_text(json.dumps({"dice_mean": 0.61, "n": 4}))
    _model(tmp_path / "models", "massseg/unet5l/fold_1")
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


def test_report_shows_only_the_models_in_the_stores_lineage(tmp_path: Path) -> None:
    """Curves of the models that made the stores (upstream stores' models included, through
    the recorded parents), not of every folder under ``models``: another fold or architecture
    trained for comparison and an unfinished training's working folder are left out."""
    mammo = open_store(write_mammograms(tmp_path / "m.zarr"))
    breast_producer = PRODUCER.model_copy(update={"model_ids": ["breastseg/unet5l/fold_1"]})
    breast = open_store(write_breast(tmp_path / "b.zarr", mammo, producer=breast_producer))
    mass_producer = PRODUCER.model_copy(update={"model_ids": [
        "massseg/unet5l/fold_1", "massseg/unet5l/fold_1/refiner", "massseg/unet5l/fold_9"]})
    masses = write_breast(tmp_path / "masses.zarr", breast, producer=mass_producer)
    models = tmp_path / "models"
    for model_id in ("breastseg/unet5l/fold_1", "massseg/unet5l/fold_1",
                     "massseg/unet5l/fold_1/refiner", "massseg/unet5l/fold_2",
                     "massseg/unetpp_xception/fold_1", "massseg/unet5l/.fold_3.training"):
        _model(models, model_id)

    # the last store alone brings in the breast model upstream of it
    assert lineage_model_ids([masses]) == [
        "breastseg/unet5l/fold_1", "massseg/unet5l/fold_1", "massseg/unet5l/fold_1/refiner",
        "massseg/unet5l/fold_9"]
    assert lineage_model_ids([mammo.path]) == []  # ingest used no model
    result = build_report(ReportConfig(out=tmp_path / "r", stores=[masses], models_dir=models,
                                       metrics_dir=tmp_path / "none", plots_dir=tmp_path / "none"))
    text = result.markdown.read_text()
    curves = text.split("## Training curves")[1].split("## Figures")[0]
    shown = [line.removeprefix("### ") for line in curves.splitlines() if line.startswith("###")]
    assert shown == ["breastseg/unet5l/fold_1", "massseg/unet5l/fold_1",
                     "massseg/unet5l/fold_1/refiner"]
    assert result.n_models == 3
    assert "`massseg/unet5l/fold_9`" in curves  # in the lineage, but not on disk: named
    assert "fold_2" not in text and "unetpp_xception" not in text and ".training" not in text


def test_report_refuses_a_missing_store(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["report", str(tmp_path / "none.zarr"), "-o",
                                      str(tmp_path / "r")])
    assert result.exit_code == 2 and not (tmp_path / "r").exists()


def test_read_history(tmp_path: Path) -> None:
    path = tmp_path / "h.csv"
    path.write_text("epoch,loss,lr\n1,0.5,0.001\n2,nan,0.001\n")
    hist = read_history(path)
    assert hist["epoch"] == [1.0, 2.0] and hist["lr"] == [0.001, 0.001]
