"""The image's own outline of a mass: an iso-intensity contour seeded by a mask.

A classifier that reads a mass's shape from its mask learns whoever drew the mask. Outlines
differ by source: a radiologist's (CBIS-DDSM's are often loose, see docs/datasets.md), a
phantom generator's exact ones, a segmentation network's smooth blobs. A descriptor
classifier trained on exact outlines and shown the network's blobs at prediction time loses
most of its shape signal (``bench/classifier_outlines_cv.py``). This module redraws the
outline from the image itself, so the same mass gives nearly the same outline whoever marked
it:

1. the ROI's gray crop is smoothed by a Gaussian (film grain and detector noise would
   otherwise cut the contour into pieces);
2. the level is half-way (``level``) between the mean inside the seed mask and the mean in a
   ring of ``ring`` pixels around it (the radiologist's "where does the mass end" at
   half contrast);
3. the pixels on the mass's side of that level, within ``grow`` pixels of the seed, are the
   candidates; the connected component that overlaps the seed most, holes filled, is the
   outline.

The seed is kept unchanged when the image gives no outline (empty seed, no ring, no contrast,
no candidate touching the seed). Sizes are in ROI pixels; :func:`outline_settings` scales
them with the ROI side so a 96-px and a 224-px ROI of one mass give the same outline.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

__all__ = ["image_outline", "outline_settings"]

#: Gaussian sigma, ring width and growth, as fractions of the ROI side (1.5, 8 and 3 px at 96).
SMOOTH_FRACTION = 1.5 / 96.0
RING_FRACTION = 1.0 / 12.0
GROW_FRACTION = 3.0 / 96.0


def outline_settings(size: int) -> dict[str, float | int]:
    """:func:`image_outline`'s ``smooth``, ``ring`` and ``grow`` for a ``size``-pixel ROI."""
    return {
        "smooth": SMOOTH_FRACTION * size,
        "ring": max(1, round(RING_FRACTION * size)),
        "grow": max(1, round(GROW_FRACTION * size)),
    }


def image_outline(
    gray: np.ndarray,
    seed: np.ndarray,
    *,
    smooth: float = 1.5,
    ring: int = 8,
    grow: int = 3,
    level: float = 0.5,
) -> np.ndarray:
    """The mass's iso-intensity outline in ``gray``, seeded by ``seed``.

    Args:
        gray: ``(h, w)`` gray crop (any range).
        seed: ``(h, w)`` mask of the mass (nonzero inside) as drawn by someone.
        smooth: Gaussian sigma (pixels) applied to ``gray`` first.
        ring: Width (pixels) of the ring around the seed whose mean is "outside".
        grow: How far (pixels) the outline may extend beyond the seed.
        level: Where between outside (0) and inside (1) the contour lies.

    Returns:
        ``(h, w)`` float32 0/1 mask: the redrawn outline, or the seed where the image gives
        none.
    """
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1), got {level}")
    mask = np.asarray(seed) > 0
    fallback = mask.astype(np.float32)
    if not mask.any() or mask.all():
        return fallback
    smoothed = ndimage.gaussian_filter(np.asarray(gray, dtype=np.float32), max(0.0, smooth))
    around = ndimage.binary_dilation(mask, iterations=max(1, int(ring))) & ~mask
    if not around.any():
        return fallback
    inside = float(smoothed[mask].mean())
    outside = float(smoothed[around].mean())
    if not abs(inside - outside) > 1e-6:
        return fallback
    threshold = outside + level * (inside - outside)
    candidate = smoothed >= threshold if inside > outside else smoothed <= threshold
    candidate &= ndimage.binary_dilation(mask, iterations=max(1, int(grow)))
    labels, n = ndimage.label(candidate)
    if n == 0:
        return fallback
    overlap = np.bincount(labels[mask], minlength=n + 1)
    overlap[0] = 0
    if overlap.max() == 0:
        return fallback
    return ndimage.binary_fill_holes(labels == int(overlap.argmax())).astype(np.float32)
