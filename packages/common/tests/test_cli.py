"""The ``mammo`` command through Typer's CliRunner, including bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image
from test_store import write_breast, write_mammograms
from typer.testing import CliRunner

from mammo_common import open_store
from mammo_common.cli import app
from mammo_common.schema import CaseRecord, Producer
from mammo_common.store import MammogramsWriter
from mammo_common.viz import COLORS

runner = CliRunner()


def _many_patients(path: Path, n: int = 30) -> Path:
    producer = Producer(package="t", version="0", command="t")
    with MammogramsWriter(path, source_format="test", producer=producer) as writer:
        for i in range(n):
            for view in ("CC", "MLO"):
                rec = CaseRecord(
                    case_id=f"P_{i:03d}_{view}",
                    patient_id=f"P_{i:03d}",
                    view=view,
                    pathology="MALIGNANT" if i % 3 == 0 else "BENIGN",
                    original_shape=(8, 8),
                )
                writer.add_case(rec, np.full((8, 8), i, np.uint16))
    return path


def test_help_teaches() -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in ("validate", "info", "show", "split", "schema"):
        assert command in result.output
    result = runner.invoke(app, ["split", "--help"])
    assert "Example" in result.output and "grouped by patient" in result.output
    # Rich reads "[default: 5]" as a markup tag and prints nothing: defaults go in parentheses
    from mammo_common.synth import DEFAULT_CASES

    for command, default in (("split", "(default: 5)"), ("synth", f"(default: {DEFAULT_CASES})")):
        result = runner.invoke(app, [command, "--help"], env={"COLUMNS": "200"})
        assert default in result.output, result.output


def test_validate_and_info(tmp_path: Path) -> None:
    store = write_mammograms(tmp_path / "m.zarr")
    result = runner.invoke(app, ["validate", str(store)])
    assert result.exit_code == 0 and "valid" in result.output
    result = runner.invoke(app, ["info", str(store), "--json"])
    assert result.exit_code == 0, result.output
    info = json.loads(result.output)
    assert info["kind"] == "mammograms" and info["n_cases"] == 3
    assert info["cases"][0]["mass_mask_pixels"] == 100
    assert info["skipped"][0]["path"] == "bad.dcm"
    result = runner.invoke(app, ["info", str(store)])
    assert result.exit_code == 0 and "mammograms store" in result.output


def test_validate_bad_input_exits_2_without_traceback(tmp_path: Path) -> None:
    result = runner.invoke(app, ["validate", str(tmp_path / "nope.zarr")])
    assert result.exit_code == 2
    assert "does not exist" in result.output and "Traceback" not in result.output
    store = write_mammograms(tmp_path / "m.zarr")
    result = runner.invoke(app, ["validate", str(store), "--kind", "breast"])
    assert result.exit_code == 2 and "breastseg predict" in result.output


def test_show_draws_masks(tmp_path: Path) -> None:
    mammo = open_store(write_mammograms(tmp_path / "m.zarr"))
    breast = write_breast(tmp_path / "b.zarr", mammo)
    out = tmp_path / "sheet.png"
    result = runner.invoke(app, ["show", str(mammo.path), "-o", str(out), "--tile", "64"])
    assert result.exit_code == 0, result.output
    pixels = np.asarray(Image.open(out))[..., :3].astype(np.int32)
    near = np.abs(pixels - np.asarray(COLORS["truth"])).sum(axis=-1) <= 60
    assert near.sum() > 10, "the mass contour is drawn in the truth colour"
    result = runner.invoke(app, ["show", str(breast), "-o", str(tmp_path / "b.png")])
    assert result.exit_code == 0
    result = runner.invoke(app, ["show", str(breast), "-o", str(tmp_path / "b.jpg")])
    assert result.exit_code == 2 and not (tmp_path / "b.jpg").exists()


def test_split_command(tmp_path: Path) -> None:
    store = _many_patients(tmp_path / "m.zarr")
    out = tmp_path / "splits.json"
    args = ["split", str(store), "-o", str(out), "--folds", "3", "--test-fraction", "0.2"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    data = json.loads(out.read_text())
    assert len(data["folds"]) == 3 and data["test"]
    first = out.read_bytes()
    assert runner.invoke(app, args).exit_code == 0
    assert out.read_bytes() == first, "same arguments, same bytes"
    test_patients = {data["patients"][c] for c in data["test"]}
    train_patients = {data["patients"][c] for c in data["folds"][0]["train"]}
    assert not test_patients & train_patients


def test_split_params_file_and_typos(tmp_path: Path) -> None:
    store = _many_patients(tmp_path / "m.zarr", n=12)
    params = tmp_path / "params.yaml"
    params.write_text("split:\n  folds: 4\n  seed: 3\n")
    out = tmp_path / "s.json"
    result = runner.invoke(app, ["split", str(store), "-o", str(out), "--params", str(params)])
    assert result.exit_code == 0, result.output
    assert len(json.loads(out.read_text())["folds"]) == 4
    params.write_text("split:\n  fold: 4\n")
    out2 = tmp_path / "s2.json"
    result = runner.invoke(app, ["split", str(store), "-o", str(out2), "--params", str(params)])
    assert result.exit_code == 2 and "split.fold" in result.output and not out2.exists()
    result = runner.invoke(app, ["split", str(store), "-o", str(out2), "--folds", "30"])
    assert result.exit_code == 2 and not out2.exists()


def test_schema_export(tmp_path: Path) -> None:
    result = runner.invoke(app, ["schema", str(tmp_path)])
    assert result.exit_code == 0
    names = {p.name for p in tmp_path.iterdir()}
    assert {"store_masses.schema.json", "splits.schema.json", "case_record.schema.json"} <= names


def test_synth_ingest_show_through_the_cli(tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    args = ["synth", str(raw), "--cases", "3", "--size", "96x72", "--seed", "4"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "3 patients" in result.output
    result = runner.invoke(app, args)
    assert result.exit_code == 2 and "already exists" in result.output
    store = tmp_path / "m.zarr"
    result = runner.invoke(app, ["ingest", str(raw), str(store)])
    assert result.exit_code == 0, result.output
    assert "from cbis-ddsm" in result.output
    opened = open_store(store, "mammograms", deep=True)
    assert len(opened) >= 3
    assert runner.invoke(app, ["show", str(store), "-o", str(tmp_path / "s.png")]).exit_code == 0


def test_synth_and_ingest_bad_input(tmp_path: Path) -> None:
    result = runner.invoke(app, ["synth", str(tmp_path / "r"), "--size", "big"])
    assert result.exit_code == 2 and "ROWSxCOLS" in result.output
    assert not (tmp_path / "r").exists()
    result = runner.invoke(app, ["synth", str(tmp_path / "r"), "--cases", "0"])
    assert result.exit_code == 2 and "cases" in result.output
    result = runner.invoke(app, ["ingest", str(tmp_path / "missing"), str(tmp_path / "m.zarr")])
    assert result.exit_code == 2 and "Traceback" not in result.output
    (tmp_path / "empty").mkdir()
    result = runner.invoke(app, ["ingest", str(tmp_path / "empty"), str(tmp_path / "m.zarr")])
    assert result.exit_code == 2 and "cbis-ddsm" in result.output
    result = runner.invoke(
        app, ["ingest", str(tmp_path / "empty"), str(tmp_path / "m.zarr"), "--format", "dicomdir"]
    )
    assert result.exit_code == 2
    assert not (tmp_path / "m.zarr").exists()
