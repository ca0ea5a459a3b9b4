"""Batch ``mammo run PATH... --out-dir DIR [--seg]`` with the tiny models of ``conftest.py``.

A folder holds two DICOM mammograms (full UIDs, laterality, view, one with a pixel spacing), a
PNG, a corrupt ``.dcm`` and a text file. The tiny breast model marks every pixel as breast and
the tiny mass model the whole breast crop as one mass, so every native mask is known.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from mg_files import write_mg
from PIL import Image
from typer.testing import CliRunner

from mammo_common.cli import app
from mammo_common.results import COLUMNS

runner = CliRunner()
WORK = "64x64"
DICOMS = {"a/left_cc.dcm": ((120, 90), (0.1, 0.1)), "a/right_mlo.dcm": ((110, 80), None)}
PNG = "b/scan.png"
CORRUPT = "b/broken.dcm"


def _uid(name: str) -> str:
    return "1.2.826.0.1.3680043.10.9998." + str(1 + sorted(DICOMS).index(name))


def _phantom(shape: tuple[int, int], seed: int) -> np.ndarray:
    rows, cols = shape
    yy, xx = np.mgrid[0:rows, 0:cols]
    breast = ((yy - rows / 2) / (rows / 2.2)) ** 2 + (xx / (cols * 0.8)) ** 2 < 1
    noise = np.random.default_rng(seed).integers(0, 400, shape)
    return (2000 + 30000 * breast + noise).astype(np.uint16)


def _write_mg(path: Path, pixels: np.ndarray, uid: str, spacing) -> None:
    write_mg(path, pixels, uid, spacing, patient_id="P7")


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("batch") / "in"
    for k, (name, (shape, spacing)) in enumerate(DICOMS.items()):
        _write_mg(root / name, _phantom(shape, k), _uid(name), spacing)
    (root / "b").mkdir(parents=True)
    Image.fromarray((_phantom((100, 96), 9) // 256).astype(np.uint8)).save(root / PNG)
    (root / CORRUPT).write_bytes(b"\0" * 128 + b"DICM" + b"not a data set" * 8)
    (root / "readme.txt").write_text("not a mammogram\n")
    return root


def _invoke(*args) -> object:
    return runner.invoke(app, ["run", *(str(a) for a in args)])


@pytest.fixture(scope="module")
def batch(folder: Path, models_dir: Path, tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("batch_out") / "results"
    result = _invoke(folder, "--models", models_dir, "--out-dir", out, "--work-size", WORK,
                     "--seg")
    assert result.exit_code == 0, result.output
    with (out / "results.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    document = json.loads((out / "results.json").read_text())
    return {"out": out, "output": " ".join(result.output.split()), "rows": rows,
            "json": document}


def test_batch_writes_an_overlay_per_good_image_and_reports_the_bad_file(batch: dict, folder):
    out = batch["out"]
    overlays = sorted(p.name for p in (out / "overlays").iterdir())
    assert overlays == ["a_left_cc.png", "a_right_mlo.png", "b_scan.png"]
    rgb = np.asarray(Image.open(out / "overlays" / "a_left_cc.png"))
    assert rgb.ndim == 3 and rgb.shape[2] == 3 and 1.0 < rgb.shape[0] / rgb.shape[1] < 2.0
    failed = {f["path"]: f["reason"] for f in batch["json"]["metadata"]["failed"]}
    assert set(failed) == {f"{folder}/{CORRUPT}", f"{folder}/readme.txt"}
    assert f"{folder}/{CORRUPT}" in batch["output"]
    assert "3 of 4 image(s) done" in batch["output"]
    assert not list(out.rglob(".*"))  # no temporaries left


def test_batch_table_has_the_columns_of_mammo_results(batch: dict, folder: Path):
    header = (batch["out"] / "results.csv").read_text().splitlines()[0].split(",")
    assert header == list(COLUMNS) == batch["json"]["columns"]
    assert batch["json"]["format"] == "mammo-results"
    rows = batch["rows"]
    assert [r["row_type"] for r in rows] == ["case", "mass"] * 3
    by_source = {r["source_path"]: r for r in rows if r["row_type"] == "mass"}
    for name, ((h, w), spacing) in DICOMS.items():
        row = by_source[f"{folder}/{name}"]
        assert row["sop_instance_uid"] == _uid(name)
        assert row["study_instance_uid"] == _uid(name) + ".1"
        assert row["patient_id"] == "P7"
        assert (row["laterality"], row["view"]) == (("R", "MLO") if "right" in name else
                                                    ("L", "CC"))
        # the whole breast crop is one mass and every pixel is breast: the whole image
        assert tuple(int(row[k]) for k in ("bbox_y0", "bbox_x0", "bbox_y1", "bbox_x1")) == (
            0, 0, h, w)
        assert int(row["area_px"]) == h * w
        if spacing is None:
            assert row["area_mm2"] == row["pixel_spacing_row_mm"] == ""
        else:
            assert float(row["area_mm2"]) == pytest.approx(h * w * spacing[0] * spacing[1])
    png = by_source[f"{folder}/{PNG}"]
    assert png["sop_instance_uid"] == "" and png["case_id"] == "b_scan"


def test_batch_rows_match_single_runs(batch: dict, folder: Path, models_dir: Path, tmp_path):
    rows = {r["source_path"]: r for r in batch["rows"] if r["row_type"] == "mass"}
    cases = {r["source_path"]: r for r in batch["rows"] if r["row_type"] == "case"}
    for name in [*DICOMS, PNG]:
        report = tmp_path / f"{Path(name).stem}.json"
        result = _invoke(folder / name, "--models", models_dir, "--json", report,
                         "--work-size", WORK)
        assert result.exit_code == 0, result.output
        single = json.loads(report.read_text())
        (mass,) = single["masses"]
        row = rows[f"{folder}/{name}"]
        assert float(row["malignancy_probability"]) == round(mass["probability"], 6)
        assert row["label"] == mass["label"]
        assert int(row["area_px"]) == mass["area_native"]
        bbox = [int(row[k]) for k in ("bbox_y0", "bbox_x0", "bbox_y1", "bbox_x1")]
        assert bbox == mass["bbox_native"]
        case = cases[f"{folder}/{name}"]
        assert case["label"] == single["diagnosis"]["label"]
        assert float(case["malignancy_probability"]) == round(
            single["diagnosis"]["probability"], 6)
        assert case["n_masses"] == "1" and case["truth"] == "unknown"


def test_seg_files_read_back_with_the_run_masks(batch: dict, folder: Path, models_dir: Path):
    from mammo_common.dicom_seg import read_seg
    from mammo_common.oneshot import load_cascade, read_input_image

    seg_dir = batch["out"] / "seg"
    assert sorted(p.name for p in seg_dir.iterdir()) == ["a_left_cc.seg.dcm",
                                                         "a_right_mlo.seg.dcm"]
    assert "1 input(s) are not DICOM" in batch["output"]  # the PNG, said once
    images = {Path(i["source_path"]).name: i for i in batch["json"]["metadata"]["images"]}
    assert images["scan.png"]["seg"] is None
    with load_cascade(models_dir, work_size=(64, 64)) as cascade:
        for name in DICOMS:
            source = folder / name
            case = cascade.run(read_input_image(source), source=str(source))
            seg = read_seg(seg_dir / f"{Path(name).parent.name}_{Path(name).stem}.seg.dcm")
            assert seg.referenced_sop_instance_uid == _uid(name)
            np.testing.assert_array_equal(seg.breast, case.breast_mask > 0)
            assert len(seg.masses) == len(case.masses) == 1
            np.testing.assert_array_equal(seg.masses[0], case.native_mask(case.masses[0]) > 0)
            assert seg.malignancy[0] == pytest.approx(case.masses[0].probability, abs=1e-4)
            assert images[Path(name).name]["seg"].endswith(".seg.dcm")


def test_models_are_loaded_once_per_batch(folder: Path, models_dir: Path, tmp_path,
                                          monkeypatch):
    import keras

    from mammo_common.oneshot_batch import BatchRunConfig, run_batch

    loads: list[str] = []
    real = keras.saving.load_model

    def counting(path, *args, **kwargs):
        loads.append(str(path))
        return real(path, *args, **kwargs)

    monkeypatch.setattr(keras.saving, "load_model", counting)
    result = run_batch(BatchRunConfig(
        inputs=[str(folder / "a"), str(folder / PNG)], models=models_dir,
        out_dir=tmp_path / "out", work_size=(64, 64), progress=False,
    ))
    assert len(result.images) == 3
    assert len(loads) == 3 == result.model_loads  # one per stage, not one per image
    assert {Path(p).parent.parent.parent.name for p in loads} == {"breastseg", "massseg",
                                                                  "massclass"}


def test_globs_files_and_duplicates(folder: Path, models_dir: Path, tmp_path):
    out = tmp_path / "out"
    result = _invoke(f"{folder}/**/*.dcm", folder / "a" / "left_cc.dcm", folder / PNG,
                     "--models", models_dir, "--out-dir", out, "--work-size", WORK)
    assert result.exit_code == 0, result.output
    document = json.loads((out / "results.json").read_text())
    sources = [i["source_path"] for i in document["metadata"]["images"]]
    assert sources == [f"{folder}/a/left_cc.dcm", f"{folder}/a/right_mlo.dcm",
                       f"{folder}/{PNG}"]  # left_cc once, though named twice
    assert [f["path"] for f in document["metadata"]["failed"]] == [f"{folder}/{CORRUPT}"]


def test_all_bad_inputs_exit_2_and_write_nothing(folder: Path, models_dir: Path, tmp_path):
    out = tmp_path / "out"
    result = _invoke(folder / CORRUPT, folder / "readme.txt", tmp_path / "missing.dcm",
                     f"{tmp_path}/nothing/*.png", "--models", models_dir, "--out-dir", out)
    text = " ".join(result.output.split())
    assert result.exit_code == 2, text
    assert "none of the 1 candidate file(s) could be read" in text
    assert "no such file or folder" in text and "matches no file or folder" in text
    assert not out.exists()


def test_existing_results_need_overwrite(folder: Path, models_dir: Path, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "results.csv").write_text("old\n")
    args = [folder / PNG, "--models", models_dir, "--out-dir", out, "--work-size", WORK]
    result = _invoke(*args)
    assert result.exit_code == 2 and "already exists" in result.output
    assert (out / "results.csv").read_text() == "old\n"
    result = _invoke(*args, "--overwrite")
    assert result.exit_code == 0, result.output
    assert (out / "results.csv").read_text().startswith("row_type,")


def test_batch_options_need_out_dir(folder: Path, models_dir: Path, tmp_path):
    text = " ".join(_invoke(folder, "--models", models_dir).output.split())
    assert "a folder given without --out-dir" in text
    result = _invoke(folder / PNG, folder / "a" / "left_cc.dcm", "--models", models_dir)
    assert result.exit_code == 2 and "several inputs" in result.output
    result = _invoke(folder / PNG, "--models", models_dir, "--seg")
    assert result.exit_code == 2 and "--seg is for batches" in result.output
    result = _invoke(folder, "--models", models_dir, "--out-dir", tmp_path / "o",
                     "--out", tmp_path / "x.png")
    assert result.exit_code == 2 and "--out/--json are for one image" in result.output


def test_ctrl_c_keeps_finished_images_and_their_table(folder: Path, models_dir: Path,
                                                      tmp_path, monkeypatch):
    import mammo_common.oneshot as oneshot

    real = oneshot.render_overlay
    calls: list[Path] = []

    def interrupting(case, out, **kwargs):
        calls.append(Path(out))
        path = real(case, out, **kwargs)
        if len(calls) == 2:  # the second image's overlay is written, then Ctrl-C
            raise KeyboardInterrupt
        return path

    monkeypatch.setattr(oneshot, "render_overlay", interrupting)
    out = tmp_path / "out"
    result = _invoke(folder, "--models", models_dir, "--out-dir", out, "--work-size", WORK)
    assert result.exit_code == 130, result.output
    assert "interrupted after 1 of 4 image(s)" in " ".join(result.output.split())
    assert [p.name for p in (out / "overlays").iterdir()] == [calls[0].name]
    with (out / "results.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert {r["case_id"] for r in rows} == {calls[0].stem}
    document = json.loads((out / "results.json").read_text())
    assert document["metadata"]["interrupted"] is True
    assert not list(out.rglob(".*"))


def test_compressed_dicom_runs_like_its_uncompressed_original(batch: dict, folder: Path,
                                                              models_dir: Path, tmp_path):
    """An RLE Lossless copy of an input (pydicom's own encoder) gives the same rows and SEG."""
    import pydicom
    from pydicom.uid import RLELossless

    from mammo_common.dicom_seg import read_seg

    source = folder / "a" / "left_cc.dcm"
    ds = pydicom.dcmread(source)
    ds.compress(RLELossless, generate_instance_uid=False)  # lossless: the same instance
    packed = tmp_path / "in" / "a" / "left_cc.dcm"
    packed.parent.mkdir(parents=True)
    ds.save_as(packed, enforce_file_format=True)
    assert pydicom.dcmread(packed).file_meta.TransferSyntaxUID == RLELossless
    out = tmp_path / "out"
    result = _invoke(packed, "--models", models_dir, "--out-dir", out, "--work-size", WORK,
                     "--seg")
    assert result.exit_code == 0, result.output
    with (out / "results.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    expected = [r for r in batch["rows"] if r["source_path"] == str(source)]
    skip = {"source_path", "case_id"}
    assert [{k: v for k, v in r.items() if k not in skip} for r in rows] == [
        {k: v for k, v in r.items() if k not in skip} for r in expected]
    seg = read_seg(next((out / "seg").iterdir()))
    original = read_seg(batch["out"] / "seg" / "a_left_cc.seg.dcm")
    assert seg.referenced_sop_instance_uid == original.referenced_sop_instance_uid
    np.testing.assert_array_equal(seg.breast, original.breast)
    for a, b in zip(seg.masses, original.masses, strict=True):
        np.testing.assert_array_equal(a, b)
