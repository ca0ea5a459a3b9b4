"""BCDR ingest: outlines with leading spaces, " Malign", density "N", image-info-only images."""

from __future__ import annotations

import numpy as np
from formats import tree_digest, write_bcdr

from mammo_common import open_store
from mammo_common.ingest import IngestConfig, detect_format, run_ingest


def test_bcdr(tmp_path):
    expected = write_bcdr(tmp_path / "src")
    before = tree_digest(tmp_path / "src")
    assert detect_format(tmp_path / "src") == "bcdr"
    res = run_ingest(IngestConfig(source=tmp_path / "src", out=tmp_path / "m.zarr",
                                  progress=False))
    assert tree_digest(tmp_path / "src") == before
    store = open_store(tmp_path / "m.zarr", "mammograms", deep=True)
    assert sorted(store.case_ids) == sorted(expected)
    for case_id, mask in expected.items():
        np.testing.assert_array_equal(store.array(case_id, "mass_mask"), mask)
    mass = store.load("3_5_1_LCC")
    rec = mass.record
    assert rec.abnormality == "mass" and rec.pathology == "MALIGNANT"
    assert rec.pathology_source == "biopsy"
    assert rec.laterality == "L" and rec.view == "CC" and rec.density is None
    assert rec.patient_id == "3" and rec.bits_stored == 8
    assert mass.image.dtype == np.uint16 and mass.image.max() > 255  # scaled x257
    assert rec.masses[0].bbox == (30, 10, 41, 21)
    normal = store.record("3_5_1_RCC")
    assert normal.abnormality == "none" and normal.laterality == "R"
    assert len(res.skipped) == 1 and "img_4_6_1_LMLO" in res.skipped[0].reason
