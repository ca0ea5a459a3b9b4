"""The threshold labeller and the post-processing of breast masks."""

from __future__ import annotations

import numpy as np
import pytest
from breastseg_phantoms import make_phantom

from breastseg.labeller import LabellerConfig, label_breast
from breastseg.segment import breast_mask, crop_case
from breastseg.threshold import ThresholdSegmenter
from mammo_common.metrics import dice
from mammo_common.transforms import invert_transform


@pytest.mark.parametrize("seed", range(6))
def test_labeller_finds_the_breast_not_the_labels(seed):
    ph = make_phantom(seed)
    mask = label_breast(ph.image)
    assert mask.dtype == np.uint8 and mask.shape == ph.image.shape
    assert set(np.unique(mask)) <= {0, 1}
    assert dice(mask, ph.breast) >= 0.95
    # the bright label rectangle is not breast
    label = (ph.image > 0.9 * 65535) & (ph.breast == 0)
    assert label.any() and not (mask.astype(bool) & label).any()


def test_labeller_on_large_image_works_at_reduced_resolution():
    ph = make_phantom(1, shape=(1200, 900))
    mask = label_breast(ph.image, LabellerConfig(work_size=256))
    assert mask.shape == (1200, 900)
    assert dice(mask, ph.breast) >= 0.95


def test_labeller_constant_and_bad_input():
    assert not label_breast(np.full((40, 30), 7, np.uint16)).any()
    with pytest.raises(ValueError):
        label_breast(np.zeros((4, 4, 3)))


def test_threshold_segmenter():
    seg = ThresholdSegmenter()
    ph = make_phantom(3)
    prob = seg.probabilities(ph.image)
    assert prob.dtype == np.float32 and prob.shape == ph.image.shape
    assert seg.method == "threshold" and seg.model_ids == []
    assert seg.params["labeller"]["sigma"] == 2.0


def test_breast_mask_keeps_largest_component_and_fills_holes():
    prob = np.zeros((50, 50), np.float32)
    prob[5:40, 5:40] = 0.9
    prob[20:25, 20:25] = 0.1  # a hole
    prob[45:48, 45:48] = 0.8  # a speck
    mask = breast_mask(prob)
    assert mask.dtype == np.uint8
    assert mask.sum() == 35 * 35 and mask[22, 22] == 1 and mask[46, 46] == 0
    assert breast_mask(prob, holes=False)[22, 22] == 0


@pytest.mark.parametrize("seed", range(4))
def test_crop_case_round_trip(seed):
    ph = make_phantom(seed)
    c = crop_case(ph.image, ph.breast, ph.mass, output_size=(128, 128), margin=0.02)
    assert c.image.shape == c.breast_mask.shape == c.mass_mask.shape == (128, 128)
    assert c.image.dtype == np.uint16 and not c.empty
    # the background is blanked: nothing bright outside the stored breast mask
    assert c.image[c.breast_mask == 0].max() < 0.5 * 65535
    # masks map back onto the original image
    assert dice(invert_transform(c.breast_mask, c.transform), ph.breast) >= 0.98
    assert dice(invert_transform(c.mass_mask, c.transform), ph.mass) >= 0.9
    # the crop box holds the breast tightly (plus the margin)
    y0, _, y1, _ = c.transform.crop_box
    rows = np.flatnonzero(ph.breast.any(axis=1))
    height = rows[-1] + 1 - rows[0]
    assert y0 <= rows[0] and y1 >= rows[-1] + 1 and (y1 - y0) <= 1.05 * height + 2


def test_crop_case_empty_mask_keeps_whole_image():
    ph = make_phantom(0)
    c = crop_case(ph.image, np.zeros_like(ph.breast), None, output_size=(64, 64), margin=0.1)
    assert c.empty and c.mass_mask is None
    assert c.transform.crop_box == (0, 0, *ph.image.shape)
    assert c.breast_mask.all()


# --- labels and markers joined to the breast ---------------------------------------------------


def _film_mlo_meeting_the_top_border():
    """A rendered film MLO (``mammo synth``'s generator) whose breast meets the top border."""
    from mammo_common.synth import render
    from mammo_common.synth.cases import sample_patient

    for index in range(10):
        for spec in sample_patient(0, index, "film"):
            if spec.view != "MLO":
                continue
            ph = render(spec, (512, 384), 0)
            if ph.breast_mask[0].any():
                return spec, ph
    raise AssertionError("no film MLO meeting the top border")  # pragma: no cover


def test_labeller_cuts_a_label_and_a_top_border_marker_joined_to_the_breast():
    # A big ID card lying against the skin line and a lead marker on the top border beside the
    # breast, each 2 pixels (1 mm) off the breast: the smoothed threshold joins both to the
    # breast along far more than the post-processing's cut width (a 110-pixel neck for the
    # card), so only the split along the dark gap (the background between them) removes them.
    from scipy import ndimage

    spec, ph = _film_mlo_meeting_the_top_border()
    breast = ph.breast_mask
    h, w = breast.shape
    near = ndimage.distance_transform_edt(~breast) <= 2
    cols = np.nonzero(breast.any(axis=0))[0]
    widest = int(np.argmax(breast.sum(axis=1)))
    extent = lambda rows: int(np.nonzero(breast[rows].any(axis=0))[0].max())
    side_left = spec.side == "LEFT"
    assert side_left == (cols.min() == 0)
    card = np.zeros((h, w), bool)
    marker = np.zeros((h, w), bool)
    rows = slice(max(0, widest - 55), widest + 55)
    top = slice(0, 45)
    if side_left:
        x = extent(rows)
        card[rows, x - 20 : x + 60] = True
        x = extent(top)
        marker[top, x - 60 : x + 15] = True
    else:  # mirrored: the breast on the right
        x = w - 1 - int(np.nonzero(breast[rows].any(axis=0))[0].min())
        card[rows, w - x - 60 : w - x + 20] = True
        x = w - 1 - int(np.nonzero(breast[top].any(axis=0))[0].min())
        marker[top, w - x - 15 : w - x + 60] = True
    card &= ~near
    marker &= ~near
    image = ph.image.copy()
    image[card] = 0.9
    image[marker] = 0.9
    image16 = np.rint(np.clip(image, 0, 1) * 65535).astype(np.uint16)

    mask = label_breast(image16, laterality=spec.side[0]).astype(bool)
    assert (mask & card).sum() <= 0.01 * card.sum()
    assert (mask & marker).sum() <= 0.01 * marker.sum()
    assert dice(mask, breast) >= 0.95
    # the smoothing and the threshold do join them to the breast: without the split the card
    # and the marker come back with it
    joined = label_breast(image16, LabellerConfig(split=False), laterality=spec.side[0])
    assert (joined.astype(bool) & card).sum() > 0.5 * card.sum()
    assert (joined.astype(bool) & marker).sum() > 0.5 * marker.sum()
