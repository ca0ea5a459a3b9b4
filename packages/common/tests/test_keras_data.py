"""SegmentationDataset / ClassificationDataset / load_arrays."""

from __future__ import annotations

import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import numpy as np
import pytest

from mammo_common.keras.training.augment import AugmentConfig
from mammo_common.keras.training.data import (
    ClassificationDataset,
    SegmentationDataset,
    epoch_order,
    load_arrays,
    normalize_image,
)


@pytest.fixture(scope="module")
def arrays() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 65536, (10, 24, 20), dtype=np.uint16)
    images[:, 0, 0] = np.arange(10) * 1000  # identifies each image
    masks = (rng.random((10, 24, 20)) > 0.6).astype(np.uint8)
    return images, masks


def ids(x: np.ndarray) -> list[int]:
    return [round(float(v) * 65535 / 1000) for v in x[:, 0, 0, 0]]


def test_normalize_image_by_dtype():
    assert normalize_image(np.array([0, 65535], np.uint16)).tolist() == [0.0, 1.0]
    assert normalize_image(np.array([0, 255], np.uint8)).tolist() == [0.0, 1.0]
    assert normalize_image(np.array([0.25], np.float64)).dtype == np.float32
    with pytest.raises(ValueError, match="int16"):
        normalize_image(np.array([1], np.int16))


def test_shapes_scaling_and_channels(arrays):
    images, masks = arrays
    ds = SegmentationDataset(images, masks, [0, 1, 2], batch_size=2, channels=3)
    assert len(ds) == 2
    x, y = ds[0]
    assert x.shape == (2, 24, 20, 3) and y.shape == (2, 24, 20, 1)
    assert x.dtype == np.float32 and y.dtype == np.float32
    np.testing.assert_allclose(x[0, ..., 0], images[0] / 65535, rtol=1e-6)
    np.testing.assert_array_equal(x[..., 0], x[..., 2])
    np.testing.assert_array_equal(y[1, ..., 0], masks[1])
    assert ds[1][0].shape == (1, 24, 20, 3)  # the last, partial batch
    with pytest.raises(IndexError):
        ds[2]


def test_resize_to_model_input(arrays):
    images, masks = arrays
    ds = SegmentationDataset(images, masks * 255, batch_size=4, image_size=(32, 16))
    x, y = ds[0]
    assert x.shape == (4, 32, 16, 1) and y.shape == (4, 32, 16, 1)
    assert x.min() >= 0 and x.max() <= 1
    assert set(np.unique(y)) <= {0.0, 1.0}
    xs, ys = load_arrays(images, masks * 255, [0, 1, 2, 3], image_size=(32, 16))
    np.testing.assert_array_equal(xs, x)
    np.testing.assert_array_equal(ys, y)


def test_uint8_and_zarr_sources(arrays, tmp_path):
    import zarr
    images, masks = arrays
    zi = zarr.open_array(
        tmp_path / "i.zarr", mode="w", shape=images.shape, dtype="uint16", chunks=(1, 24, 20)
    )
    zi[:] = images
    zm = zarr.open_array(
        tmp_path / "m.zarr", mode="w", shape=masks.shape, dtype="uint8", chunks=(1, 24, 20)
    )
    zm[:] = masks
    a = SegmentationDataset(zi, zm, [3, 5], batch_size=2)[0]
    b = SegmentationDataset(images, masks, [3, 5], batch_size=2)[0]
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    x8, _ = load_arrays((images >> 8).astype(np.uint8), None, [0])
    np.testing.assert_allclose(x8[0, ..., 0], (images[0] >> 8) / 255, rtol=1e-6)


def test_shuffle_is_deterministic_per_epoch(arrays):
    images, masks = arrays
    ds = SegmentationDataset(images, masks, range(8), batch_size=4, shuffle=True, seed=3)
    e0 = ids(np.concatenate([ds[i][0] for i in range(len(ds))]))
    assert sorted(e0) == list(range(8)) and e0 != list(range(8))
    again = SegmentationDataset(images, masks, range(8), batch_size=4, shuffle=True, seed=3)
    assert ids(np.concatenate([again[i][0] for i in range(2)])) == e0
    ds.on_epoch_end()
    e1 = ids(np.concatenate([ds[i][0] for i in range(2)]))
    assert sorted(e1) == list(range(8)) and e1 != e0
    view = again.for_epoch(1)
    view.on_epoch_end()  # pinned views ignore it
    assert ids(np.concatenate([view[i][0] for i in range(2)])) == e1
    assert again.epoch == 0


def test_steps_per_epoch_cycles_fresh_permutations(arrays):
    images, masks = arrays
    ds = SegmentationDataset(
        images, masks, range(6), batch_size=2, shuffle=True, seed=0, steps_per_epoch=3 * (6 // 2)
    )
    assert len(ds) == 9
    seen = ids(np.concatenate([ds[i][0] for i in range(9)]))
    assert [sorted(seen[k : k + 6]) for k in (0, 6, 12)] == [list(range(6))] * 3
    order = epoch_order(5, 7, shuffle=False, seed=0, epoch=0)
    assert order.tolist() == [0, 1, 2, 3, 4, 0, 1]


def test_augmentation_is_paired_and_seeded(arrays):
    _, masks = arrays
    images = masks.astype(np.uint8) * 255  # image == mask
    aug = AugmentConfig.mass().model_copy(update={"mask_interpolation": "linear"})
    ds = SegmentationDataset(images, masks, batch_size=5, shuffle=True, seed=1, augment=aug)
    x, y = ds[1]
    np.testing.assert_array_equal(x > 0.5, y > 0.5)
    assert not np.array_equal(x, load_arrays(images, None, ds.order()[5:10])[0])
    x2, _ = SegmentationDataset(images, masks, batch_size=5, shuffle=True, seed=1, augment=aug)[1]
    np.testing.assert_array_equal(x, x2)
    x3, _ = ds.for_epoch(1)[1]
    assert not np.array_equal(x, x3)


def test_classification_dataset():
    rng = np.random.default_rng(0)
    crops = [rng.integers(0, 255, (s, s + 2), dtype=np.uint8) for s in (10, 14, 20, 9, 30)]
    labels = [0, 1, 1, 0, 1]
    ds = ClassificationDataset(
        crops,
        labels,
        [0, 1, 2, 4],
        batch_size=3,
        image_size=(16, 16),
        shuffle=True,
        seed=0,
        augment=AugmentConfig.classifier(),
        preprocess=lambda b: b * 2.0,
    )
    x, y = ds[0]
    assert x.shape == (3, 16, 16, 3) and y.shape == (3, 1) and y.dtype == np.float32
    assert x.max() <= 2.0 and x.max() > 1.0  # preprocess applied after [0, 1] scaling
    expected = np.asarray(labels, np.float32)[np.array([0, 1, 2, 4])[ds.order()[:3]]]
    np.testing.assert_array_equal(y[:, 0], expected)
    assert len(ds) == 2 and ds[1][0].shape[0] == 1
    with pytest.raises(ValueError, match="labels"):
        ClassificationDataset(crops, [0, 1])


def test_fits_a_keras_model(arrays):
    images, masks = arrays
    inputs = keras.Input((24, 20, 1))
    model = keras.Model(
        inputs, keras.layers.Conv2D(1, 3, padding="same", activation="sigmoid")(inputs)
    )
    model.compile("adam", "binary_crossentropy")
    ds = SegmentationDataset(images, masks, range(6), batch_size=3, shuffle=True)
    history = model.fit(ds, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])


def test_patches_oversample_the_foreground_and_are_seeded():
    rng = np.random.default_rng(1)
    images = rng.integers(0, 65536, (6, 64, 48), dtype=np.uint16)
    masks = np.zeros((6, 64, 48), np.uint8)
    masks[:, 40:46, 30:36] = 1  # a small "mass" in every image
    def fraction_with_mass(fg: float) -> float:
        ds = SegmentationDataset(images, masks, batch_size=6, shuffle=True, seed=3,
                                 steps_per_epoch=20, patch_size=(16, 16),
                                 foreground_fraction=fg)
        ys = [ds[i][1] for i in range(len(ds))]
        x, _ = ds[0]
        assert x.shape == (6, 16, 16, 1)
        return float(np.mean([y.reshape(len(y), -1).max(axis=1).mean() for y in ys]))

    uniform, oversampled = fraction_with_mass(0.0), fraction_with_mass(1.0)
    assert oversampled == 1.0  # every patch holds a mass pixel
    assert uniform < 0.5  # a 6x6 mass in a 64x48 image: a uniform 16x16 patch rarely hits it
    a = SegmentationDataset(images, masks, batch_size=2, seed=5, patch_size=(16, 16),
                            foreground_fraction=0.5)
    b = SegmentationDataset(images, masks, batch_size=2, seed=5, patch_size=(16, 16),
                            foreground_fraction=0.5)
    assert np.array_equal(a[1][0], b[1][0]) and np.array_equal(a[1][1], b[1][1])
    with pytest.raises(ValueError, match="foreground_fraction"):
        SegmentationDataset(images, masks, foreground_fraction=1.5)


def test_patch_pads_small_images():
    from mammo_common.keras.training.data import sample_patch

    x = np.ones((10, 8, 1), np.float32)
    y = np.zeros((10, 8, 1), np.float32)
    px, py = sample_patch(x, y, (16, 16), np.random.default_rng(0), 0.5)
    assert px.shape == (16, 16, 1) and py.shape == (16, 16, 1) and px.sum() == 80


class _CountingRows:
    """Row access that counts reads (to see the cache at work)."""

    def __init__(self, array: np.ndarray) -> None:
        self.array, self.reads = array, 0

    def __len__(self) -> int:
        return len(self.array)

    def __getitem__(self, i: int) -> np.ndarray:
        self.reads += 1
        return self.array[i]


def test_cache_gives_the_same_batches_and_reads_each_image_once():
    rng = np.random.default_rng(2)
    images = rng.integers(0, 65536, (6, 64, 48), dtype=np.uint16)
    masks = np.zeros((6, 64, 48), np.uint8)
    masks[:, 20:30, 10:22] = 1
    augment = AugmentConfig.mass()

    def batches(cache_bytes: int) -> tuple[list, _CountingRows]:
        rows = _CountingRows(images)
        ds = SegmentationDataset(rows, masks, batch_size=3, shuffle=True, seed=1,
                                 augment=augment, steps_per_epoch=4, image_size=(32, 24),
                                 patch_size=(16, 16), foreground_fraction=0.5,
                                 cache_bytes=cache_bytes)
        out = []
        for _ in range(3):  # epochs: augmentation must never write into the cache
            out += [ds[i] for i in range(len(ds))]
            ds.on_epoch_end()
        return out, rows

    plain, plain_rows = batches(0)
    cached, cached_rows = batches(1 << 20)
    assert len(plain) == len(cached) == 12
    for (x0, y0), (x1, y1) in zip(plain, cached, strict=True):
        assert x0.dtype == x1.dtype == np.float32
        assert np.array_equal(x0, x1) and np.array_equal(y0, y1)
    assert plain_rows.reads == 12 * 3 and cached_rows.reads == 6
    # a budget smaller than one image caches nothing (and changes nothing)
    small, small_rows = batches(100)
    assert small_rows.reads == 36
    assert all(np.array_equal(a[0], b[0]) for a, b in zip(plain, small, strict=True))
