"""``mammo results``: the cascade's findings as results.csv / results.json, in native geometry.

The fixture is a ``masses`` + ``diagnosis`` store pair written with the store writers: known
masses on the breast-crop grid and known crop transforms, so every native pixel, centroid and
millimetre value can be worked out by hand (case A) or from ``invert_transform`` on the whole
native image (case C, a non-integer scale).
"""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from mammo_common.cli import app
from mammo_common.errors import MammoError, StoreError
from mammo_common.results import COLUMNS, ResultsConfig, mass_geometry, results_table, write_results
from mammo_common.schema import (
    CaseDiagnosis,
    CaseRecord,
    CaseTransform,
    DicomRef,
    MassDiagnosis,
    Producer,
)
from mammo_common.store import StackedStoreWriter, open_store, write_diagnosis_store
from mammo_common.transforms import invert_transform

runner = CliRunner()
SIZE = (80, 60)
PRODUCER = Producer(package="tests", version="0", command="test_results", model_ids=["m/x/fold_1"])

# case A: native 200x160, crop (20, 10, 180, 130) = 160x120 -> 80x60: 2x2 native per store pixel
TF_A = CaseTransform(original_shape=(200, 160), crop_box=(20, 10, 180, 130), output_shape=SIZE)
# case C: native 150x140, crop (30, 25, 130, 115) = 100x90 -> 80x60: scales 1.25 and 1.5
TF_C = CaseTransform(original_shape=(150, 140), crop_box=(30, 25, 130, 115), output_shape=SIZE)
TF_B = CaseTransform(original_shape=(90, 70), crop_box=(0, 0, 90, 70), output_shape=SIZE)


def _mass_a1() -> np.ndarray:
    mask = np.zeros(SIZE, np.uint8)
    mask[10:15, 20:28] = 1  # 5 x 8 store pixels
    return mask


def _mass_a2() -> np.ndarray:
    mask = np.zeros(SIZE, np.uint8)  # an L: 5 x 3 block and a 1 x 6 foot
    mask[40:45, 5:8] = 1
    mask[44, 8:13] = 1
    return mask


def _mass_c1() -> np.ndarray:
    mask = np.zeros(SIZE, np.uint8)
    yy, xx = np.mgrid[: SIZE[0], : SIZE[1]]
    mask[((yy - 33) / 6.0) ** 2 + ((xx - 41) / 4.0) ** 2 <= 1] = 1
    return mask


def _records() -> list[CaseRecord]:
    return [
        CaseRecord(case_id="A", patient_id="pa", laterality="L", view="CC",
                   source_path="scans/a.dcm", original_shape=(200, 160),
                   pixel_spacing=(0.1, 0.05)),
        CaseRecord(case_id="B", patient_id="pb", source_path="scans/b.png",
                   original_shape=(90, 70), pixel_spacing=(0.07, 0.07)),
        CaseRecord(case_id="C", patient_id="pc", laterality="R", view="MLO",
                   source_path="scans/c.dcm", original_shape=(150, 140),
                   dicom=DicomRef(sop_instance_uid="1.2.3.4", study_instance_uid="1.2.3",
                                  series_instance_uid="1.2.3.9")),
    ]


def write_pair(root: Path) -> dict[str, Path]:
    """A masses store (3 cases) and the diagnosis store predicted from it."""
    records = _records()
    a1, a2, c1 = _mass_a1(), _mass_a2(), _mass_c1()
    probs_a = np.full(SIZE, 0.1, np.float16)
    probs_a[a1 > 0] = 0.75
    probs_a[12, 23] = 1.0  # one pixel of mass 1 is surer
    probs_a[a2 > 0] = 0.5
    probs_c = np.where(c1 > 0, 0.625, 0.0).astype(np.float16)
    preds = {"A": a1 | a2, "B": np.zeros(SIZE, np.uint8), "C": c1}
    probs = {"A": probs_a, "B": np.zeros(SIZE, np.float16), "C": probs_c}
    transforms = {"A": TF_A, "B": TF_B, "C": TF_C}
    masses = root / "masses.zarr"
    with StackedStoreWriter(masses, kind="masses", n_cases=3, image_size=SIZE,
                            producer=PRODUCER) as writer:
        for i, record in enumerate(records):
            cid = record.case_id
            writer.write_case(i, record, transforms[cid],
                              images=np.full(SIZE, 1000, np.uint16),
                              breast_masks=np.ones(SIZE, np.uint8),
                              mass_probs=probs[cid], mass_pred=preds[cid])
    store = open_store(masses, "masses")
    diagnoses = [
        CaseDiagnosis(case_id="A", probability=0.8, label="malignant", truth="unknown", masses=[
            MassDiagnosis(mass_index=1, bbox=(10, 20, 15, 28), area=40, probability=0.3,
                          label="benign"),
            MassDiagnosis(mass_index=2, bbox=(40, 5, 45, 13), area=20, probability=0.8,
                          label="malignant"),
        ]),
        CaseDiagnosis(case_id="B", label="no_mass_found"),
        CaseDiagnosis(case_id="C", probability=0.25, label="benign", truth="benign", masses=[
            MassDiagnosis(mass_index=1, bbox=_box(c1), area=int(c1.sum()), probability=0.25,
                          label="benign"),
        ]),
    ]
    diagnosis = root / "diagnosis.zarr"
    write_diagnosis_store(diagnosis, cases=records, diagnoses=diagnoses,
                          producer=PRODUCER.model_copy(update={"model_ids": ["massclass/t/f1"]}),
                          parents=[store.as_parent()], threshold=0.5)
    return {"masses": masses, "diagnosis": diagnosis}


def _box(mask: np.ndarray) -> tuple[int, int, int, int]:
    rows, cols = np.nonzero(mask)
    return int(rows.min()), int(cols.min()), int(rows.max()) + 1, int(cols.max()) + 1


@pytest.fixture(scope="module")
def pair(tmp_path_factory) -> dict[str, Path]:
    return write_pair(tmp_path_factory.mktemp("results"))


def _rows(table, case_id: str, row_type: str) -> list[dict]:
    return [r for r in table.rows if r["case_id"] == case_id and r["row_type"] == row_type]


def _reference(store_mask: np.ndarray, tf: CaseTransform) -> tuple:
    """Box, corner-frame centroid and area of the mass on the whole native image."""
    native = invert_transform(store_mask, tf, order=0) > 0
    rows, cols = np.nonzero(native)
    box = (int(rows.min()), int(cols.min()), int(rows.max()) + 1, int(cols.max()) + 1)
    return box, (rows.mean() + 0.5, cols.mean() + 0.5), int(rows.size)


def test_mass_rows_in_native_pixels_and_mm(pair) -> None:
    table = results_table(pair["diagnosis"])
    m1, m2 = _rows(table, "A", "mass")
    # mass 1 by hand: store rows 10..14 -> native 40..49, cols 20..27 -> native 50..65
    assert (m1["bbox_y0"], m1["bbox_x0"], m1["bbox_y1"], m1["bbox_x1"]) == (40, 50, 50, 66)
    assert (m1["centroid_y"], m1["centroid_x"]) == (45.0, 58.0)
    assert m1["area_px"] == 160
    assert (m1["pixel_spacing_row_mm"], m1["pixel_spacing_col_mm"]) == (0.1, 0.05)
    assert (m1["bbox_y0_mm"], m1["bbox_x0_mm"], m1["bbox_y1_mm"], m1["bbox_x1_mm"]) == (
        4.0, 2.5, 5.0, 3.3)
    assert (m1["centroid_y_mm"], m1["centroid_x_mm"]) == (4.5, 2.9)
    assert m1["area_mm2"] == 0.8
    assert m1["mass_probability_mean"] == (39 * 0.75 + 1.0) / 40
    assert m1["mass_probability_max"] == 1.0
    assert (m1["mass_index"], m1["label"], m1["malignancy_probability"]) == (1, "benign", 0.3)
    assert m1["source_path"] == "scans/a.dcm" and m1["sop_instance_uid"] is None
    # mass 2 (an L) against the whole-image inverse
    box, centroid, area = _reference(_mass_a2(), TF_A)
    assert (m2["bbox_y0"], m2["bbox_x0"], m2["bbox_y1"], m2["bbox_x1"]) == box == (100, 20, 110, 36)
    assert (m2["centroid_y"], m2["centroid_x"]) == pytest.approx(centroid, abs=5e-4)
    assert m2["area_px"] == area == 80 and m2["area_mm2"] == pytest.approx(80 * 0.005)
    assert m2["mass_probability_mean"] == m2["mass_probability_max"] == 0.5


def test_non_integer_scale_matches_the_whole_image_inverse(pair) -> None:
    table = results_table(pair["diagnosis"])
    (row,) = _rows(table, "C", "mass")
    box, centroid, area = _reference(_mass_c1(), TF_C)
    assert (row["bbox_y0"], row["bbox_x0"], row["bbox_y1"], row["bbox_x1"]) == box
    assert (row["centroid_y"], row["centroid_x"]) == pytest.approx(centroid, abs=5e-4)
    assert row["area_px"] == area
    # no pixel spacing: every mm column is empty
    for column in ("pixel_spacing_row_mm", "bbox_y0_mm", "centroid_x_mm", "area_mm2"):
        assert row[column] is None
    assert row["sop_instance_uid"] == "1.2.3.4"
    assert row["study_instance_uid"] == "1.2.3" and row["series_instance_uid"] == "1.2.3.9"
    assert row["mass_probability_mean"] == 0.625


def test_case_rows_most_malignant_or_no_mass(pair) -> None:
    table = results_table(pair["diagnosis"])
    assert [r["row_type"] for r in table.rows] == ["case", "mass", "mass", "case", "case", "mass"]
    (a,) = _rows(table, "A", "case")
    m2 = _rows(table, "A", "mass")[1]
    assert a["label"] == "malignant" and a["malignancy_probability"] == 0.8
    assert a["mass_index"] == 2 and a["n_masses"] == 2 and a["truth"] == "unknown"
    assert a["bbox_y0"] == m2["bbox_y0"] and a["area_mm2"] == m2["area_mm2"]
    (b,) = _rows(table, "B", "case")
    assert b["label"] == "no_mass_found" and b["n_masses"] == 0
    assert b["mass_index"] is None and b["bbox_y0"] is None and b["malignancy_probability"] is None
    assert _rows(table, "B", "mass") == []
    (c,) = _rows(table, "C", "case")
    assert c["label"] == "benign" and c["truth"] == "benign"
    meta = table.metadata
    assert (meta["n_cases"], meta["n_masses"], meta["n_no_mass_found"]) == (3, 3, 1)
    assert meta["n_malignant_cases"] == 1


def test_written_csv_and_json(pair, tmp_path) -> None:
    out = tmp_path / "out"
    result = runner.invoke(app, ["results", str(pair["diagnosis"]), "--out-dir", str(out)])
    assert result.exit_code == 0, result.output
    assert "3 cases, 3 masses, 1 malignant case(s), 1 with no mass found" in result.output
    with (out / "results.csv").open(newline="") as handle:
        reader = csv.reader(handle)
        header = next(reader)
        rows = list(reader)
    assert tuple(header) == COLUMNS
    assert header[:3] == ["row_type", "case_id", "patient_id"]
    assert len(rows) == 6
    b = dict(zip(header, rows[3], strict=True))
    assert b["label"] == "no_mass_found" and b["bbox_y0"] == "" and b["area_mm2"] == ""
    a1 = dict(zip(header, rows[1], strict=True))
    assert (a1["bbox_y0"], a1["centroid_x_mm"], a1["area_mm2"]) == ("40", "2.9", "0.8")
    document = json.loads((out / "results.json").read_text())
    assert document["format"] == "mammo-results" and document["columns"] == list(COLUMNS)
    assert document["rows"][1]["bbox_y0"] == 40 and document["rows"][3]["bbox_y0"] is None
    meta = document["metadata"]
    assert meta["threshold"] == 0.5
    assert meta["model_ids"]["massclass"] == ["massclass/t/f1"]
    assert meta["model_ids"]["massseg"] == ["m/x/fold_1"]
    assert meta["masses_store"]["path"] == str(pair["masses"])
    assert set(meta["columns"]) == set(COLUMNS)
    # an existing output is kept unless --overwrite
    again = runner.invoke(app, ["results", str(pair["diagnosis"]), "--out-dir", str(out)])
    assert again.exit_code == 2 and "already exists" in again.output
    again = runner.invoke(app, ["results", str(pair["diagnosis"]), "--csv", str(out / "r.csv"),
                                "--json", str(out / "r.json"), "--overwrite"])
    assert again.exit_code == 0, again.output
    assert (out / "r.csv").read_text() == (out / "results.csv").read_text()


def test_help_and_missing_output(pair) -> None:
    result = runner.invoke(app, ["results", "--help"])
    assert result.exit_code == 0
    text = " ".join(result.output.split())
    assert "one row per mass" in text and "Example: mammo results" in text
    result = runner.invoke(app, ["results", str(pair["diagnosis"])])
    assert result.exit_code == 2 and "--out-dir" in result.output


def test_parent_found_beside_a_moved_diagnosis_store(tmp_path) -> None:
    stores = write_pair(tmp_path / "orig")
    (tmp_path / "orig").rename(tmp_path / "moved")  # the recorded parent path is gone
    moved = tmp_path / "moved"
    table = results_table(moved / "diagnosis.zarr")
    assert table.metadata["masses_store"]["path"] == str(moved / "masses.zarr")
    assert table.metadata["n_masses"] == 3
    shutil.move(moved / "masses.zarr", tmp_path / "elsewhere.zarr")
    with pytest.raises(StoreError, match="not found unchanged") as err:
        results_table(moved / "diagnosis.zarr")
    assert "--masses" in err.value.message and str(stores["masses"]) in err.value.message
    table = results_table(moved / "diagnosis.zarr", masses=tmp_path / "elsewhere.zarr")
    assert table.metadata["n_masses"] == 3


def test_missing_or_foreign_masses_store(pair, tmp_path) -> None:
    other = write_pair(tmp_path / "other")
    # a masses store with another lineage digest is refused
    shutil.rmtree(other["masses"])
    with StackedStoreWriter(other["masses"], kind="masses", n_cases=1, image_size=SIZE,
                            producer=PRODUCER) as writer:
        writer.write_case(0, _records()[0], TF_A, images=np.zeros(SIZE, np.uint16),
                          breast_masks=np.ones(SIZE, np.uint8),
                          mass_probs=np.zeros(SIZE, np.float16),
                          mass_pred=np.zeros(SIZE, np.uint8))
    with pytest.raises(StoreError, match="not found unchanged"):
        results_table(other["diagnosis"])
    with pytest.raises(StoreError, match="not the masses store"):
        results_table(pair["diagnosis"], masses=other["masses"])
    with pytest.raises(MammoError, match="same file"):
        write_results(ResultsConfig(diagnosis=pair["diagnosis"], csv=tmp_path / "x",
                                    json_out=tmp_path / "x"))
    with pytest.raises(StoreError, match="'masses' store"):
        results_table(pair["masses"])


def test_mass_geometry_without_transform_and_tiny_masses() -> None:
    mask = np.zeros((10, 10), np.uint8)
    mask[2:4, 3:6] = 1
    geometry = mass_geometry(mask, None, pixel_spacing=(0.5, 0.5))
    assert geometry.bbox == (2, 3, 4, 6) and geometry.area_px == 6
    assert geometry.centroid == (3.0, 4.5) and geometry.area_mm2 == 1.5
    assert geometry.mass_probability_mean is None
    # an enlarged crop (10 native pixels -> 40 store pixels): a 1-pixel store mass may hit no
    # native pixel centre and is then mapped continuously
    tf = CaseTransform(original_shape=(10, 10), crop_box=(0, 0, 10, 10), output_shape=(40, 40))
    tiny = np.zeros((40, 40), np.uint8)
    tiny[0, 0] = 1
    geometry = mass_geometry(tiny, tf)
    assert geometry.area_px == 1 and geometry.bbox == (0, 0, 1, 1)
    assert geometry.centroid == (0.125, 0.125)
    with pytest.raises(ValueError, match="empty"):
        mass_geometry(np.zeros((4, 4)), None)


def test_docs_describe_every_column() -> None:
    docs = Path(__file__).resolve().parents[3] / "docs" / "results.md"
    if not docs.is_file():  # pragma: no cover - an installed package without the repository
        pytest.skip("docs/results.md is not here")
    text = docs.read_text(encoding="utf-8")
    missing = [c for c in COLUMNS if f"`{c}`" not in text and c not in {
        "bbox_x0_mm", "bbox_y1_mm"}]  # the table names the mm box as `bbox_y0_mm` ... `bbox_x1_mm`
    assert missing == [], f"docs/results.md does not describe {missing}"
