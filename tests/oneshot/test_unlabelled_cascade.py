"""A folder of unlabelled DICOM mammograms through the whole cascade into results.csv.

``mammo ingest --format images`` -> ``breastseg predict`` -> ``massseg predict`` -> ``massclass
predict`` -> ``mammo results``, each through its command line, with the tiny models of
``conftest.py`` (the breast model marks every pixel as breast and the mass model the whole
breast crop as one mass, so the mass is the whole native image and every coordinate is known;
the breast safeguard, which would rightly give such a whole-frame mask the threshold labeller's
breast, is off: ``labeller_fallback: null`` in a params file).
The three ``evaluate`` commands refuse the stores: there is nothing to compare against.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from mg_files import write_mg
from typer.testing import CliRunner

SHAPES = {"a/left_cc.dcm": (120, 90), "a/right_mlo.dcm": (110, 80), "b/scan.dcm": (100, 96)}
SPACING = {"a/left_cc.dcm": (0.1, 0.1), "a/right_mlo.dcm": (0.085, 0.085), "b/scan.dcm": None}
runner = CliRunner()


def _write_mg(path: Path, pixels: np.ndarray, uid: str, spacing) -> None:
    write_mg(path, pixels, uid, spacing, patient_id="P1")


@pytest.fixture(scope="module")
def cascade(models_dir: Path, tmp_path_factory) -> dict:
    from breastseg.cli import app as breastseg
    from mammo_common.cli import app as mammo
    from massclass.cli import app as massclass
    from massseg.cli import app as massseg

    root = tmp_path_factory.mktemp("unlabelled")
    uids = {}
    for k, (name, (rows, cols)) in enumerate(SHAPES.items()):
        yy, xx = np.mgrid[0:rows, 0:cols]
        breast = ((yy - rows / 2) / (rows / 2.2)) ** 2 + (xx / (cols * 0.8)) ** 2 < 1
        noise = np.random.default_rng(k).integers(0, 400, (rows, cols))
        image = 2000 + 30000 * breast + noise
        uids[name] = f"1.2.826.0.1.3680043.10.9999.{k + 1}"
        _write_mg(root / "folder" / name, image.astype(np.uint16), uids[name], SPACING[name])
    models = {s: next((models_dir / s).glob("*/fold_1")) for s in ("breastseg", "massseg",
                                                                   "massclass")}
    params = root / "params.yaml"
    params.write_text("breastseg:\n  predict:\n    labeller_fallback: null\n")
    steps = [
        (mammo, ["ingest", root / "folder", root / "m.zarr", "--format", "images"]),
        (breastseg, ["predict", "--params", params, "--model", models["breastseg"],
                     "--data", root / "m.zarr", "--out", root / "b.zarr", "--output-size",
                     "64x64"]),
        (massseg, ["predict", "--model", models["massseg"], "--data", root / "b.zarr",
                   "--out", root / "ms.zarr"]),
        (massclass, ["predict", "--model", models["massclass"], "--data", root / "ms.zarr",
                     "--out", root / "d.zarr"]),
        (mammo, ["results", root / "d.zarr", "--out-dir", root / "results"]),
    ]
    for app, args in steps:
        result = runner.invoke(app, [str(a) for a in args])
        assert result.exit_code == 0, f"{args[0]}: {result.output}"
    return {"root": root, "uids": uids}


def test_results_table_of_an_unlabelled_folder(cascade: dict) -> None:
    with (cascade["root"] / "results" / "results.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    cases = [r for r in rows if r["row_type"] == "case"]
    masses = [r for r in rows if r["row_type"] == "mass"]
    assert len(cases) == len(masses) == 3
    for row in masses:
        name = row["source_path"]
        rows_, cols = SHAPES[name]
        assert row["sop_instance_uid"] == cascade["uids"][name]
        assert row["study_instance_uid"] == cascade["uids"][name] + ".1"
        # every pixel is breast and the whole crop is one mass: the mass is the native image
        box = tuple(int(row[k]) for k in ("bbox_y0", "bbox_x0", "bbox_y1", "bbox_x1"))
        assert box == (0, 0, rows_, cols)
        assert float(row["centroid_y"]) == rows_ / 2 and float(row["centroid_x"]) == cols / 2
        assert int(row["area_px"]) == rows_ * cols
        spacing = SPACING[name]
        if spacing is None:
            assert row["area_mm2"] == row["bbox_y1_mm"] == row["pixel_spacing_row_mm"] == ""
        else:
            assert float(row["bbox_y1_mm"]) == pytest.approx(rows_ * spacing[0])
            assert float(row["bbox_x1_mm"]) == pytest.approx(cols * spacing[1])
            assert float(row["area_mm2"]) == pytest.approx(rows_ * cols * spacing[0] * spacing[1])
        assert row["label"] in ("benign", "malignant")
        assert 0.0 <= float(row["malignancy_probability"]) <= 1.0
        assert float(row["mass_probability_mean"]) > 0.5
    assert {r["truth"] for r in cases} == {"unknown"}
    lateral = {r["source_path"]: (r["laterality"], r["view"]) for r in cases}
    assert lateral["a/left_cc.dcm"] == ("L", "CC") and lateral["a/right_mlo.dcm"] == ("R", "MLO")


@pytest.mark.parametrize("stage", ["breastseg", "massseg", "massclass"])
def test_evaluate_refuses_the_unlabelled_stores(cascade: dict, stage: str) -> None:
    import importlib

    app = importlib.import_module(f"{stage}.cli").app
    root = cascade["root"]
    out = root / f"{stage}_metrics.json"
    args = {
        "breastseg": ["evaluate", "--method", "threshold", "--data", root / "m.zarr",
                      "--part", "all"],
        "massseg": ["evaluate", "--data", root / "ms.zarr"],
        "massclass": ["evaluate", "--data", root / "d.zarr"],
    }[stage]
    result = runner.invoke(app, [str(a) for a in [*args, "--out", out]])
    text = " ".join((result.output + (result.stderr or "")).split())
    assert result.exit_code == 2, text
    assert "nothing to compare against; evaluation needs ground truth" in text
    assert not out.exists()
