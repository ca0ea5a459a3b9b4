"""Boxes cut out of an image: zero padding where a box leaves it, and the squares' resize.

The second-look stages cut a square around each mass: the massseg refiner
(:func:`massseg.refine.crop_square`), the massclass regions of interest
(:func:`massclass.rois.crop_roi`) and the realism benchmark that imitates them. A square around
a mass near the border leaves the image; :func:`padded_crop` fills that part with a constant
(0, the blanked background) so the mass stays at the square's centre. :func:`resize_bilinear`
is the resize those squares go through: Pillow's bilinear filter on float32, which the trained
refiners and classifiers were fed. It is not :func:`mammo_common.transforms.resize` (scikit-image,
optional anti-aliasing), and swapping one for the other changes what the models see.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

__all__ = ["padded_crop", "resize_bilinear"]


def padded_crop(array: NDArray, box: Sequence[int], fill: float = 0) -> NDArray:
    """The ``box`` of ``array``, filled with ``fill`` where the box leaves the array.

    Args:
        array: Array of at least two dimensions; the box applies to the first two (rows,
            columns), any further axes (channels) are kept whole.
        box: ``(top, left, bottom, right)``, end-exclusive; may extend past any edge, or lie
            entirely outside the array.
        fill: Value of the pixels outside the array; must fit ``array``'s dtype.

    Returns:
        A new array of shape ``(bottom - top, right - left) + array.shape[2:]`` and
        ``array``'s dtype.

    Raises:
        ValueError: If ``array`` has fewer than two dimensions or the box has a negative side.
    """
    array = np.asarray(array)
    if array.ndim < 2:
        raise ValueError(f"padded_crop expects at least a 2-D array, got shape {array.shape}")
    top, left, bottom, right = (int(v) for v in box)
    if bottom < top or right < left:
        raise ValueError(f"box {tuple(box)} has a negative side")
    out = np.full((bottom - top, right - left, *array.shape[2:]), fill, dtype=array.dtype)
    h, w = array.shape[:2]
    y0, x0, y1, x1 = max(top, 0), max(left, 0), min(bottom, h), min(right, w)
    if y1 > y0 and x1 > x0:
        out[y0 - top : y1 - top, x0 - left : x1 - left] = array[y0:y1, x0:x1]
    return out


def resize_bilinear(array: NDArray, size: int | Sequence[int]) -> NDArray[np.float32]:
    """A 2-D array as float32, resized with Pillow's bilinear filter.

    Args:
        array: 2-D array of any real or boolean dtype (converted to float32 first).
        size: Target side of a square, or ``(rows, cols)``.

    Returns:
        A new float32 array of the target shape (a float32 copy when the shape already
        matches).

    Raises:
        ValueError: If ``array`` is not 2-D or the target shape is not positive.
    """
    from PIL import Image

    array = np.asarray(array)
    if array.ndim != 2:
        raise ValueError(f"resize_bilinear expects a 2-D array, got shape {array.shape}")
    rows, cols = (int(size), int(size)) if np.isscalar(size) else (int(size[0]), int(size[1]))
    if rows <= 0 or cols <= 0:
        raise ValueError(f"target shape must be positive, got {(rows, cols)}")
    src = np.ascontiguousarray(array, dtype=np.float32)
    if src.shape == (rows, cols):
        return src.copy() if src is array else src
    img = Image.fromarray(src).resize((cols, rows), Image.Resampling.BILINEAR)
    return np.asarray(img, dtype=np.float32)
