"""The safeguard against a network that lost the breast: the labeller's mask takes over.

A breast network shown an unfamiliar kind of mammogram can draw only its brightest part (the
pectoral muscle, a dense core). ``check_with_labeller`` replaces such a mask by the threshold
labeller's, and only such a mask: a right one, one that disagrees with the labeller about
where the breast is, or a labeller mask that took the background, are left alone.
"""

from __future__ import annotations

import numpy as np
import pytest
from breastseg_phantoms import make_phantom, write_phantom_store

from breastseg.config import EvaluateConfig, PredictConfig
from breastseg.postprocess import postprocess_breast_mask
from breastseg.segment import check_with_labeller
from mammo_common.metrics import dice

SIZE = (128, 128)


def _segmented(mask: np.ndarray, laterality: str):
    return postprocess_breast_mask(mask, laterality=laterality, warn=False)


def _core(breast: np.ndarray, laterality: str, share: float = 0.2) -> np.ndarray:
    """The part of the breast nearest the chest wall: what a failing network draws."""
    cols = np.where(breast.any(axis=0))[0]
    width = max(1, int(share * (cols.max() - cols.min() + 1)))
    core = np.zeros_like(breast)
    if laterality == "L":
        core[:, cols.min(): cols.min() + width] = breast[:, cols.min(): cols.min() + width]
    else:
        core[:, cols.max() + 1 - width: cols.max() + 1] = breast[:, cols.max() + 1 - width:
                                                                 cols.max() + 1]
    return core


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_lost_breast_gets_the_labellers_mask(seed: int) -> None:
    p = make_phantom(seed)
    core = _core(p.breast, p.laterality)
    assert dice(core, p.breast) < 0.5
    out, replaced = check_with_labeller(
        p.image, _segmented(core, p.laterality), min_share=0.5, laterality=p.laterality
    )
    assert replaced
    assert dice(out.mask, p.breast) > 0.9
    assert "labeller" in out.notes[-1] and "%" in out.notes[-1]
    # an empty network mask (nothing found) is replaced too
    out, replaced = check_with_labeller(
        p.image, _segmented(np.zeros_like(p.breast), p.laterality), min_share=0.5,
        laterality=p.laterality,
    )
    assert replaced and dice(out.mask, p.breast) > 0.9
    assert not any(n.startswith("empty") for n in out.notes)


@pytest.mark.parametrize("seed", [5, 6])
def test_a_breast_with_its_background_gets_the_labellers_mask(seed: int) -> None:
    """A network that took the grey film background around the breast for breast."""
    p = make_phantom(seed)
    overgrown = np.zeros_like(p.breast)
    w = p.breast.shape[1]
    cols = np.where(p.breast.any(axis=0))[0]
    # the whole frame but a margin on the far side: several times the breast, holding it
    if p.laterality == "L":
        overgrown[:, : min(w, cols.max() + w // 3)] = 1
    else:
        overgrown[:, max(0, cols.min() - w // 3):] = 1
    seg = _segmented(overgrown, p.laterality)
    assert seg.mask.sum() > 1.5 * p.breast.sum() and dice(seg.mask, p.breast) < 0.8
    out, replaced = check_with_labeller(p.image, seg, min_share=0.7, laterality=p.laterality)
    assert replaced and dice(out.mask, p.breast) > 0.9
    assert "over 1/0.7" in out.notes[-1]


def test_a_right_mask_is_kept_and_the_check_can_be_off() -> None:
    p = make_phantom(3)
    good = _segmented(p.breast, p.laterality)
    out, replaced = check_with_labeller(p.image, good, min_share=0.5, laterality=p.laterality)
    assert not replaced and out is good
    lost = _segmented(_core(p.breast, p.laterality), p.laterality)
    out, replaced = check_with_labeller(p.image, lost, min_share=None)
    assert not replaced and out is lost


def test_disagreement_or_a_background_labeller_mask_keeps_the_network() -> None:
    p = make_phantom(4)
    # a block in the far-side corner, off the breast: network and labeller disagree on where
    # the breast is
    h, w = p.breast.shape
    elsewhere = np.zeros_like(p.breast)
    far = slice(w - w // 4, w) if p.laterality == "L" else slice(0, w // 4)
    elsewhere[h - h // 4:, far] = 1
    elsewhere &= p.breast == 0
    seg = _segmented(elsewhere, p.laterality)
    assert seg.mask.any() and (seg.mask & p.breast).sum() == 0
    out, replaced = check_with_labeller(p.image, seg, min_share=0.5, laterality=p.laterality)
    assert not replaced and out is seg
    # an image that is bright everywhere: the labeller's mask is the whole frame, not trusted
    bright = np.full_like(p.image, 50000)
    bright[::7, ::5] = 52000
    lost = _segmented(_core(p.breast, p.laterality), p.laterality)
    out, replaced = check_with_labeller(bright, lost, min_share=0.5, laterality=p.laterality)
    assert not replaced and out is lost


def test_predict_and_evaluate_report_the_fallback(monkeypatch, tmp_path) -> None:
    """A network that draws only the chest-wall strip: predict stores the labeller's masks and
    says so, evaluate scores what predict stores."""
    import breastseg.evaluate as evaluate_module
    import breastseg.predict as predict_module
    from breastseg.evaluate import evaluate
    from breastseg.predict import predict
    from mammo_common.store import open_store

    class LostSegmenter:
        params: dict = {"method": "unet"}
        model_ids = ["test/lost"]
        card = None

        def probabilities(self, image):
            source = open_store(store_path, "mammograms")
            for case_id in source.case_ids:
                case = source.load(case_id)
                if case.image.shape == image.shape and np.array_equal(case.image, image):
                    return _core(case.breast_mask, case.record.laterality).astype(np.float32)
            raise AssertionError("unknown image")

    store_path = write_phantom_store(tmp_path / "m.zarr", 4)
    for module in (predict_module, evaluate_module):
        monkeypatch.setattr(module, "make_segmenter", lambda *a, **k: LostSegmenter())
    model = tmp_path / "model"
    model.mkdir()
    result = predict(PredictConfig(model=model, data=store_path, out=tmp_path / "b.zarr",
                                   output_size=SIZE))
    assert len(result.labeller_fallback_cases) == 4
    breast = open_store(tmp_path / "b.zarr", "breast")
    assert breast.meta.producer.params["labeller_fallback"] == 0.7
    assert all(any("labeller's mask was used" in n for n in r.notes) for r in breast.cases)
    scored = evaluate(EvaluateConfig(model=model, data=store_path, out=tmp_path / "m.json",
                                     part="all"))
    assert scored.metrics["n_labeller_fallback"] == 4
    assert scored.metrics["dice_min"] > 0.9
    off = evaluate(EvaluateConfig(model=model, data=store_path, out=tmp_path / "off.json",
                                  part="all", labeller_fallback=None))
    assert off.metrics["n_labeller_fallback"] == 0 and off.metrics["dice_mean"] < 0.5
