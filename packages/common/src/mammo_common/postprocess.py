"""Post-processing of predicted masks (numpy + scipy.ndimage, no TensorFlow).

Used by every stage that turns a probability map into objects::

    mask = binarize(prob, 0.5)
    mask = remove_small_objects(mask, 30)      # the reference drops objects under 30 pixels
    breast = fill_holes(largest_component(mask))
    for comp in components(mask, min_pixels=30):
        roi = image[comp.slices]                 # comp.mask is the object's own pixels there

Connectivity is 8 (pixels touching at corners belong to the same object) unless stated.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import ndimage

__all__ = [
    "Component",
    "binarize",
    "components",
    "fill_holes",
    "label",
    "largest_component",
    "remove_small_objects",
]

_EIGHT = np.ones((3, 3), dtype=bool)
_FOUR = ndimage.generate_binary_structure(2, 1)


def _structure(connectivity: int) -> NDArray[np.bool_]:
    if connectivity == 2:
        return _EIGHT
    if connectivity == 1:
        return _FOUR
    raise ValueError(
        f"connectivity must be 1 (4-neighbours) or 2 (8-neighbours), not {connectivity}"
    )


def _as_mask(mask: ArrayLike) -> NDArray[np.bool_]:
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise ValueError(f"expected a 2-D mask, got shape {mask.shape}")
    return mask.astype(bool, copy=False)


def binarize(prob: ArrayLike, threshold: float = 0.5) -> NDArray[np.bool_]:
    """Pixels with ``prob >= threshold`` (NaN counts as background)."""
    prob = np.asarray(prob)
    with np.errstate(invalid="ignore"):
        return np.asarray(prob >= threshold)


def label(mask: ArrayLike, *, connectivity: int = 2) -> tuple[NDArray[np.int32], int]:
    """Label connected components: ``(labels, n)`` with labels 1..n in raster order."""
    labels, n = ndimage.label(_as_mask(mask), structure=_structure(connectivity))
    return labels.astype(np.int32, copy=False), int(n)


def remove_small_objects(
    mask: ArrayLike, min_pixels: int, *, connectivity: int = 2
) -> NDArray[np.bool_]:
    """Drop connected components with fewer than ``min_pixels`` pixels."""
    mask = _as_mask(mask)
    if min_pixels <= 1:
        return mask.copy()
    labels, n = label(mask, connectivity=connectivity)
    if n == 0:
        return mask.copy()
    sizes = np.bincount(labels.ravel(), minlength=n + 1)
    keep = sizes >= min_pixels
    keep[0] = False
    return keep[labels]


def largest_component(mask: ArrayLike, *, connectivity: int = 2) -> NDArray[np.bool_]:
    """The largest connected component (ties: the first in raster order); empty stays empty."""
    mask = _as_mask(mask)
    labels, n = label(mask, connectivity=connectivity)
    if n <= 1:
        return mask.copy()
    sizes = np.bincount(labels.ravel(), minlength=n + 1)
    sizes[0] = 0
    return labels == int(np.argmax(sizes))


def fill_holes(mask: ArrayLike) -> NDArray[np.bool_]:
    """Fill background regions not connected to the image border."""
    return ndimage.binary_fill_holes(_as_mask(mask))


@dataclass(frozen=True)
class Component:
    """One connected object of a mask.

    Attributes:
        label: 1-based index in raster order of the kept objects (1..n, no gaps).
        bbox: ``(y0, x0, y1, x1)`` end-exclusive, in the mask's pixels.
        area: Number of pixels.
        slices: ``(rows, cols)`` slices of the bounding box: ``image[comp.slices]``.
        mask: Boolean mask of this object within its bounding box (shape of the box).
    """

    label: int
    bbox: tuple[int, int, int, int]
    area: int
    slices: tuple[slice, slice]
    mask: NDArray[np.bool_]

    @property
    def centroid(self) -> tuple[float, float]:
        """``(row, col)`` centre of mass in the full mask's coordinates."""
        rows, cols = np.nonzero(self.mask)
        return (float(rows.mean()) + self.bbox[0], float(cols.mean()) + self.bbox[1])


def components(
    mask: ArrayLike, min_pixels: int = 0, *, connectivity: int = 2
) -> list[Component]:
    """Connected components with at least ``min_pixels`` pixels, in raster order.

    Args:
        mask: 2-D mask (non-zero = object).
        min_pixels: Smallest object kept.
        connectivity: 2 (8-neighbours, default) or 1 (4-neighbours).

    Returns:
        The kept components, labelled 1..n.
    """
    labels, n = label(mask, connectivity=connectivity)
    out: list[Component] = []
    if n == 0:
        return out
    for index, slc in enumerate(ndimage.find_objects(labels), start=1):
        if slc is None:
            continue
        own = labels[slc] == index
        area = int(own.sum())
        if area < max(min_pixels, 1):
            continue
        rs, cs = slc
        out.append(
            Component(
                label=len(out) + 1,
                bbox=(int(rs.start), int(cs.start), int(rs.stop), int(cs.stop)),
                area=area,
                slices=(slice(rs.start, rs.stop), slice(cs.start, cs.stop)),
                mask=own,
            )
        )
    return out
