"""INbreast ingest: file names, OsiriX plist ROIs, semicolon CSV, BI-RADS proxy."""

from __future__ import annotations

import numpy as np
from formats import tree_digest, write_inbreast

from mammo_common import open_store
from mammo_common.ingest import IngestConfig, detect_format, run_ingest
from mammo_common.ingest.inbreast import parse_points


def test_inbreast(tmp_path):
    expected = write_inbreast(tmp_path / "src")
    before = tree_digest(tmp_path / "src")
    assert detect_format(tmp_path / "src") == "inbreast"
    res = run_ingest(IngestConfig(source=tmp_path / "src", out=tmp_path / "m.zarr",
                                  progress=False))
    assert tree_digest(tmp_path / "src") == before
    store = open_store(tmp_path / "m.zarr", "mammograms", deep=True)
    assert sorted(store.case_ids) == sorted(expected)
    for case_id, mask in expected.items():
        np.testing.assert_array_equal(store.array(case_id, "mass_mask"), mask)
    mass = store.record("20586908")
    assert mass.abnormality == "mass" and mass.birads == 4 and mass.pathology == "MALIGNANT"
    assert mass.pathology_source == "birads_proxy"
    assert mass.patient_id == "6c613a14b80a8591"  # CSV says "removed": the file-name hash
    assert mass.laterality == "R" and mass.view == "CC" and mass.density == 2
    assert mass.pixel_spacing == (0.07, 0.07)
    assert any("proxy" in n for n in mass.notes)
    assert any("2 calcification" in n for n in mass.notes)
    assert len(mass.masses) == 1 and mass.masses[0].area == 121
    other = store.load("20586934")
    assert other.record.abnormality == "none" and other.record.view == "MLO"
    assert other.record.photometric_interpretation == "MONOCHROME1"
    assert [s.path for s in res.skipped] == ["AllDICOMs/bogus_name.dcm"]


def test_parse_points_formats():
    pts = parse_points(["(1.5, 2)", "(3, 4, 0)", "junk", [5, 6]])
    np.testing.assert_array_equal(pts, [[1.5, 2], [3, 4], [5, 6]])
