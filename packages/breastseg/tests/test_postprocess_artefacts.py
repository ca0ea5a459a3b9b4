"""Breast-mask post-processing on film and digital mammograms (``breastseg.postprocess``).

The images come from the project's own generator (``mammo_common.synth``, as ``mammo synth
--style film|digital`` renders them): film images carry ID labels, lead markers, rulers and
bright film-edge strips, and the generator knows the exact breast (``breast_mask``) and the
exact artefacts (``marks_mask``). Masks that hold the artefacts (a threshold of the film image,
the truth with the artefacts joined to it) must come back as the truth breast; a MONOCHROME1
digital DICOM must be segmented right through ingest and ``breastseg predict``; holes are
filled, the chest-wall side is known or inferred, and an empty mask stays empty with a warning.
"""

from __future__ import annotations

import sys
import types
from functools import cache
from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage

from breastseg.config import PredictConfig
from breastseg.labeller import label_breast
from breastseg.postprocess import (
    BreastMaskWarning,
    PostprocessConfig,
    fill_breast_holes,
    infer_chest_wall,
    laterality_side,
    postprocess_breast_mask,
)
from breastseg.segment import breast_mask, segment_breast
from mammo_common.metrics import dice
from mammo_common.postprocess import fill_holes, largest_component
from mammo_common.synth import render
from mammo_common.synth.cases import ImageSpec, sample_patient

SIZE = (512, 384)
#: Film patients of seed 0 (``sample_patient(0, index, "film")``) with an image whose threshold
#: a plain largest component + hole filling gets wrong (film edges, labels and markers joined to
#: the breast, or background enclosed by film edges filled): P_00001 (RIGHT_MLO), P_00015
#: (LEFT_CC), P_00034 (LEFT_MLO), P_00037 (RIGHT_MLO), 12 images. Picked for the current
#: generator (margins and shape in the pixels): of patients 0-59 (163 images) 13 images have
#: one, never two in a patient; the post-processing assertions below hold on all 163.
FILM_PATIENTS = (0, 14, 33, 36)


@cache
def _phantoms(style: str, patients: tuple[int, ...]) -> list[tuple[ImageSpec, object]]:
    out = []
    for index in patients:
        for spec in sample_patient(0, index, style):
            out.append((spec, render(spec, SIZE, 0)))
    return out


def film_phantoms() -> list[tuple[ImageSpec, object]]:
    """The rendered film images of :data:`FILM_PATIENTS` with their truth."""
    return _phantoms("film", FILM_PATIENTS)


def film_threshold(ph) -> np.ndarray:
    """A threshold of the (lightly smoothed) film image, with the whole breast in it.

    The threshold sits just above the background (its 99.5th percentile), so the mask holds
    every label, marker, ruler and film edge, plus noise; the truth breast is OR-ed in so that
    only the post-processing is judged, not the threshold's reach into the faint periphery.
    """
    image = ndimage.gaussian_filter(ph.image, 1.0)
    background = ~ph.breast_mask & ~ndimage.binary_dilation(ph.marks_mask, iterations=3)
    return (image > np.percentile(image[background], 99.5)) | ph.breast_mask


def attached_artefacts(spec: ImageSpec, ph) -> tuple[np.ndarray, np.ndarray]:
    """The truth's artefacts, joined to the breast: ``(artefact mask, mask to post-process)``.

    Film-edge strips of 2-9 mm along all four borders over their whole length (so they run
    into the breast where it meets a border) and a 3-pixel bridge from every label, marker and
    ruler to the nearest breast pixel.
    """
    truth = ph.breast_mask
    rng = np.random.default_rng(spec.key)
    art = ph.marks_mask.copy()
    for edge in range(4):
        width = int(rng.integers(4, 20))
        sl = [slice(None), slice(None)]
        sl[edge // 2] = slice(None, width) if edge % 2 == 0 else slice(-width, None)
        art[tuple(sl)] = True
    labels, n = ndimage.label(ph.marks_mask)
    _, (iy, ix) = ndimage.distance_transform_edt(~truth, return_indices=True)
    for index in range(1, n + 1):
        ys, xs = np.nonzero(labels == index)
        y0, x0 = int(ys.mean()), int(xs.mean())
        y1, x1 = int(iy[y0, x0]), int(ix[y0, x0])
        for t in np.linspace(0.0, 1.0, 600):
            y, x = round(y0 + (y1 - y0) * t), round(x0 + (x1 - x0) * t)
            art[max(0, y - 1) : y + 2, max(0, x - 1) : x + 2] = True
    return art & ~truth, truth | art


# --- film artefacts ---------------------------------------------------------------------------


def test_truth_with_its_artefacts_gives_the_truth():
    for spec, ph in film_phantoms():
        out = postprocess_breast_mask(ph.breast_mask | ph.marks_mask, laterality=spec.side[0])
        kept = out.mask.astype(bool)
        assert ph.marks_mask.any(), spec.name
        assert not (kept & ph.marks_mask).any(), spec.name
        assert dice(kept, ph.breast_mask) >= 0.999, spec.name
        assert out.removed_pixels >= int(ph.marks_mask.sum()), spec.name


def test_threshold_of_film_image_loses_labels_markers_rulers_and_edges():
    plain_kept = 0
    for spec, ph in film_phantoms():
        mask = film_threshold(ph)
        assert (mask & ph.marks_mask).sum() > 0.5 * ph.marks_mask.sum(), spec.name
        kept = postprocess_breast_mask(mask, laterality=spec.side[0]).mask.astype(bool)
        assert not (kept & ph.marks_mask).any(), spec.name
        assert dice(kept, ph.breast_mask) >= 0.98, spec.name
        # the same without knowing the laterality (side inferred from the mask)
        inferred = postprocess_breast_mask(mask).mask.astype(bool)
        assert not (inferred & ph.marks_mask).any(), spec.name
        plain = fill_holes(largest_component(mask))
        plain_kept += int((plain & ph.marks_mask).any())
    # these images are hard: the plain largest component + fill holes keeps artefacts in some
    # (4 of the 12; fewer means the generator changed and FILM_PATIENTS must be picked again)
    assert plain_kept >= 3


def test_film_edges_and_bridges_joined_to_the_breast_are_cut_off():
    for spec, ph in film_phantoms():
        art, mask = attached_artefacts(spec, ph)
        out = postprocess_breast_mask(mask, laterality=spec.side[0])
        kept = out.mask.astype(bool)
        assert dice(kept, ph.breast_mask) >= 0.99, spec.name
        # whatever is kept beyond the breast is where a strip runs into the skin line, within
        # the widest strip (19 px, 9 mm) of the breast; labels, markers, rulers and bridges
        # away from the borders are all gone
        extra = kept & ~ph.breast_mask
        near = ndimage.distance_transform_edt(~ph.breast_mask) <= 19
        assert not (extra & ~near).any(), spec.name
        assert extra.sum() <= 0.03 * art.sum(), spec.name
        inner = np.zeros_like(art)
        inner[20:-20, 20:-20] = True
        assert not (kept & ph.marks_mask & inner).any(), spec.name
        # without the cut the largest component keeps the strips and bridges
        uncut = postprocess_breast_mask(mask, PostprocessConfig(cut_width=0.0))
        assert (uncut.mask.astype(bool) & art).sum() > 0.5 * art.sum(), spec.name


def test_large_images_are_cut_at_reduced_resolution_and_keep_their_size():
    spec, ph = film_phantoms()[1]
    _, mask = attached_artefacts(spec, ph)
    big = np.kron(mask, np.ones((4, 4), bool))  # 2048 x 1536, as a 4x finer scan
    truth = np.kron(ph.breast_mask, np.ones((4, 4), bool))
    out = postprocess_breast_mask(big, laterality=spec.side[0])
    assert out.mask.shape == big.shape and out.mask.dtype == np.uint8
    assert dice(out.mask, truth) >= 0.99
    far = ndimage.distance_transform_edt(~ph.breast_mask) > 19
    assert not (out.mask.astype(bool) & np.kron(far, np.ones((4, 4), bool))).any()


def test_labeller_fallback_cuts_a_bright_film_edge_joined_to_the_breast():
    # an MLO film whose breast meets the top border; a bright unexposed strip along that border
    spec, ph = next(
        (s, p) for s, p in film_phantoms() if s.view == "MLO" and p.breast_mask[0].any()
    )
    image = ph.image.copy()
    strip = np.zeros(image.shape, bool)
    strip[:14] = True
    strip &= ~ph.breast_mask
    image[strip] = 0.9
    image16 = np.rint(image * 65535).astype(np.uint16)
    far = strip & (ndimage.distance_transform_edt(~ph.breast_mask) > 12)
    mask = label_breast(image16, laterality=spec.side[0]).astype(bool)
    # the strip is cut; where the skin line meets the top border at a shallow angle, a few
    # pixels of the wedge between them may stay (here 5 of 3473; 25 of the 78 such MLO films
    # of film patients 0-59 keep some, at most 0.97 %): a property of the cut, not of the pick
    assert (mask & far).sum() <= 0.01 * far.sum()
    assert not (mask & ph.marks_mask).any()
    assert dice(mask, ph.breast_mask) >= 0.95
    # without the post-processing's cut the labeller keeps the strip
    uncut = label_breast(image16, postprocess=PostprocessConfig(cut_width=0.0)).astype(bool)
    assert (uncut & far).sum() > 0.5 * far.sum()


# --- chest wall, holes, empty masks ------------------------------------------------------------


def test_laterality_side():
    assert laterality_side("L") == laterality_side("LEFT") == "left"
    assert laterality_side("R") == laterality_side("right") == "right"
    assert laterality_side("unknown") is laterality_side(None) is laterality_side("B") is None


@pytest.mark.parametrize("style", ["film", "digital"])
def test_chest_wall_is_inferred_for_left_and_right_breasts(style):
    patients = FILM_PATIENTS if style == "film" else (0, 1, 2, 5)
    seen = set()
    for spec, ph in _phantoms(style, patients):
        expected = spec.side.lower()  # synth: a LEFT breast has its chest wall on the left
        seen.add((expected, spec.view))
        side, confidence = infer_chest_wall(ph.breast_mask)
        assert side == expected and confidence > 0.5, spec.name
        mask = film_threshold(ph) if style == "film" else ph.breast_mask | ph.marks_mask
        out = postprocess_breast_mask(mask)
        assert (out.chest_wall, out.chest_wall_source) == (expected, "image"), spec.name
        known = postprocess_breast_mask(mask, laterality=spec.side[0])
        assert (known.chest_wall, known.chest_wall_source) == (expected, "laterality")
    assert {s for s, _ in seen} == {"left", "right"} and {v for _, v in seen} == {"CC", "MLO"}


def test_flipped_image_overrules_the_laterality_with_a_note():
    spec, ph = film_phantoms()[0]
    flipped = ph.breast_mask[:, ::-1]
    wrong = "R" if spec.side == "LEFT" else "L"
    truth_side = "right" if spec.side == "LEFT" else "left"
    out = postprocess_breast_mask(flipped, laterality=spec.side[0])
    assert out.chest_wall == truth_side and out.chest_wall_source == "image"
    assert any("flipped" in note for note in out.notes)
    assert postprocess_breast_mask(flipped, laterality=wrong).notes == []
    # an explicit side is taken as given
    fixed = postprocess_breast_mask(flipped, PostprocessConfig(chest_wall=spec.side.lower()))
    assert fixed.chest_wall == spec.side.lower() and fixed.chest_wall_source == "config"


def test_holes_are_filled():
    spec, ph = film_phantoms()[0]
    truth = ph.breast_mask
    holed = truth.copy()
    ys, xs = np.nonzero(ndimage.distance_transform_edt(truth) > 30)
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[: truth.shape[0], : truth.shape[1]]
    for k in rng.choice(len(ys), 8, replace=False):
        holed &= (yy - ys[k]) ** 2 + (xx - xs[k]) ** 2 > 12**2
    assert (truth & ~holed).sum() > 1000
    out = postprocess_breast_mask(holed, laterality=spec.side[0])
    assert np.array_equal(out.mask.astype(bool), truth)
    assert out.filled_pixels == int((truth & ~holed).sum())
    kept = postprocess_breast_mask(holed, PostprocessConfig(fill_holes=False))
    assert np.array_equal(kept.mask.astype(bool), holed)
    assert np.array_equal(breast_mask(holed.astype(np.float32), holes=False), holed)


def test_a_dark_pocket_against_the_chest_wall_is_filled_only_with_a_side():
    mask = np.zeros((200, 150), bool)
    yy, xx = np.mgrid[:200, :150]
    mask[((yy - 100) / 80.0) ** 2 + (xx / 110.0) ** 2 <= 1] = True  # breast on the left edge
    pocket = ((yy - 100) ** 2 + xx**2 <= 25**2) & mask  # dark fat against the chest wall
    with_pocket = mask & ~pocket
    for chest_wall in ("auto", "left"):
        out = postprocess_breast_mask(with_pocket, PostprocessConfig(chest_wall=chest_wall))
        assert out.chest_wall == "left"
        assert np.array_equal(out.mask.astype(bool), mask), chest_wall
    for chest_wall in ("none", "right"):
        out = postprocess_breast_mask(with_pocket, PostprocessConfig(chest_wall=chest_wall))
        assert not (out.mask.astype(bool) & pocket).any(), chest_wall
    assert np.array_equal(fill_breast_holes(with_pocket, "left"), mask)


def test_empty_mask_stays_empty_with_a_warning():
    empty = np.zeros((64, 48), np.uint8)
    with pytest.warns(BreastMaskWarning, match="empty"):
        out = postprocess_breast_mask(empty, laterality="L")
    assert out.mask.shape == (64, 48) and not out.mask.any()
    assert out.chest_wall == "left" and out.notes and "empty" in out.notes[0]
    with pytest.warns(BreastMaskWarning):
        assert not breast_mask(np.zeros((64, 48), np.float32)).any()
    quiet = segment_breast(np.full((64, 48), 0.2, np.float32), 0.5, warn=False)
    assert not quiet.mask.any() and quiet.notes
    with pytest.raises(ValueError, match="2-D"):
        postprocess_breast_mask(np.zeros((2, 3, 4)))


def test_largest_component_off_keeps_every_wide_part_but_still_cuts_thin_ones():
    mask = np.zeros((200, 160), bool)
    mask[40:160, :70] = True  # the breast
    mask[60:110, 100:150] = True  # a second wide blob (e.g. the other breast of a bilateral)
    mask[:6, :] = True  # a film edge
    out = postprocess_breast_mask(mask, PostprocessConfig(largest_component=False))
    kept = out.mask.astype(bool)
    assert kept[60:110, 100:150].all() and kept[40:160, :70].all() and not kept[:6].any()
    only = postprocess_breast_mask(mask).mask.astype(bool)
    assert only[40:160, :70].all() and not only[60:110, 100:150].any()


def test_background_taken_for_breast_is_noted():
    mask = np.ones((100, 80), bool)
    mask[30:70, 50:] = False
    out = postprocess_breast_mask(mask)
    assert any("border" in note for note in out.notes)


# --- digital MONOCHROME1 through ingest and predict --------------------------------------------


def _write_dicoms(folder: Path) -> dict[str, tuple[ImageSpec, object, str]]:
    """The digital images of patient P_00003 as DICOM files, every other one MONOCHROME1."""
    from mammo_common.synth.cbis_layout import MAMMO_SOP_CLASS, folder_uids, to_uint16, write_dicom

    written = {}
    for k, spec in enumerate(sample_patient(0, 2, "digital")):  # both breasts, CC and MLO
        ph = render(spec, SIZE, 0)
        stored = to_uint16(ph.image)
        photometric = "MONOCHROME1" if k % 2 == 0 else "MONOCHROME2"
        if photometric == "MONOCHROME1":
            stored = (65535 - stored.astype(np.int64)).astype(np.uint16)
        ids = folder_uids(0, spec.name)
        write_dicom(
            folder / f"{spec.name}.dcm",
            stored,
            seed=0,
            spec=spec,
            uids=(ids.study, ids.series, ids.instance),
            sop_class=MAMMO_SOP_CLASS,
            description="full mammogram",
            spacing_mm=ph.spacing_mm,
            photometric=photometric,
        )
        written[spec.name] = (spec, ph, photometric)
    return written


def test_monochrome1_digital_through_ingest_and_threshold_predict(tmp_path):
    from breastseg.predict import predict
    from mammo_common.ingest import ingest
    from mammo_common.store import open_store
    from mammo_common.transforms import invert_transform

    written = _write_dicoms(tmp_path / "dicom")
    assert {p for _, _, p in written.values()} == {"MONOCHROME1", "MONOCHROME2"}
    ingest(tmp_path / "dicom", tmp_path / "mammograms.zarr", "images")
    config = PredictConfig(
        data=tmp_path / "mammograms.zarr", out=tmp_path / "breast.zarr", method="threshold",
        output_size=(256, 192),
    )
    result = predict(config)
    assert result.empty_cases == []
    assert result.chest_wall["left"] == sum(s.side == "LEFT" for s, _, _ in written.values())
    assert result.chest_wall["right"] == sum(s.side == "RIGHT" for s, _, _ in written.values())
    source = open_store(tmp_path / "mammograms.zarr", "mammograms")
    breast = open_store(tmp_path / "breast.zarr", "breast")
    assert breast.meta.producer.params["postprocess"] == PostprocessConfig().model_dump()
    checked = 0
    for index, record in enumerate(breast.cases):
        name = Path(record.source_path).stem
        spec, ph, photometric = written[name]
        assert record.laterality == spec.side[0]
        image = source.array(record.case_id, "image")
        # ingest inverted MONOCHROME1: the breast is bright on a black background
        assert image[ph.breast_mask].mean() > 3 * image[~ph.breast_mask].mean() + 1, name
        native = invert_transform(breast.array("breast_masks")[index], breast.transforms[index])
        assert dice(native, ph.breast_mask) >= 0.97, (name, photometric)
        assert not (native.astype(bool) & ph.marks_mask).any(), name
        checked += photometric == "MONOCHROME1"
    assert checked >= 1


def test_monochrome1_left_uninverted_is_not_a_breast():
    # what happens if MONOCHROME1 were read without inversion: the labeller takes the bright
    # background for breast, and the post-processing says so (this is why ingest inverts)
    spec = sample_patient(0, 2, "digital")[0]
    ph = render(spec, SIZE, 0)
    raw = (65535 - np.rint(ph.image * 65535)).astype(np.uint16)
    mask = label_breast(raw)
    assert dice(mask, ph.breast_mask) < 0.5
    out = postprocess_breast_mask(mask)
    assert any("border" in note for note in out.notes)
    right = label_breast(np.rint(ph.image * 65535).astype(np.uint16), laterality=spec.side[0])
    assert dice(right, ph.breast_mask) >= 0.97


# --- configuration, metadata, the mammo run plugin ---------------------------------------------


def test_predict_config_postprocess_and_legacy_fill_holes():
    config = PredictConfig(data="a.zarr", out="b.zarr", method="threshold")
    assert config.postprocess == PostprocessConfig()
    assert config.postprocess.chest_wall == "auto" and config.postprocess.largest_component
    legacy = PredictConfig(data="a.zarr", out="b.zarr", method="threshold", fill_holes=False)
    assert legacy.postprocess.fill_holes is False and legacy.fill_holes is False
    nested = PredictConfig.model_validate(
        {"data": "a", "out": "b", "method": "threshold",
         "postprocess": {"chest_wall": "left", "cut_width": 0.0}}
    )
    assert nested.postprocess.chest_wall == "left" and nested.postprocess.cut_width == 0.0
    with pytest.raises(ValueError):
        PredictConfig(data="a", out="b", method="threshold", postprocess={"chest_wal": "left"})
    with pytest.raises(ValueError):
        PredictConfig(data="a", out="b", method="threshold", postprocess={"chest_wall": "top"})


def test_mammo_run_plugin_post_processes_with_the_case_laterality(monkeypatch):
    from breastseg import _keras
    from breastseg.oneshot import plugin
    from mammo_common.oneshot import OneShotCase

    spec, ph = film_phantoms()[0]
    _, mask = attached_artefacts(spec, ph)
    card = types.SimpleNamespace(threshold=0.5, model_id="breastseg/fake/fold_1")
    monkeypatch.setattr(_keras, "load_breast_model", lambda folder: (object(), card))
    fake_opt = types.ModuleType("mammo_common.keras.deployment.optimize")
    fake_opt.inference_model = lambda model, **kw: (model, None)
    fake_inf = types.ModuleType("mammo_common.keras.deployment.inference")
    fake_inf.predict_probabilities = lambda models, images, **kw: mask[None].astype(np.float32)
    monkeypatch.setitem(sys.modules, "mammo_common.keras.deployment.optimize", fake_opt)
    monkeypatch.setitem(sys.modules, "mammo_common.keras.deployment.inference", fake_inf)

    image = np.rint(ph.image * 65535).astype(np.uint16)
    case = OneShotCase(image=image, work_size=(128, 96))
    case.laterality = "R" if spec.side == "LEFT" else "L"  # a wrong laterality: noted
    plugin.run(case, [Path("fake")])
    kept = case.breast_mask.astype(bool)
    assert dice(kept, ph.breast_mask) >= 0.99
    far = ndimage.distance_transform_edt(~ph.breast_mask) > 19
    assert not (kept & far).any()
    assert any("flipped" in note for note in case.notes)
    assert case.work_image.shape == (128, 96) and case.transform is not None
