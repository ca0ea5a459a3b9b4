"""Synthetic mammograms: bit-for-bit determinism, CBIS layout and defects, image content."""

from __future__ import annotations

import csv

import numpy as np
import pydicom
import pytest
from pydantic import ValidationError
from skimage.measure import perimeter

from mammo_common.errors import MammoError
from mammo_common.synth import SynthConfig, render, sample_dataset, synth
from mammo_common.synth.cases import sample_lesion
from mammo_common.synth.cbis_layout import MASS_COLUMNS
from mammo_common.synth.phantom import mass_layers

SMALL = (64, 48)


def _files(root):
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def test_same_arguments_give_identical_bytes(tmp_path):
    a = synth(tmp_path / "a", cases=3, seed=5, size=SMALL)
    synth(tmp_path / "b", cases=3, seed=5, size=SMALL)
    fa, fb = _files(tmp_path / "a"), _files(tmp_path / "b")
    assert fa.keys() == fb.keys()
    assert all(fa[k] == fb[k] for k in fa)
    assert a.n_files == len(fa)
    synth(tmp_path / "c", cases=3, seed=6, size=SMALL)
    fc = _files(tmp_path / "c")
    assert fc.keys() != fa.keys() or any(fa[k] != fc[k] for k in fa)


def test_layout_columns_and_defects(tmp_path):
    res = synth(tmp_path / "raw", cases=6, seed=0, size=SMALL)
    root = tmp_path / "raw"
    assert res.n_images > res.n_mass_images > 0 and res.n_normal_images > 0
    assert res.n_malignant > 0 and res.n_benign > 0
    with (root / "mass_case_description_train_set.csv").open(newline="") as fh:
        reader = csv.DictReader(fh)
        assert tuple(reader.fieldnames) == MASS_COLUMNS
        rows = list(reader)
    assert (root / "mass_case_description_test_set.csv").is_file()
    assert {r["pathology"] for r in rows} <= {"BENIGN", "BENIGN_WITHOUT_CALLBACK", "MALIGNANT"}
    paths = [r[c] for r in rows for c in ("cropped image file path", "ROI mask file path")]
    assert any(p.endswith("\n") for p in paths)  # trailing newline defect
    dcms = list((root / "CBIS-DDSM").rglob("*.dcm"))
    assert any(p.name == "000000.dcm" for p in dcms)  # renamed file defect
    ds = [pydicom.dcmread(p, stop_before_pixels=True) for p in dcms]
    assert any(d.PhotometricInterpretation == "MONOCHROME1" for d in ds)
    assert any("WindowCenter" in d for d in ds)
    assert all(d.Rows in (SMALL[0],) or d.SeriesDescription == "cropped images" for d in ds)
    for d in ds:
        assert d.file_meta.TransferSyntaxUID == pydicom.uid.ExplicitVRLittleEndian
        assert "StudyDate" not in d and "ContentTime" not in d
    swapped = [r for r in rows if "ROI mask" not in r["ROI mask file path"]]
    assert rows and len(swapped) <= len(rows)


def test_output_exists_refused_then_overwritten(tmp_path):
    synth(tmp_path / "raw", cases=1, size=SMALL)
    with pytest.raises(MammoError, match="already exists"):
        synth(tmp_path / "raw", cases=1, size=SMALL)
    synth(tmp_path / "raw", cases=2, size=SMALL, overwrite=True)


def test_config_validated():
    with pytest.raises(ValidationError):
        SynthConfig(out="x", size=(8, 8))
    with pytest.raises(ValidationError):
        SynthConfig(out="x", cases=0)


def test_phantom_content():
    specs = sample_dataset(4, seed=3)
    for spec in specs:
        ph = render(spec, (128, 96), seed=3)
        assert ph.image.dtype == np.float32 and 0 <= ph.image.min() <= ph.image.max() <= 1
        frac = ph.breast_mask.mean()
        assert 0.2 < frac < 0.85
        assert len(ph.mass_masks) == len(spec.lesions)
        for m in ph.mass_masks:
            assert m.sum() > 5 and not (m & ~ph.breast_mask).any()
        assert ph.pectoral_mask.any() == (spec.view == "MLO")
        assert not (ph.marks_mask & ph.breast_mask).any()
        # the breast is brighter than the film background
        background = ~ph.breast_mask & ~ph.marks_mask
        assert ph.image[ph.breast_mask].mean() > ph.image[background].mean() + 0.15
        chest_col = 0 if spec.side == "LEFT" else -1
        assert ph.breast_mask[:, chest_col].any()


def test_masses_are_brighter_than_surroundings():
    specs = [s for s in sample_dataset(6, seed=1) if s.lesions]
    diffs = []
    from scipy import ndimage as ndi

    for spec in specs:
        ph = render(spec, (256, 192), seed=1)
        for m in ph.mass_masks:
            ring = ndi.binary_dilation(m, iterations=6) & ~ndi.binary_dilation(m, iterations=2)
            ring &= ph.breast_mask
            diffs.append(ph.image[m].mean() - ph.image[ring].mean())
    assert np.mean(diffs) > 0.05


def test_benign_masses_more_compact_than_malignant():
    rng = np.random.default_rng(0)
    scores = {"benign": [], "malignant": []}
    for i in range(80):
        lesion = sample_lesion(rng, "MALIGNANT" if i % 2 else "BENIGN")
        body, _ = mass_layers(rng, lesion, (50.0, 50.0), 18.0, (100, 100))
        compact = 4 * np.pi * body.sum() / perimeter(body) ** 2
        scores["malignant" if i % 2 else "benign"].append(compact)
    assert np.mean(scores["benign"]) > np.mean(scores["malignant"]) + 0.05
