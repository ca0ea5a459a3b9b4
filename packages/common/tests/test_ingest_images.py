"""``mammo ingest --format images``: unlabelled DICOM/PNG/TIFF trees, one case per image."""

from __future__ import annotations

import shutil
from pathlib import Path, PurePosixPath

import numpy as np
import pytest
import tifffile
from formats import tree_digest
from mg_dicom import (
    CT_IMAGE,
    MG_PROCESSING,
    SECONDARY_CAPTURE,
    mammo_like,
    uid_for,
    view_code,
    write_mg,
)
from PIL import Image
from pydicom.uid import RLELossless
from typer.testing import CliRunner

from mammo_common.cli import app
from mammo_common.errors import InputFileError
from mammo_common.ingest import IngestConfig, detect_format, run_ingest
from mammo_common.ingest.images import name_hints
from mammo_common.store import open_store


def _png(path: Path, pixels: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path)
    return path


def _notes(record) -> str:
    return " | ".join(record.notes)


@pytest.fixture
def tree(tmp_path: Path) -> tuple[Path, dict[str, np.ndarray]]:
    """A messy export: DICOM with full, partial and no headers, PNG, TIFF, and files to skip."""
    src = tmp_path / "export"
    px = {name: mammo_like((90, 60), bits=12, seed=i) for i, name in enumerate("abcdefg")}
    # full header, nested folders
    write_mg(src / "site1" / "study1" / "a.dcm", px["a"], bits_stored=12, PatientID="PAT7",
             ImageLaterality="R", ViewPosition="MLO", PixelSpacing=[0.07, 0.07],
             Manufacturer="ACME Imaging", StudyID="S1")
    # Laterality (not ImageLaterality), ViewCodeSequence, ImagerPixelSpacing, no extension
    write_mg(src / "site1" / "IM0002", px["b"], bits_stored=12, PatientID="PAT7",
             Laterality="L", ViewCodeSequence=view_code("399162004", "cranio-caudal"),
             ImagerPixelSpacing=[0.1, 0.085])
    # CBIS-DDSM style: nothing in the header, everything in the folder name
    write_mg(src / "Mass-Training_P_00042_RIGHT_CC" / "07-20-2016" / "1-1.dcm", px["c"],
             bits_stored=12, PatientID="Mass-Training_P_00042_RIGHT_CC", compress=RLELossless)
    # INbreast style file name, header laterality disagrees with it
    write_mg(src / "20586908_6c613a14_MG_R_CC_ANON.dcm", px["d"], bits_stored=12,
             PatientID="PAT9", ImageLaterality="L")
    # plain images
    _png(src / "png" / "case1_L_MLO.png", px["e"])
    tifffile.imwrite(src / "png" / "scan.tif", px["f"])
    # CR of a breast: kept
    write_mg(src / "old" / "cr.dcm", px["g"], bits_stored=12, Modality="CR",
             BodyPartExamined="BREAST", ViewPosition="CC", ImageLaterality="L")
    # to skip
    write_mg(src / "ct.dcm", mammo_like((32, 32)), sop_class=CT_IMAGE, Modality="CT")
    write_mg(src / "raw.dcm", mammo_like((32, 32)), sop_class=MG_PROCESSING,
             PresentationIntentType="FOR PROCESSING")
    write_mg(src / "tomo.dcm", mammo_like((32, 32)), frames=3)
    write_mg(src / "shot.dcm", np.zeros((16, 16, 3), np.uint8), sop_class=SECONDARY_CAPTURE,
             photometric="RGB", bits_stored=8)
    write_mg(src / "dose.dcm", mammo_like((32, 32)), sop_class=SECONDARY_CAPTURE,
             SeriesDescription="Patient Dose Report")
    write_mg(src / "mask.dcm", (mammo_like((32, 32)) > 2000).astype(np.uint16) * 255,
             sop_class=SECONDARY_CAPTURE)
    copy = src / "zz_copy" / "a_again.dcm"
    copy.parent.mkdir()
    copy.write_bytes((src / "site1" / "study1" / "a.dcm").read_bytes())
    (src / "broken.dcm").write_bytes(b"not a dicom file at all" * 10)
    (src / "notes.txt").write_text("exported 2024")
    (src / ".DS_Store").write_bytes(b"\0\1")
    return src, px


def test_detects_and_ingests_an_unlabelled_tree(tree, tmp_path):
    src, px = tree
    before = tree_digest(src)
    assert detect_format(src) == "images"
    result = run_ingest(IngestConfig(source=src, out=tmp_path / "m.zarr", progress=False))
    assert result.format == "images"
    assert tree_digest(src) == before  # the source is only read
    store = open_store(tmp_path / "m.zarr", "mammograms")
    store.check(deep=True)
    assert store.meta.source_format == "images" and store.meta.schema_version == "1.1"
    by_path = {store.record(c).source_path: c for c in store.case_ids}
    expected = {
        "site1/study1/a.dcm": "a",
        "site1/IM0002": "b",
        "Mass-Training_P_00042_RIGHT_CC/07-20-2016/1-1.dcm": "c",
        "20586908_6c613a14_MG_R_CC_ANON.dcm": "d",
        "png/case1_L_MLO.png": "e",
        "png/scan.tif": "f",
        "old/cr.dcm": "g",
    }
    assert sorted(by_path) == sorted(expected)
    for rel, key in expected.items():
        data = store.load(by_path[rel])
        np.testing.assert_array_equal(data.image, px[key])
        assert data.mass_mask is None and data.breast_mask is None and data.mass_labels is None
        assert data.record.pathology == "unknown" and data.record.abnormality == "unknown"
        assert data.record.masses == [] and data.record.source_dataset == "images"
    assert result.n_cases == 7 and result.n_mass_cases == 0


def test_header_values_and_where_they_came_from(tree, tmp_path):
    src, _ = tree
    run_ingest(IngestConfig(source=src, out=tmp_path / "m.zarr", progress=False))
    store = open_store(tmp_path / "m.zarr", "mammograms")
    rec = {r.source_path: r for r in store.records()}

    a = rec["site1/study1/a.dcm"]
    assert (a.patient_id, a.laterality, a.view, a.pixel_spacing) == ("PAT7", "R", "MLO",
                                                                      (0.07, 0.07))
    assert a.case_id == "site1_study1_a" and a.bits_stored == 12
    assert a.dicom is not None
    assert a.dicom.sop_instance_uid == uid_for((src / "site1/study1/a.dcm").as_posix())
    assert a.dicom.study_instance_uid == uid_for("study")
    assert a.dicom.series_instance_uid == uid_for("series")
    assert (a.dicom.manufacturer, a.dicom.study_id, a.dicom.modality) == ("ACME Imaging", "S1",
                                                                          "MG")
    assert a.dicom.transfer_syntax_uid == "1.2.840.10008.1.2.1"
    notes = _notes(a)
    for text in ("patient_id PAT7 from DICOM PatientID", "laterality R from DICOM ImageLaterality",
                 "view MLO from DICOM ViewPosition", "from DICOM PixelSpacing"):
        assert text in notes

    b = rec["site1/IM0002"]
    assert (b.patient_id, b.laterality, b.view, b.pixel_spacing) == ("PAT7", "L", "CC",
                                                                      (0.1, 0.085))
    notes = _notes(b)
    assert "laterality L from DICOM Laterality" in notes
    assert "view CC from DICOM ViewCodeSequence (399162004 'cranio-caudal')" in notes
    assert "from DICOM ImagerPixelSpacing" in notes

    c = rec["Mass-Training_P_00042_RIGHT_CC/07-20-2016/1-1.dcm"]
    assert (c.patient_id, c.laterality, c.view, c.pixel_spacing) == ("P_00042", "R", "CC", None)
    notes = _notes(c)
    assert "its patient part" in notes
    assert "laterality R from the name 'Mass-Training_P_00042_RIGHT_CC'" in notes
    assert "view CC from the name 'Mass-Training_P_00042_RIGHT_CC'" in notes
    assert "pixel_spacing unknown" in notes and "RLE Lossless" in notes

    d = rec["20586908_6c613a14_MG_R_CC_ANON.dcm"]
    assert (d.laterality, d.view) == ("L", "CC")  # the header wins over the name
    assert "laterality R from the name" in _notes(d) and "disagrees" in _notes(d)

    e = rec["png/case1_L_MLO.png"]
    assert (e.laterality, e.view, e.dicom) == ("L", "MLO", None)
    assert e.patient_id == e.case_id == "png_case1_L_MLO"
    assert "patient_id unknown" in _notes(e)

    f = rec["png/scan.tif"]
    assert (f.laterality, f.view) == ("unknown", "other")
    assert "laterality unknown" in _notes(f) and "view unknown" in _notes(f)

    g = rec["old/cr.dcm"]
    assert g.dicom is not None and g.dicom.modality == "CR"
    assert "BodyPartExamined BREAST" in _notes(g)


def test_every_skipped_file_has_its_reason(tree, tmp_path):
    src, _ = tree
    result = run_ingest(IngestConfig(source=src, out=tmp_path / "m.zarr", progress=False))
    reasons = {s.path: s.reason for s in result.skipped}
    expected = {
        "ct.dcm": "modality CT, not MG",
        "raw.dcm": "FOR PROCESSING",
        "tomo.dcm": "3 frames",
        "shot.dcm": "colour secondary capture",
        "dose.dcm": "dose",
        "mask.dcm": "only two grey levels",
        "zz_copy/a_again.dcm": "SOPInstanceUID of case site1_study1_a",
        "broken.dcm": "not a DICOM file",
        "notes.txt": "not a mammogram file",
    }
    assert sorted(reasons) == sorted(expected)  # hidden files are not listed
    for path, text in expected.items():
        assert text in reasons[path], (path, reasons[path])
    assert "--for-processing" in reasons["raw.dcm"]
    store = open_store(tmp_path / "m.zarr", "mammograms")
    assert [s.path for s in store.meta.skipped] == [s.path for s in result.skipped]


def test_for_processing_images_on_request(tree, tmp_path):
    src, _ = tree
    config = IngestConfig(source=src, out=tmp_path / "m.zarr", progress=False,
                          for_processing=True)
    result = run_ingest(config)
    assert "raw.dcm" not in {s.path for s in result.skipped} and result.n_cases == 8
    record = open_store(tmp_path / "m.zarr", "mammograms").record("raw")
    assert "FOR PROCESSING" in _notes(record)


def test_patients_csv_overrides_and_is_not_skipped(tmp_path):
    src = tmp_path / "src"
    _png(src / "x" / "1.png", mammo_like((40, 30), bits=8).astype(np.uint8))
    write_mg(src / "2.dcm", mammo_like((40, 30)), PatientID="FROM_HEADER")
    (src / "patients.csv").write_text("file,patient_id\nx/1.png,alice\n2.dcm,bob\n")
    result = run_ingest(IngestConfig(source=src, out=tmp_path / "m.zarr", progress=False))
    assert result.n_skipped == 0
    store = open_store(tmp_path / "m.zarr", "mammograms")
    assert {r.source_path: r.patient_id for r in store.records()} == {"x/1.png": "alice",
                                                                      "2.dcm": "bob"}
    assert "disagrees" in _notes(store.record("2"))


def test_case_ids_stay_unique(tmp_path):
    src = tmp_path / "src"
    img = mammo_like((40, 30), bits=8).astype(np.uint8)
    _png(src / "a b.png", img)
    _png(src / "a_b.png", img[::-1].copy())
    _png(src / "a_b.tif", img[:, ::-1].copy())
    run_ingest(IngestConfig(source=src, out=tmp_path / "m.zarr", progress=False))
    ids = open_store(tmp_path / "m.zarr", "mammograms").case_ids
    assert sorted(ids) == ["a_b", "a_b_2", "a_b_3"]


@pytest.mark.parametrize(
    ("rel", "expected"),
    [
        ("Mass-Training_P_00001_LEFT_CC/07-20-2016-DDSM/1-1.dcm",
         {"laterality": "L", "view": "CC", "patient_id": "P_00001"}),
        ("20586908_6c613a14b80a8591_MG_R_MLO_ANON.dcm", {"laterality": "R", "view": "MLO"}),
        ("scans/RCC.png", {"laterality": "R", "view": "CC"}),
        ("left_mlo/img.tif", {"laterality": "L", "view": "MLO"}),
        ("MLO-L.png", {"laterality": "L", "view": "MLO"}),
        ("R/whatever.png", {}),  # a lone R is not a side
        ("CRLF_ROCC_LEFTOVER.png", {}),  # nor are letters inside words
    ],
)
def test_name_hints(rel, expected):
    found = {name: value for name, value, _ in name_hints(PurePosixPath(rel))}
    assert found == expected


def test_file_name_first_then_nearest_folder():
    hints = {n: (v, part) for n, v, part in name_hints(PurePosixPath("LEFT_CC/x/img_R_MLO.png"))}
    assert hints == {"laterality": ("R", "img_R_MLO"), "view": ("MLO", "img_R_MLO")}


def test_no_usable_image_fails_cleanly(tmp_path):
    src = tmp_path / "src"
    write_mg(src / "ct.dcm", mammo_like((32, 32)), sop_class=CT_IMAGE, Modality="CT")
    with pytest.raises(InputFileError) as err:
        run_ingest(IngestConfig(source=src, out=tmp_path / "m.zarr", progress=False))
    assert "no usable case" in err.value.message and "ct.dcm" in err.value.message
    assert not (tmp_path / "m.zarr").exists()


def test_a_folder_without_images_is_not_detected_as_images(tmp_path):
    (tmp_path / "x.txt").write_text("hello")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "y.csv").write_text("a,b\n")
    with pytest.raises(InputFileError) as err:
        detect_format(tmp_path)
    assert "images:" in err.value.message


def test_other_formats_are_still_detected_first(tmp_path):
    for sub in ("mg", "mask"):
        _png(tmp_path / "train01" / sub / "0.png", mammo_like((20, 20), bits=8).astype(np.uint8))
    assert detect_format(tmp_path) == "folder"


def test_a_store_inside_the_source_is_not_read(tree, tmp_path):
    """E.g. ``mammo ingest data ...`` where data/ also holds data/mammograms.zarr."""
    src, _ = tree
    run_ingest(IngestConfig(source=src, out=tmp_path / "first.zarr", progress=False))
    shutil.copytree(tmp_path / "first.zarr", src / "inside.zarr")
    again = run_ingest(IngestConfig(source=src, out=tmp_path / "m.zarr", progress=False))
    reasons = {s.path: s.reason for s in again.skipped}
    assert "Zarr store" in reasons["inside.zarr"]
    assert not any(p.startswith("inside.zarr/") for p in reasons)
    assert again.n_cases == 7


def test_cli_images_format(tree, tmp_path):
    src, _ = tree
    result = CliRunner().invoke(
        app, ["ingest", str(src), str(tmp_path / "m.zarr"), "--format", "images",
              "--for-processing"]
    )
    assert result.exit_code == 0, result.output
    assert "8 cases" in result.output and "from images" in result.output
    assert "skipped ct.dcm" in result.output
    bad = CliRunner().invoke(app, ["ingest", str(src), str(tmp_path / "n.zarr"), "--format",
                                   "pictures"])
    assert bad.exit_code == 2 and "images" in bad.output


def test_progress_counts_files(tree, tmp_path, monkeypatch):
    import io

    from rich.console import Console

    from mammo_common import cli_support

    src, _ = tree
    buffer = io.StringIO()
    monkeypatch.setattr(cli_support, "progress_enabled", lambda: True)
    monkeypatch.setattr(cli_support, "err_console", Console(file=buffer, width=150))
    run_ingest(IngestConfig(source=src, out=tmp_path / "m.zarr", progress=True))
    shown = buffer.getvalue()
    assert "ingest images" in shown and "15/15" in shown  # every DICOM/image file, one bar


def test_header_corner_cases(tmp_path):
    src = tmp_path / "src"
    outside = write_mg(tmp_path / "elsewhere" / "x.dcm", mammo_like((40, 30)))
    (src / "linked").mkdir(parents=True)
    (src / "linked" / "x.dcm").symlink_to(outside)
    (src / "dirlink").symlink_to(outside.parent, target_is_directory=True)
    write_mg(src / "xccl.dcm", mammo_like((40, 30), seed=1), ViewPosition="XCCL",
             ImageLaterality="B")
    write_mg(src / "coded.dcm", mammo_like((40, 30), seed=2), Modality=None,
             ViewCodeSequence=view_code("R-10226", "medio-lateral oblique", "SRT"))
    write_mg(src / "DICOMDIR", mammo_like((40, 30), seed=3), sop_class="1.2.840.10008.1.3.10")
    result = run_ingest(IngestConfig(source=src, out=tmp_path / "m.zarr", progress=False))
    reasons = {s.path: s.reason for s in result.skipped}
    assert sorted(reasons) == ["DICOMDIR", "dirlink", "linked/x.dcm"]
    assert "DICOMDIR" in reasons["DICOMDIR"]
    assert "outside the source folder" in reasons["linked/x.dcm"]
    assert "outside the source folder" in reasons["dirlink"]
    store = open_store(tmp_path / "m.zarr", "mammograms")
    xccl, coded = store.record("xccl"), store.record("coded")
    assert (xccl.view, xccl.laterality) == ("other", "unknown")
    assert "view other from DICOM ViewPosition (XCCL)" in _notes(xccl)
    assert "ImageLaterality is 'B'" in _notes(xccl)
    assert coded.view == "MLO" and "ViewCodeSequence (R-10226" in _notes(coded)
    assert "no Modality" in _notes(coded)
