"""Synthetic mammograms: bit-for-bit determinism, CBIS layout and defects, image content."""

from __future__ import annotations

import csv
import itertools

import numpy as np
import pydicom
import pytest
from pydantic import ValidationError
from scipy import ndimage as ndi
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
        body, _, _ = mass_layers(rng, lesion, (50.0, 50.0), 18.0, (100, 100))
        compact = 4 * np.pi * body.sum() / perimeter(body) ** 2
        scores["malignant" if i % 2 else "benign"].append(compact)
    assert np.mean(scores["benign"]) > np.mean(scores["malignant"]) + 0.05


def _phantoms(style, cases=8, size=(256, 192), seed=2):
    return [(s, render(s, size, seed)) for s in sample_dataset(cases, seed, style)]


def test_style_validated_and_mixed_draws_both():
    with pytest.raises(ValidationError):
        SynthConfig(out="x", style="xeroradiography")
    styles = {s.style for s in sample_dataset(12, 0, "mixed")}
    assert styles == {"film", "digital"}


def test_film_background_is_not_black_and_digital_is():
    def background(ph):
        bg = ~ph.breast_mask & ~ph.marks_mask
        bg &= ~ndi.binary_dilation(ph.breast_mask, iterations=3)
        return ph.image[bg]

    film = [background(ph) for _, ph in _phantoms("film")]
    digital = [background(ph) for _, ph in _phantoms("digital")]
    assert all(0.03 < np.median(b) < 0.3 and b.std() > 0.003 for b in film)
    assert all(np.median(b) < 0.03 for b in digital)
    # film artefacts (labels, markers, edges) exist and stay off the breast
    assert sum(ph.marks_mask.any() for _, ph in _phantoms("film")) >= 6


def test_skin_edge_darker_than_interior_but_not_blank():
    for _, ph in _phantoms("film", cases=4):
        dist = ndi.distance_transform_edt(np.pad(ph.breast_mask, 1))[1:-1, 1:-1] * ph.spacing_mm
        edge = ph.breast_mask & (dist > 0.5) & (dist < 3) & ~ph.pectoral_mask
        inner = ph.breast_mask & (dist > 25) & (ph.gland < 0.05) & ~ph.pectoral_mask
        bg = ~ndi.binary_dilation(ph.breast_mask, iterations=3) & ~ph.marks_mask
        assert ph.image[bg].mean() + 0.03 < ph.image[edge].mean() < ph.image[inner].mean()


def test_dense_share_follows_birads_density():
    share: dict[int, list[float]] = {}
    for spec, ph in _phantoms("film", cases=24, size=(128, 96), seed=4):
        share.setdefault(spec.density, []).append(float((ph.gland[ph.breast_mask] >= 0.2).mean()))
    means = [np.mean(share[d]) for d in sorted(share)]
    assert len(means) >= 3 and all(a < b for a, b in itertools.pairwise(means))


def test_masses_realistic_size_and_often_hidden_in_dense_tissue():
    diam, dense, threshold_dice = [], [], []
    for _, ph in _phantoms("film", cases=16, size=(384, 288), seed=5):
        for m in ph.mass_masks:
            r = np.sqrt(m.sum() / np.pi)
            diam.append(2 * r * ph.spacing_mm)
            ring = ndi.binary_dilation(m, iterations=max(2, round(1.5 * r)))
            ring &= ~ndi.binary_dilation(m, iterations=max(1, round(0.5 * r))) & ph.breast_mask
            dense.append(np.median(ph.gland[ring]) >= 0.2)
            values = ph.image[ph.breast_mask]
            truth = m[ph.breast_mask]
            hits = np.cumsum(truth[np.argsort(-values, kind="stable")])
            k = np.arange(1, values.size + 1)
            threshold_dice.append(float((2 * hits / (k + truth.sum())).max()))
    diam = np.array(diam)
    assert len(diam) >= 10
    assert np.mean((diam >= 5) & (diam <= 30)) >= 0.75
    assert np.mean(dense) >= 0.3  # many masses sit in dense tissue
    assert np.mean(np.array(threshold_dice) < 0.5) >= 0.3  # not findable by a global threshold
