"""Batches for training and evaluation: ``keras.utils.PyDataset`` over array-likes.

The sources are anything indexable on the first axis with an integer: the lazy Zarr arrays of
a stacked store (``store.array("images")``) or numpy arrays. Only the requested items are
read, one at a time, so a store larger than memory trains fine.

Per item: read -> :func:`normalize_image` to float32 in [0, 1] (uint16 / 65535, uint8 / 255,
detected from the dtype) -> resize to the model input with :func:`mammo_common.transforms.resize`
(bilinear image, anti-aliased when shrinking; nearest mask) ->
optional paired augmentation (geometry on image and mask, then the intensity change on the
image) -> gray channel repeated when the model takes 3 channels.

Determinism: the order and the augmentation of epoch ``e`` are pure functions of
``(seed, e, position)``, so any batch can be rebuilt in any thread, and a resumed training
sees exactly the batches an uninterrupted one would. :func:`~mammo_common.keras.training.harness.
fit_resumable` passes ``dataset.for_epoch(e)`` to Keras for each epoch. Used directly in
``model.fit``, a dataset reshuffles in ``on_epoch_end``, but Keras prefetches the first batches
of the next epoch before calling it, so plain ``fit`` is reproducible only up to that.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Sequence
from typing import Any

import keras
import numpy as np
from numpy.typing import NDArray

from mammo_common.keras.training.augment import AugmentConfig, augment_image, augment_pair
from mammo_common.transforms import resize

__all__ = [
    "ClassificationDataset",
    "SegmentationDataset",
    "binarize_mask",
    "epoch_order",
    "load_arrays",
    "n_items",
    "normalize_image",
    "prepare_image",
    "prepare_mask",
]


def normalize_image(x: NDArray) -> NDArray[np.float32]:
    """Scales an image to float32 in [0, 1] according to its dtype.

    Unsigned integers are divided by their dtype's maximum (uint16 / 65535: the model card's
    ``"divide_by_max_uint16"``; uint8 / 255); booleans become 0/1; floats are taken as
    already scaled.

    Raises:
        ValueError: For signed integer or other dtypes.
    """
    arr = np.asarray(x)
    if arr.dtype == np.bool_:
        return arr.astype(np.float32)
    if np.issubdtype(arr.dtype, np.unsignedinteger):
        return arr.astype(np.float32) / np.float32(np.iinfo(arr.dtype).max)
    if np.issubdtype(arr.dtype, np.floating):
        return arr.astype(np.float32, copy=False)
    raise ValueError(
        f"cannot scale images of dtype {arr.dtype}; use uint8, uint16 or float in [0, 1]"
    )


def binarize_mask(m: NDArray) -> NDArray[np.float32]:
    """Returns a mask as float32 0/1 (integers: ``> 0``; floats: ``>= 0.5``)."""
    arr = np.asarray(m)
    if np.issubdtype(arr.dtype, np.floating):
        return (arr >= 0.5).astype(np.float32)
    return (arr > 0).astype(np.float32)


def n_items(source: Any) -> int:
    """Length of an array-like along its first axis (Zarr v3 arrays have no ``len``)."""
    shape = getattr(source, "shape", None)
    if shape is not None and len(shape) > 0:
        return int(shape[0])
    return len(source)


def _with_channel(x: NDArray) -> NDArray:
    return x[..., None] if x.ndim == 2 else x


def _resize(x: NDArray, size: tuple[int, int] | None, order: int) -> NDArray:
    if size is None or tuple(x.shape[:2]) == tuple(size):
        return x
    if x.ndim == 2:
        return resize(x, size, order=order)
    return np.stack([resize(x[..., c], size, order=order) for c in range(x.shape[-1])], axis=-1)


def prepare_image(
    image: NDArray, image_size: tuple[int, int] | None = None, channels: int | None = 1
) -> NDArray[np.float32]:
    """One image as the model takes it: float32 ``(H, W, channels)`` in [0, 1].

    Args:
        image: ``(h, w)`` or ``(h, w, c)`` image of any supported dtype.
        image_size: Model input ``(H, W)``; bilinear resize when it differs (None: keep).
        channels: Channels the model takes; a gray image is repeated to 3. None: keep.
    """
    x = _with_channel(normalize_image(image))
    x = _resize(x, image_size, order=1)
    return _match_channels(x, channels)


def prepare_mask(mask: NDArray, image_size: tuple[int, int] | None = None) -> NDArray[np.float32]:
    """One mask as float32 ``(H, W, 1)`` 0/1, nearest-resized to ``image_size`` if given."""
    m = binarize_mask(mask)
    if m.ndim == 3:
        if m.shape[-1] != 1:
            raise ValueError(f"a mask must have one channel, got shape {m.shape}")
        m = m[..., 0]
    m = _resize(m, image_size, order=0)
    return m[..., None].astype(np.float32, copy=False)


def _match_channels(x: NDArray, channels: int | None) -> NDArray[np.float32]:
    if channels is None or x.shape[-1] == channels:
        return x.astype(np.float32, copy=False)
    if x.shape[-1] == 1:
        return np.repeat(x, channels, axis=-1).astype(np.float32, copy=False)
    raise ValueError(f"cannot turn a {x.shape[-1]}-channel image into {channels} channels")


def epoch_order(n: int, count: int, *, shuffle: bool, seed: int, epoch: int) -> NDArray[np.int64]:
    """Positions (into the index list) of the ``count`` samples of one epoch.

    Shuffled: consecutive fresh permutations of ``range(n)`` from
    ``default_rng([seed, epoch])`` until ``count`` are drawn (so ``count > n`` visits every
    sample before repeating any, as the reference's 3 x (n // batch) steps did). Not shuffled:
    ``0, 1, ..., n - 1, 0, 1, ...``.
    """
    if n <= 0:
        raise ValueError("the dataset holds no samples")
    reps = max(1, math.ceil(count / n))
    if shuffle:
        rng = np.random.default_rng([int(seed), int(epoch)])
        order = np.concatenate([rng.permutation(n) for _ in range(reps)])
    else:
        order = np.tile(np.arange(n), reps)
    return order[:count].astype(np.int64)


def _checked_indices(indices: Any, n: int) -> NDArray[np.int64]:
    """``indices`` (all of ``range(n)`` when ``None``) as int64, each checked to lie in it."""
    out = np.arange(n) if indices is None else np.asarray(indices, dtype=np.int64)
    if out.size and (out.min() < 0 or out.max() >= n):
        raise ValueError(f"indices must lie in [0, {n})")
    return out


class _EpochDataset(keras.utils.PyDataset):
    """Batching, per-epoch order and seeding shared by the two datasets."""

    def __init__(
        self,
        n_items: int,
        *,
        batch_size: int,
        shuffle: bool,
        seed: int,
        augment: AugmentConfig | None,
        steps_per_epoch: int | None,
        epoch: int,
        workers: int,
        use_multiprocessing: bool,
        max_queue_size: int,
    ) -> None:
        super().__init__(
            workers=workers, use_multiprocessing=use_multiprocessing, max_queue_size=max_queue_size
        )
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        if n_items < 1:
            raise ValueError("the dataset holds no samples")
        if steps_per_epoch is not None and steps_per_epoch < 1:
            raise ValueError("steps_per_epoch must be at least 1")
        self.n_items = int(n_items)
        self.batch_size = int(batch_size)
        self.shuffle = bool(shuffle)
        self.seed = int(seed)
        self.augment = None if augment is None or augment.is_noop else augment
        self.steps_per_epoch = steps_per_epoch
        self.epoch = int(epoch)
        self._fixed_epoch = False
        self._orders: dict[int, NDArray[np.int64]] = {}

    def __len__(self) -> int:
        if self.steps_per_epoch is not None:
            return int(self.steps_per_epoch)
        return math.ceil(self.n_items / self.batch_size)

    def _count(self) -> int:
        if self.steps_per_epoch is not None:
            return len(self) * self.batch_size
        return self.n_items

    def order(self, epoch: int | None = None) -> NDArray[np.int64]:
        """Positions of the samples of ``epoch`` (default: the current one), in batch order."""
        e = self.epoch if epoch is None else int(epoch)
        cached = self._orders.get(e)
        if cached is None:
            cached = epoch_order(
                self.n_items, self._count(), shuffle=self.shuffle, seed=self.seed, epoch=e
            )
            self._orders = {e: cached}  # replaced atomically; threads may read the old one
        return cached

    def _batch_positions(self, idx: int) -> tuple[int, NDArray[np.int64]]:
        if not 0 <= idx < len(self):
            raise IndexError(f"batch {idx} out of range (0..{len(self) - 1})")
        epoch = self.epoch
        order = self.order(epoch)
        return epoch, order[idx * self.batch_size : (idx + 1) * self.batch_size]

    def _rng(self, epoch: int, slot: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, epoch, slot, 0x5EED])

    def set_epoch(self, epoch: int) -> None:
        """Sets the epoch whose order and augmentation the batches follow."""
        self.epoch = int(epoch)

    def for_epoch(self, epoch: int):
        """A shallow copy pinned to ``epoch`` (shares the sources; ignores ``on_epoch_end``)."""
        view = copy.copy(self)
        view.epoch = int(epoch)
        view._fixed_epoch = True
        return view

    def on_epoch_end(self) -> None:
        if not self._fixed_epoch:
            self.epoch += 1


def sample_patch(
    x: NDArray,
    y: NDArray,
    size: tuple[int, int],
    rng: np.random.Generator,
    foreground_fraction: float,
) -> tuple[NDArray, NDArray]:
    """A random ``size`` patch of an image ``(H, W, C)`` and its mask ``(H, W, 1)``.

    With probability ``foreground_fraction`` (and a non-empty mask) the patch holds a random
    foreground pixel at a random place inside it; otherwise it is placed uniformly. Images
    smaller than ``size`` are zero-padded first.
    """
    ph, pw = int(size[0]), int(size[1])
    h, w = x.shape[:2]
    if h < ph or w < pw:
        pad = [(0, max(0, ph - h)), (0, max(0, pw - w)), (0, 0)]
        x, y = np.pad(x, pad), np.pad(y, pad)
        h, w = x.shape[:2]
    on_foreground = rng.random() < foreground_fraction
    ys, xs = np.nonzero(y[..., 0] > 0.5) if on_foreground else ((), ())
    if len(ys):
        k = int(rng.integers(len(ys)))
        y0 = int(ys[k]) - int(rng.integers(ph))
        x0 = int(xs[k]) - int(rng.integers(pw))
    else:
        y0, x0 = int(rng.integers(h - ph + 1)), int(rng.integers(w - pw + 1))
    y0, x0 = min(max(y0, 0), h - ph), min(max(x0, 0), w - pw)
    return x[y0:y0 + ph, x0:x0 + pw], y[y0:y0 + ph, x0:x0 + pw]


class SegmentationDataset(_EpochDataset):
    """Image / mask batches ``(x float32 (b, H, W, C), y float32 (b, H, W, 1))``.

    Args:
        images: Array-like ``(N, h, w[, c])`` (uint16, uint8 or float in [0, 1]).
        masks: Array-like ``(N, h, w[, 1])`` of 0/1 (or 0/255) masks.
        indices: Which items (positions along the first axis) to use; default all.
        batch_size: Images per batch.
        image_size: Model input ``(H, W)``; items of another size are resized. None: keep.
        channels: Model input channels; a gray image is repeated to 3.
        shuffle: Reshuffle every epoch (order from ``(seed, epoch)``).
        seed: Seed of the order and of the augmentation.
        augment: Paired augmentation settings (None: none). Validation data: leave None.
        steps_per_epoch: Batches per epoch (the reference: ``3 * (n // batch)`` with
            augmentation); more than ``n / batch`` cycles through fresh permutations, and
            every batch is full. None: one pass, ``ceil(n / batch)`` batches.
        epoch: Starting epoch.
        workers: PyDataset worker threads (1: the 2-core default).
        use_multiprocessing: PyDataset multiprocessing.
        max_queue_size: PyDataset queue size.
        patch_size: Train on random ``(rows, cols)`` patches of the (resized) images instead
            of whole images (a fully convolutional network then predicts whole images);
            None: whole images.
        foreground_fraction: Share of patches placed on a random foreground pixel of the mask
            (foreground oversampling, as nnU-Net); the rest are placed uniformly.
        cache_bytes: Keep up to this many bytes of prepared (read, scaled, resized) images
            and masks in memory, so that later epochs only cut patches and augment: reading a
            compressed row and resizing it cost about 85 % of a demo batch. The batches are
            the same with or without the cache; 0 turns it off.
    """

    def __init__(
        self,
        images: Any,
        masks: Any,
        indices: Sequence[int] | NDArray | None = None,
        *,
        batch_size: int = 2,
        image_size: tuple[int, int] | None = None,
        channels: int = 1,
        shuffle: bool = False,
        seed: int = 0,
        augment: AugmentConfig | None = None,
        steps_per_epoch: int | None = None,
        epoch: int = 0,
        workers: int = 1,
        use_multiprocessing: bool = False,
        max_queue_size: int = 10,
        patch_size: tuple[int, int] | None = None,
        foreground_fraction: float = 0.0,
        cache_bytes: int = 1 << 30,
    ) -> None:
        n = n_items(images)
        if not 0.0 <= foreground_fraction <= 1.0:
            raise ValueError("foreground_fraction must lie in [0, 1]")
        self.patch_size = None if patch_size is None else (int(patch_size[0]), int(patch_size[1]))
        self.foreground_fraction = float(foreground_fraction)
        if n != n_items(masks):
            raise ValueError(f"{n} images but {n_items(masks)} masks")
        self.images = images
        self.masks = masks
        self.indices = _checked_indices(indices, n)
        self.image_size = None if image_size is None else (int(image_size[0]), int(image_size[1]))
        self.channels = int(channels)
        self.cache_bytes = max(0, int(cache_bytes))
        self._cache: dict[int, tuple[NDArray, NDArray]] = {}
        self._cached_bytes = 0
        super().__init__(
            len(self.indices),
            batch_size=batch_size,
            shuffle=shuffle,
            seed=seed,
            augment=augment,
            steps_per_epoch=steps_per_epoch,
            epoch=epoch,
            workers=workers,
            use_multiprocessing=use_multiprocessing,
            max_queue_size=max_queue_size,
        )

    def item(
        self,
        position: int,
        rng: np.random.Generator | None = None,
        patch_rng: np.random.Generator | None = None,
    ) -> tuple[NDArray, NDArray]:
        """Sample at ``position`` of the index list, prepared (augmented when ``rng``; a
        random patch when the dataset has a ``patch_size`` and ``patch_rng`` is given)."""
        x, y = self._prepared(int(self.indices[position]))
        if self.patch_size is not None and patch_rng is not None:
            x, y = sample_patch(x, y, self.patch_size, patch_rng, self.foreground_fraction)
        if self.augment is not None and rng is not None:
            # the arrays may be the cache's (or views of them): augment copies
            x, y = augment_pair(x.copy(), y.copy(), self.augment, rng)
        return _match_channels(x, self.channels), y.astype(np.float32, copy=True)

    def _prepared(self, i: int) -> tuple[NDArray, NDArray]:
        """Item ``i`` read, scaled to [0, 1] and resized (from the cache when it is there)."""
        hit = self._cache.get(i)
        if hit is not None:
            return hit
        x = _with_channel(normalize_image(np.asarray(self.images[i])))
        x = _resize(x, self.image_size, order=1)
        y = prepare_mask(np.asarray(self.masks[i]), self.image_size)
        size = x.nbytes + y.nbytes
        if self._cached_bytes + size <= self.cache_bytes:
            x.setflags(write=False)
            y.setflags(write=False)
            self._cache[i] = (x, y)  # a dict store is atomic: worker threads may race here
            self._cached_bytes += size
        return x, y

    def __getitem__(self, idx: int) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
        epoch, positions = self._batch_positions(idx)
        xs, ys = [], []
        for j, pos in enumerate(positions):
            slot = idx * self.batch_size + j
            rng = self._rng(epoch, slot) if self.augment else None
            patch_rng = (
                np.random.default_rng([self.seed, epoch, slot, 0xCA7C4])
                if self.patch_size is not None else None
            )
            x, y = self.item(int(pos), rng, patch_rng)
            xs.append(x)
            ys.append(y)
        return np.stack(xs), np.stack(ys)


class ClassificationDataset(_EpochDataset):
    """Crop / label batches ``(x float32 (b, H, W, C), y float32 (b, 1))``.

    Args:
        crops: Array-like of crops ``(h, w[, c])`` (items may differ in size: each is resized
            to ``image_size``), uint8/uint16/float in [0, 1].
        labels: 0/1 labels (1 = malignant), one per crop.
        indices: Which items to use; default all.
        batch_size: Crops per batch (the recipe: 8).
        image_size: Model input ``(H, W)`` (the recipe: 224 x 224).
        channels: Model input channels (3 for ``keras.applications`` bases).
        shuffle: Reshuffle every epoch.
        seed: Seed of the order and of the augmentation.
        augment: Augmentation (e.g. ``AugmentConfig.classifier()``); None for validation.
        steps_per_epoch: Batches per epoch; None: ``ceil(n / batch)``.
        preprocess: Optional function applied to each float32 batch in [0, 1] (e.g.
            ``lambda x: keras.applications.vgg16.preprocess_input(x * 255)``), unless the
            model does it itself.
        epoch: Starting epoch.
        workers: PyDataset worker threads.
        use_multiprocessing: PyDataset multiprocessing.
        max_queue_size: PyDataset queue size.
    """

    def __init__(
        self,
        crops: Any,
        labels: Sequence[int] | NDArray,
        indices: Sequence[int] | NDArray | None = None,
        *,
        batch_size: int = 8,
        image_size: tuple[int, int] | None = (224, 224),
        channels: int = 3,
        shuffle: bool = False,
        seed: int = 0,
        augment: AugmentConfig | None = None,
        steps_per_epoch: int | None = None,
        preprocess: Callable[[NDArray[np.float32]], NDArray] | None = None,
        epoch: int = 0,
        workers: int = 1,
        use_multiprocessing: bool = False,
        max_queue_size: int = 10,
    ) -> None:
        labels_arr = np.asarray(labels, dtype=np.float32).reshape(-1)
        n = n_items(crops)
        if n != labels_arr.size:
            raise ValueError(f"{n} crops but {labels_arr.size} labels")
        self.crops = crops
        self.labels = labels_arr
        self.indices = _checked_indices(indices, n)
        self.image_size = None if image_size is None else (int(image_size[0]), int(image_size[1]))
        self.channels = int(channels)
        self.preprocess = preprocess
        super().__init__(
            len(self.indices),
            batch_size=batch_size,
            shuffle=shuffle,
            seed=seed,
            augment=augment,
            steps_per_epoch=steps_per_epoch,
            epoch=epoch,
            workers=workers,
            use_multiprocessing=use_multiprocessing,
            max_queue_size=max_queue_size,
        )

    def __getitem__(self, idx: int) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
        epoch, positions = self._batch_positions(idx)
        xs = []
        for j, pos in enumerate(positions):
            i = int(self.indices[int(pos)])
            x = _resize(
                _with_channel(normalize_image(np.asarray(self.crops[i]))), self.image_size, order=1
            )
            if self.augment is not None:
                x = augment_image(x, self.augment, self._rng(epoch, idx * self.batch_size + j))
            xs.append(_match_channels(x, self.channels))
        x = np.stack(xs)
        if self.preprocess is not None:
            x = np.asarray(self.preprocess(x), dtype=np.float32)
        y = self.labels[self.indices[positions]].reshape(-1, 1)
        return x, y


def load_arrays(
    images: Any,
    masks: Any | None = None,
    indices: Sequence[int] | NDArray | None = None,
    *,
    image_size: tuple[int, int] | None = None,
    channels: int = 1,
) -> tuple[NDArray[np.float32], NDArray[np.float32] | None]:
    """Loads a subset into memory, prepared exactly as the datasets prepare each item.

    Args:
        images: Array-like ``(N, h, w[, c])``.
        masks: Optional array-like of masks.
        indices: Items to load (default all).
        image_size: Model input ``(H, W)``; None keeps the stored size.
        channels: Model input channels.

    Returns:
        ``(x (n, H, W, C) float32, y (n, H, W, 1) float32 or None)``.
    """
    idx = np.arange(n_items(images)) if indices is None else np.asarray(indices, dtype=np.int64)
    x = np.stack([prepare_image(np.asarray(images[int(i)]), image_size, channels) for i in idx])
    if masks is None:
        return x, None
    y = np.stack([prepare_mask(np.asarray(masks[int(i)]), image_size) for i in idx])
    return x, y
