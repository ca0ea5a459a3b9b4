"""CBIS-DDSM ingest: synthetic output round trip and the real format's known defects."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from formats import tree_digest, write_cbis

from mammo_common import open_store
from mammo_common.errors import InputFileError, MammoError
from mammo_common.ingest import IngestConfig, run_ingest
from mammo_common.synth import DEFAULT_STYLE, render, sample_dataset, synth
from mammo_common.synth.cbis_layout import to_uint16

SMALL = (64, 48)


@pytest.fixture(scope="module")
def synth_store(tmp_path_factory):
    root = tmp_path_factory.mktemp("cbis")
    synth(root / "raw", cases=6, seed=2, size=SMALL)
    before = tree_digest(root / "raw")
    result = run_ingest(IngestConfig(source=root / "raw", out=root / "m.zarr", progress=False))
    return root, result, before


def test_synth_round_trip_counts_and_lineage(synth_store):
    root, result, before = synth_store
    specs = sample_dataset(6, seed=2)
    assert result.format == "cbis-ddsm"
    assert result.n_cases == len(specs) and result.n_skipped == 0
    assert result.n_mass_cases == sum(1 for s in specs if s.lesions)
    store = open_store(root / "m.zarr", "mammograms", deep=True)
    assert store.meta.producer.package == "mammo-common"
    assert store.meta.producer.command == "ingest"
    assert store.meta.parents[0].kind == "raw-cbis-ddsm"
    assert store.meta.parents[0].digest == result.source_digest
    assert tree_digest(root / "raw") == before  # inputs unchanged


def test_synth_masks_and_images_align(synth_store):
    root, _, _ = synth_store
    store = open_store(root / "m.zarr", "mammograms")
    notes = []
    for spec in sample_dataset(6, seed=2, style=DEFAULT_STYLE):
        case_id = f"{spec.patient_id}_{spec.side}_{spec.view}"
        data = store.load(case_id)
        rec = data.record
        notes.extend(rec.notes)
        ph = render(spec, SMALL, seed=2)
        truth = np.zeros(SMALL, np.uint8)
        for m in ph.mass_masks:
            truth |= m.astype(np.uint8)
        np.testing.assert_array_equal(data.mass_mask, truth)
        assert rec.laterality == spec.side[0] and rec.view == spec.view
        assert rec.abnormality == ("mass" if spec.lesions else "none")
        assert len(rec.masses) == len(spec.lesions)
        if spec.lesions:
            assert rec.pathology_source == "synthetic"
            assert {m.shape for m in rec.masses} <= {lesion.shape for lesion in spec.lesions}
            assert set(np.unique(data.mass_labels)) == set(range(len(spec.lesions) + 1))
        if not any("VOI" in n for n in rec.notes):
            np.testing.assert_array_equal(data.image, to_uint16(ph.image))
        assert rec.pixel_spacing is not None and rec.bits_stored == 16
    joined = " ".join(notes)
    assert "swapped" in joined and "not on disk" in joined and "MONOCHROME1" in joined


def test_real_format_defects(tmp_path):
    expected = write_cbis(tmp_path / "src")
    before = tree_digest(tmp_path / "src")
    res = run_ingest(IngestConfig(source=tmp_path / "src", out=tmp_path / "m.zarr",
                                  format="cbis-ddsm", progress=False))
    assert tree_digest(tmp_path / "src") == before
    store = open_store(tmp_path / "m.zarr", "mammograms", deep=True)
    assert sorted(store.case_ids) == sorted(expected)
    for case_id, mask in expected.items():
        np.testing.assert_array_equal(store.array(case_id, "mass_mask"), mask)
    two = store.load("P_00001_LEFT_CC")
    assert two.record.pathology == "MALIGNANT" and len(two.record.masses) == 2
    assert set(np.unique(two.mass_labels)) == {0, 1, 2}
    assert two.record.masses[0].bbox == (15, 10, 26, 21) and two.record.masses[0].area > 0
    notes = " ".join(two.record.notes)
    assert "swapped" in notes and "not on disk" in notes
    resized = store.record("P_00002_RIGHT_MLO")
    assert any("resized" in n for n in resized.notes)
    calc = store.load("P_00005_LEFT_MLO")
    assert calc.record.abnormality == "calcification" and calc.record.density == 3
    assert calc.record.pathology == "BENIGN_WITHOUT_CALLBACK"
    assert calc.mass_labels.any() and not calc.mass_mask.any()
    reasons = {s.path: s.reason for s in res.skipped}
    assert any("P_00003" in r and ".." in r for r in reasons.values())
    assert any("P_00004" in r for r in reasons.values())
    assert store.meta.skipped == res.skipped


def test_no_usable_case_writes_nothing(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "mass_case_description_train_set.csv").write_text(
        "patient_id,breast_density,left or right breast,image view,abnormality id,"
        "abnormality type,mass shape,mass margins,assessment,pathology,subtlety,"
        "image file path,cropped image file path,ROI mask file path\n"
        "P_1,2,LEFT,CC,1,mass,ROUND,CIRCUMSCRIBED,3,BENIGN,3,/etc/passwd,a/b/c.dcm,a/b/d.dcm\n"
    )
    out = tmp_path / "new" / "deeper" / "m.zarr"
    with pytest.raises(InputFileError, match="no usable case") as err:
        run_ingest(IngestConfig(source=src, out=out, progress=False))
    assert "absolute" in err.value.message
    assert not (tmp_path / "new").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["src"]


def test_output_inside_source_refused(tmp_path):
    write_cbis(tmp_path / "src")
    with pytest.raises(MammoError, match="input"):
        run_ingest(IngestConfig(source=tmp_path / "src", out=tmp_path / "src" / "m.zarr",
                                progress=False))
    assert not (Path(tmp_path / "src") / "m.zarr").exists()
