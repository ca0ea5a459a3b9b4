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
