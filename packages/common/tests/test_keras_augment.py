"""Paired augmentation: same transform on image and mask, seeded, Keras semantics."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError

from mammo_common.keras.training.augment import (
    AffineTransform,
    AugmentConfig,
    PairedAugmenter,
    augment_image,
    augment_pair,
    sample_transform,
)


def blob_mask(size: int = 48) -> np.ndarray:
    yy, xx = np.mgrid[:size, :size]
    m = ((yy - 20) ** 2 / 90 + (xx - 28) ** 2 / 40 < 1) | ((yy > 35) & (xx < 10))
    return m.astype(np.uint8)


@pytest.mark.parametrize("fill", ["wrap", "constant", "reflect", "nearest"])
def test_image_equal_to_mask_stays_equal(fill):
    mask = blob_mask()
    config = AugmentConfig.mass().model_copy(
        update={"fill_mode": fill, "mask_interpolation": "linear"}
    )
    for seed in range(5):
        img, out = augment_pair(mask.astype(np.float32), mask, config, np.random.default_rng(seed))
        assert out.dtype == np.uint8 and set(np.unique(out)) <= {0, 1}
        np.testing.assert_array_equal(img > 0.5, out.astype(bool))


def test_nearest_mask_agrees_with_image_and_nearest_image_is_exact():
    mask = blob_mask()
    config = AugmentConfig.mass()
    for seed in range(5):
        img, out = augment_pair(mask.astype(np.float32), mask, config, np.random.default_rng(seed))
        assert np.mean((img > 0.5) == out.astype(bool)) > 0.97
    exact = config.model_copy(update={"image_interpolation": "nearest"})
    img, out = augment_pair(mask * 7, mask, exact, np.random.default_rng(1))
    np.testing.assert_array_equal(img, out * 7.0)


def test_multichannel_image_channels_move_together():
    mask = blob_mask()
    image = np.stack([mask, mask * 2, mask * 3], -1).astype(np.float32)
    img, out = augment_pair(
        image, mask[..., None], AugmentConfig.breast(), np.random.default_rng(0)
    )
    assert img.shape == (48, 48, 3) and out.shape == (48, 48, 1)
    np.testing.assert_allclose(img[..., 1], 2 * img[..., 0], atol=1e-5)
    np.testing.assert_allclose(img[..., 2], 3 * img[..., 0], atol=1e-5)


def test_seeded_determinism_and_variety():
    mask = blob_mask()
    image = np.random.default_rng(0).random((48, 48)).astype(np.float32)
    a = augment_pair(image, mask, AugmentConfig.mass(), np.random.default_rng(7))
    b = augment_pair(image, mask, AugmentConfig.mass(), np.random.default_rng(7))
    c = augment_pair(image, mask, AugmentConfig.mass(), np.random.default_rng(8))
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert not np.array_equal(a[0], c[0])
    aug = PairedAugmenter(AugmentConfig.mass(), seed=7)
    first = aug(image, mask)
    np.testing.assert_array_equal(first[0], a[0])
    assert not np.array_equal(aug(image, mask)[0], a[0])  # the generator advances


def test_transform_geometry():
    image = np.zeros((9, 9), np.float32)
    image[2, 6] = 1.0
    # 90 degrees about the centre, nearest: an exact pixel permutation
    out = AffineTransform(theta=90).apply(image, order=0, fill_mode="constant")
    assert out.sum() == 1.0
    assert np.argwhere(out)[0].tolist() == [6, 6]  # Keras' matrix: input = R(theta) @ output
    np.testing.assert_array_equal(
        AffineTransform(theta=90).apply(image, order=0), np.rot90(image, -1)
    )
    shifted = AffineTransform(tx=1).apply(image, order=0, fill_mode="constant")
    assert np.argwhere(shifted)[0].tolist() == [1, 6]
    wrapped = AffineTransform(ty=-3).apply(image, order=0, fill_mode="wrap")
    assert np.argwhere(wrapped)[0].tolist() == [2, 0]  # periodic wrap, no seam
    flipped = AffineTransform(flip_horizontal=True, flip_vertical=True).apply(image, order=1)
    np.testing.assert_array_equal(flipped, image[::-1, ::-1])


def test_sampling_respects_ranges():
    config = AugmentConfig.mass()
    rng = np.random.default_rng(0)
    ts = [sample_transform(config, rng, (100, 50)) for _ in range(300)]
    assert max(abs(t.theta) for t in ts) <= 90
    assert max(abs(t.tx) for t in ts) <= 20 and max(abs(t.ty) for t in ts) <= 10
    assert all(0.8 <= t.zx <= 1.2 and 0.8 <= t.zy <= 1.2 for t in ts)
    assert 100 < sum(t.flip_horizontal for t in ts) < 200
    none = [sample_transform(AugmentConfig(), rng, (10, 10)) for _ in range(10)]
    assert all(not t.has_affine and not t.flip_horizontal for t in none)


def test_presets_and_identity():
    breast, mass, cls = AugmentConfig.breast(), AugmentConfig.mass(), AugmentConfig.classifier()
    assert (breast.rotation_range, breast.width_shift, breast.zoom_range) == (45, 0.1, 0.1)
    assert (mass.rotation_range, mass.shear_range, mass.fill_mode) == (90, 0.2, "wrap")
    assert cls.fill_mode == "constant" and cls.shear_range == 0 and cls.vertical_flip
    assert AugmentConfig.none().is_identity and not mass.is_identity
    image = np.arange(16, dtype=np.uint16).reshape(4, 4)
    out = augment_image(image, AugmentConfig(), np.random.default_rng(0))
    assert out.dtype == np.float32 and np.array_equal(out, image)
    with pytest.raises(ValidationError):
        AugmentConfig(fill_mode="mirror")
    with pytest.raises(ValidationError):
        AugmentConfig(rotation_range=-1)
    with pytest.raises(ValueError, match="differ"):
        augment_pair(np.zeros((4, 4)), np.zeros((5, 4)), mass, np.random.default_rng(0))
