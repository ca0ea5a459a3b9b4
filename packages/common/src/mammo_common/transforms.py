"""Geometry between a native mammogram and the fixed-size images of a stacked store.

Breast segmentation crops each mammogram to the breast's bounding box (plus a margin) and resizes
the crop to the store's image size; :class:`~mammo_common.schema.CaseTransform` records that
mapping. This module applies it (native -> store) and inverts it (store -> native), so any mask a
later stage predicts maps back onto the original image::

    box = crop_box_from_mask(breast_mask, margin_fraction=0.02)
    tf = make_transform(image.shape, box, (640, 640))
    stored = apply_transform(image, tf, order=1)          # image: bilinear
    stored_mask = apply_transform(mass_mask, tf, order=0)  # masks: nearest
    native_mask = invert_transform(stored_mask, tf)        # back on the original grid

Resizing uses pixel-centre alignment (as scikit-image and OpenCV do), so a round trip lands on the
original pixels up to the resolution lost by down-sampling. No TensorFlow is imported here.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

from mammo_common.schema import CaseTransform

__all__ = [
    "apply_transform",
    "box_to_native",
    "crop_box_from_mask",
    "invert_transform",
    "invert_transform_window",
    "make_transform",
    "resize",
]

Box = tuple[int, int, int, int]


def resize(
    array: NDArray, shape: Sequence[int], order: int = 1, *, anti_aliasing: bool | None = None
) -> NDArray:
    """Resize a 2-D array to ``shape`` keeping its dtype and value range.

    Args:
        array: 2-D array (any numeric or boolean dtype).
        shape: Target ``(rows, cols)``.
        order: Interpolation order: 0 nearest neighbour (masks, labels), 1 bilinear (images),
            3 bicubic.
        anti_aliasing: Gaussian pre-smoothing when down-sampling; by default on for
            ``order > 0`` and off for ``order == 0`` (masks stay binary).

    Returns:
        The resized array, same dtype as ``array`` (integers rounded and clipped to the input's
        range, booleans stay boolean).

    Raises:
        ValueError: If ``array`` is not 2-D or ``shape`` is not two positive ints.
    """
    from skimage.transform import resize as _sk_resize

    array = np.asarray(array)
    if array.ndim != 2:
        raise ValueError(f"resize expects a 2-D array, got shape {array.shape}")
    target = (int(shape[0]), int(shape[1]))
    if min(target) <= 0:
        raise ValueError(f"target shape must be positive, got {tuple(shape)}")
    if array.shape == target:
        return array.copy()
    if order == 0:
        return _resize_nearest(array, target)
    if anti_aliasing is None:
        anti_aliasing = target[0] < array.shape[0] or target[1] < array.shape[1]
    dtype = array.dtype
    src = array.astype(np.float32, copy=False)
    out = _sk_resize(
        src,
        target,
        order=order,
        mode="edge",
        preserve_range=True,
        anti_aliasing=anti_aliasing,
    )
    if dtype == np.bool_:
        return out >= 0.5
    if np.issubdtype(dtype, np.integer):
        lo, hi = (float(array.min()), float(array.max())) if array.size else (0.0, 0.0)
        return np.clip(np.rint(out), lo, hi).astype(dtype)
    return out.astype(dtype, copy=False)


def _resize_nearest(array: NDArray, target: tuple[int, int]) -> NDArray:
    """Nearest-neighbour resize with pixel-centre alignment (exact, any dtype)."""
    rows = _nearest_index(array.shape[0], target[0])
    cols = _nearest_index(array.shape[1], target[1])
    return array[rows[:, None], cols[None, :]]


def _nearest_index(n_in: int, n_out: int) -> NDArray[np.intp]:
    centres = (np.arange(n_out, dtype=np.float64) + 0.5) * (n_in / n_out)
    return np.clip(np.floor(centres).astype(np.intp), 0, n_in - 1)


def crop_box_from_mask(mask: NDArray, margin_fraction: float = 0.0) -> Box:
    """Bounding box of a mask's foreground, grown by a margin and clipped to the image.

    Args:
        mask: 2-D mask; non-zero pixels are foreground.
        margin_fraction: Margin added on every side, as a fraction of the box's own height
            (top/bottom) and width (left/right); 0 gives the tight box.

    Returns:
        ``(y0, x0, y1, x1)``, end-exclusive; the whole image when the mask is empty.

    Raises:
        ValueError: If ``mask`` is not 2-D or ``margin_fraction`` is negative.
    """
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise ValueError(f"mask must be 2-D, got shape {mask.shape}")
    if margin_fraction < 0:
        raise ValueError(f"margin_fraction must be >= 0, got {margin_fraction}")
    h, w = mask.shape
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return (0, 0, h, w)
    cols = np.flatnonzero(mask.any(axis=0))
    y0, y1 = int(rows[0]), int(rows[-1]) + 1
    x0, x1 = int(cols[0]), int(cols[-1]) + 1
    my = round((y1 - y0) * margin_fraction)
    mx = round((x1 - x0) * margin_fraction)
    return (max(0, y0 - my), max(0, x0 - mx), min(h, y1 + my), min(w, x1 + mx))


def make_transform(
    original_shape: Sequence[int], crop_box: Sequence[int], output_shape: Sequence[int]
) -> CaseTransform:
    """Build (and validate) the :class:`CaseTransform` of one case."""
    return CaseTransform(
        original_shape=(int(original_shape[0]), int(original_shape[1])),
        crop_box=tuple(int(v) for v in crop_box),  # type: ignore[arg-type]
        output_shape=(int(output_shape[0]), int(output_shape[1])),
    )


def _check_native(array: NDArray, transform: CaseTransform) -> None:
    if tuple(array.shape) != tuple(transform.original_shape):
        raise ValueError(
            f"array shape {array.shape} differs from the transform's original_shape "
            f"{tuple(transform.original_shape)}"
        )


def apply_transform(array: NDArray, transform: CaseTransform, order: int = 1) -> NDArray:
    """Map a native-resolution array into the store: crop to ``crop_box``, resize.

    Args:
        array: 2-D array of shape ``transform.original_shape``.
        transform: The case's transform.
        order: 1 (bilinear) for images, 0 (nearest) for masks.

    Returns:
        Array of shape ``transform.output_shape``, same dtype.
    """
    array = np.asarray(array)
    _check_native(array, transform)
    y0, x0, y1, x1 = transform.crop_box
    return resize(array[y0:y1, x0:x1], transform.output_shape, order=order)


def invert_transform(store_array: NDArray, transform: CaseTransform, order: int = 0) -> NDArray:
    """Map a store-size array back onto the native image grid.

    The array is resized to the crop box and pasted into a zero array of the native shape;
    pixels outside the crop box are 0 (the blanked background).

    Args:
        store_array: 2-D array of shape ``transform.output_shape`` (e.g. a predicted mask).
        transform: The case's transform.
        order: 0 (nearest, default) for masks, 1 for probability maps or images.

    Returns:
        Array of shape ``transform.original_shape``, same dtype as ``store_array``.
    """
    store_array = np.asarray(store_array)
    if tuple(store_array.shape) != tuple(transform.output_shape):
        raise ValueError(
            f"array shape {store_array.shape} differs from the transform's output_shape "
            f"{tuple(transform.output_shape)}"
        )
    y0, x0, y1, x1 = transform.crop_box
    out = np.zeros(transform.original_shape, dtype=store_array.dtype)
    out[y0:y1, x0:x1] = resize(store_array, (y1 - y0, x1 - x0), order=order)
    return out


def box_to_native(box: Box, transform: CaseTransform | None) -> Box:
    """A box of store (work-image) pixels as native pixels, the smallest integer box covering it.

    The store box's edges map through the crop and scale (``y -> y0 + y * rows_per_store_row``),
    rounded outwards, so every native pixel that :func:`invert_transform` assigns to a store
    pixel inside ``box`` lies inside the result.

    Args:
        box: ``(y0, x0, y1, x1)`` in store pixels, end-exclusive.
        transform: The case's transform; ``None`` means store and native pixels coincide.

    Returns:
        ``(y0, x0, y1, x1)`` in native pixels, end-exclusive.
    """
    if transform is None:
        return tuple(int(v) for v in box)  # type: ignore[return-value]
    y0, x0, y1, x1 = box
    cy0, cx0, cy1, cx1 = transform.crop_box
    oh, ow = transform.output_shape
    sy, sx = (cy1 - cy0) / oh, (cx1 - cx0) / ow
    return (
        math.floor(cy0 + y0 * sy),
        math.floor(cx0 + x0 * sx),
        math.ceil(cy0 + y1 * sy),
        math.ceil(cx0 + x1 * sx),
    )


def invert_transform_window(
    store_array: NDArray, transform: CaseTransform, window: Box
) -> NDArray:
    """Nearest-neighbour :func:`invert_transform` of a store array, for one native window only.

    Equal to ``invert_transform(store_array, transform, order=0)[y0:y1, x0:x1]`` without
    allocating the whole native image (a mass of a 5000x4000 mammogram needs only its box).

    Args:
        store_array: 2-D array of shape ``transform.output_shape``.
        transform: The case's transform.
        window: ``(y0, x0, y1, x1)`` in native pixels, end-exclusive, inside the native image.

    Returns:
        The window's values (0 outside the crop box), same dtype as ``store_array``.
    """
    store_array = np.asarray(store_array)
    if tuple(store_array.shape) != tuple(transform.output_shape):
        raise ValueError(
            f"array shape {store_array.shape} differs from the transform's output_shape "
            f"{tuple(transform.output_shape)}"
        )
    wy0, wx0, wy1, wx1 = (int(v) for v in window)
    h, w = transform.original_shape
    if not (0 <= wy0 <= wy1 <= h and 0 <= wx0 <= wx1 <= w):
        raise ValueError(f"window {window} is not inside the native image {(h, w)}")
    cy0, cx0, cy1, cx1 = transform.crop_box
    out = np.zeros((wy1 - wy0, wx1 - wx0), dtype=store_array.dtype)
    ry0, ry1 = max(wy0, cy0), min(wy1, cy1)
    rx0, rx1 = max(wx0, cx0), min(wx1, cx1)
    if ry0 >= ry1 or rx0 >= rx1:
        return out
    # the store pixel each native pixel of the crop takes, exactly as _resize_nearest picks it
    rows = _nearest_index(transform.output_shape[0], cy1 - cy0)[ry0 - cy0 : ry1 - cy0]
    cols = _nearest_index(transform.output_shape[1], cx1 - cx0)[rx0 - cx0 : rx1 - cx0]
    out[ry0 - wy0 : ry1 - wy0, rx0 - wx0 : rx1 - wx0] = store_array[rows[:, None], cols[None, :]]
    return out
