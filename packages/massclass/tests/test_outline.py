"""The image's own outline of a mass: the same mass gives the same outline whoever drew it."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError
from scipy import ndimage

from mammo_common.postprocess import components
from massclass.config import RoiConfig
from massclass.outline import image_outline, outline_settings
from massclass.rois import crop_roi


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a > 0, b > 0
    return 2.0 * float((a & b).sum()) / float(a.sum() + b.sum())


def _lobulated_mass(size: int = 96, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A textured background with a lobulated mass of moderate contrast, and its exact mask."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size].astype(np.float32)
    angle = np.arctan2(yy - size / 2, xx - size / 2)
    radius = np.hypot(yy - size / 2, xx - size / 2)
    outline = size * (0.2 + 0.05 * np.sin(3 * angle) + 0.03 * np.cos(5 * angle))
    mask = radius <= outline
    background = ndimage.gaussian_filter(rng.normal(0.0, 1.0, (size, size)), 3.0)
    image = 0.4 + 0.05 * background / background.std() + 0.15 * mask
    image += rng.normal(0.0, 0.02, (size, size))
    return image.astype(np.float32), mask


def test_loose_and_tight_seeds_give_the_mass_outline() -> None:
    image, truth = _lobulated_mass()
    settings = outline_settings(96)
    # a smooth blob as a network draws it (the truth closed and grown) and a tight one (eroded)
    blob = ndimage.binary_dilation(ndimage.binary_closing(truth, iterations=6), iterations=2)
    tight = ndimage.binary_erosion(truth, iterations=3)
    from_blob = image_outline(image, blob, **settings)
    from_tight = image_outline(image, tight, **settings)
    assert _dice(from_blob, truth) > 0.92 and _dice(from_tight, truth) > 0.9
    # both are closer to the mass than their seeds, and to each other (seeds 0.72 apart)
    assert _dice(from_blob, truth) > _dice(blob, truth) + 0.03
    assert _dice(from_tight, truth) > _dice(tight, truth) + 0.05
    assert _dice(from_blob, from_tight) > _dice(blob, tight) + 0.1


def test_no_contrast_or_no_seed_keeps_the_seed() -> None:
    flat = np.full((32, 32), 0.5, np.float32)
    seed = np.zeros((32, 32), np.float32)
    seed[10:20, 10:20] = 1
    assert np.array_equal(image_outline(flat, seed), seed)
    assert not image_outline(flat, np.zeros((32, 32))).any()
    with pytest.raises(ValueError, match="level"):
        image_outline(flat, seed, level=1.0)


def test_a_dark_mass_is_outlined_too() -> None:
    image, truth = _lobulated_mass(seed=1)
    inverted = 1.0 - image
    blob = ndimage.binary_dilation(truth, iterations=3)
    assert _dice(image_outline(inverted, blob, **outline_settings(96)), truth) > 0.9


def test_crop_roi_redraws_the_mask_channel() -> None:
    image, truth = _lobulated_mass(size=160, seed=2)
    image = np.clip(image, 0.0, 1.0)
    blob = ndimage.binary_dilation(truth, iterations=4)
    comp = components(blob)[0]
    as_given = crop_roi(image, comp, size=96, margin=0.5, representation="image+mask")
    redrawn = crop_roi(image, comp, size=96, margin=0.5, representation="image+mask",
                       outline="image")
    assert np.array_equal(as_given[..., :2], redrawn[..., :2])
    assert redrawn[..., 2].sum() < as_given[..., 2].sum()  # the grown blob shrinks to the mass
    with pytest.raises(ValueError, match="outline"):
        crop_roi(image, comp, size=96, representation="image+mask", outline="contour")


def test_outline_image_needs_the_mask_channel() -> None:
    assert RoiConfig(representation="image+mask", outline="image").outline == "image"
    with pytest.raises(ValidationError, match="image\\+mask"):
        RoiConfig(representation="image", outline="image")
