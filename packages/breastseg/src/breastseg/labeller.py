"""A breast-mask labeller without a network: smoothing, Otsu threshold and morphology.

Sources such as CBIS-DDSM ship no breast masks. To train the breast U-Net on them anyway, the
stage labels each mammogram with this classical method, and says so: the model card records how
many training and validation masks came from the labeller (``mask_sources``), and
``breastseg evaluate`` names the reference it scored against. The same labeller is the stand-in
producer ``breastseg predict --method threshold``.

The method (after Otsu 1979 and the usual mammogram pre-processing), on a copy of the image
reduced so that its longer side is at most :attr:`LabellerConfig.work_size` pixels:

1. Scale to [0, 1] (minimum to maximum) and smooth with a Gaussian (``sigma`` pixels).
2. Threshold the smoothed image between the film background and Otsu's level: with ``b`` the
   median of the pixels below Otsu's threshold ``t`` (the background), the breast is
   ``> b + level * (t - b)`` (``level`` 0.25). Otsu alone splits dense tissue from fat and
   cuts off the darker, fatty periphery of the breast; a quarter of the way up from the
   background keeps most of it. (Images are stored with the breast bright, as ingest
   normalises them.)
3. Open with a disc (``opening_radius``) to cut thin bridges to labels and scanner marks.
4. Split along dark gaps (``split``): the smoothing and the threshold join a label, lead
   marker or film edge lying close to the breast to it along the whole length of the gap,
   a neck far wider than any opening can cut. In the median-filtered (not smoothed) image the
   gap is still background, so every object of at least ``split_min_area`` of the image that
   is bright there (above the low threshold of step 6; eroded by a pixel, so that stray grain
   does not bridge the gap) is told apart, each pixel of the mask
   goes to its nearest object, and the mask is cut where two objects meet.
5. Keep the breast: the breast-mask post-processing of :mod:`breastseg.postprocess` cuts off
   film-edge strips, rulers, markers and the bridges joining them to the breast, keeps the
   breast's component (the largest one on the chest-wall edge; the side from the case's
   laterality or inferred from the mask) and fills holes, the chest-wall edge counting as
   closed.
6. Grow into the faint periphery (hysteresis, ``low_noise``/``low_level``): the pixels
   between a low threshold and the threshold of step 2 that touch the kept breast, and that
   are above the low threshold in the median-filtered image as well (not only in the blur
   halo of a sharp edge), are added (after an opening, so that the blurred seam of a film
   edge stays out). The low threshold
   is the background's mode plus ``low_noise`` robust noise deviations, at least
   ``low_level`` of the way to Otsu's level. Only faint pixels are added, so nothing bright
   that step 5 removed comes back; this keeps the thin skin-line region of film and the fatty
   breast of a digital image whose Otsu threshold fell between the pectoral muscle and the
   rest.
7. Close with a disc (``closing_radius``) to smooth the skin line, then fill holes again (dark
   fatty tissue inside the breast stays breast).
8. Resize the mask back to the native grid (nearest neighbour).

Measured on ``mammo synth`` phantoms against their exact breast (``bench/breast_labeller.py``,
results in ``docs/pipeline.md``).

Its limits: a pectoral muscle is labelled breast (as in the reference's masks); an artefact
that touches the breast with no background between them (a label laid over the skin line, a
film edge running into the breast) is not split off, and where such a piece is wider than the
post-processing's ``cut_width`` it stays attached (a film-edge strip leaves its junction with
the skin line); lead-marker letters smaller than ``split_min_area`` are not objects of their
own (those joined to the breast only by the smoothing go with whichever object is nearest); a
very dense background (badly exposed film), or a background with a strong gradient, can
defeat the background estimate; where the breast's outermost millimetres are no brighter
than the film background (a thin, fatty periphery), they stay outside. Check a few masks of
a new source by eye (``breastseg evaluate --plot``).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray
from pydantic import BaseModel, ConfigDict, Field
from scipy import ndimage

from breastseg.postprocess import PostprocessConfig, fill_breast_holes, postprocess_breast_mask
from mammo_common.transforms import resize

__all__ = ["LABELLER_DESCRIPTION", "LabellerConfig", "label_breast"]

LABELLER_DESCRIPTION = (
    "threshold labeller (breastseg.labeller): Gaussian smoothing, threshold between the "
    "background level and Otsu's, opening, split along dark gaps, breast-mask "
    "post-processing (thin artefacts cut, the breast's component kept, holes filled), "
    "hysteresis growth into the faint periphery, closing, hole filling"
)


class LabellerConfig(BaseModel):
    """Settings of :func:`label_breast` (pixels are at the working resolution)."""

    model_config = ConfigDict(extra="forbid")

    work_size: int = Field(default=512, ge=32, description="Longer side of the working copy.")
    sigma: float = Field(default=2.0, ge=0, description="Gaussian smoothing, in pixels.")
    level: float = Field(
        default=0.25,
        gt=0,
        le=1,
        description="Threshold between the background level (0) and Otsu's threshold (1).",
    )
    opening_radius: int = Field(default=2, ge=0)
    closing_radius: int = Field(default=5, ge=0)
    low_noise: float = Field(
        default=5.0,
        ge=0,
        description=(
            "Hysteresis: the faint periphery joined to the breast is kept down to the "
            "background level plus this many background noise deviations (0: off, the single "
            "threshold of ``level``)."
        ),
    )
    low_level: float = Field(
        default=0.1,
        ge=0,
        le=1,
        description=(
            "Hysteresis floor: the low threshold is at least this far from the background "
            "level to Otsu's threshold (and never above the threshold of ``level``)."
        ),
    )
    split: bool = Field(
        default=True,
        description=(
            "Split the mask along dark gaps (background-level pixels of the median-filtered "
            "image) between bright objects, so that a label, marker or film edge that the "
            "smoothing joined to the breast is cut off along the gap however long it is."
        ),
    )
    split_min_area: float = Field(
        default=5e-4,
        ge=0,
        le=1,
        description=(
            "Objects (share of the image) smaller than this are not split off (film grain "
            "and the breast's ragged skin line stay with the breast)."
        ),
    )


def _disc(radius: int) -> NDArray[np.bool_]:
    yy, xx = np.mgrid[-radius : radius + 1, -radius : radius + 1]
    return (yy**2 + xx**2) <= radius**2


def _otsu(values: NDArray[np.floating]) -> float:
    from skimage.filters import threshold_otsu

    if float(values.max()) <= float(values.min()):
        return float(values.max())
    return float(threshold_otsu(values))


def _low_threshold(
    below: NDArray[np.floating], otsu: float, high: float, cfg: LabellerConfig
) -> float:
    """The hysteresis threshold: the background's mode plus ``low_noise`` deviations.

    The background's level is the mode of the pixels below Otsu's threshold and its noise the
    robust deviation (1.4826 x median absolute deviation) of those below the mode, where no
    tissue is (a fatty breast that Otsu counts as background only lies above the mode).
    """
    if cfg.low_noise <= 0 or below.size < 16:
        return high
    counts, edges = np.histogram(below, bins=256)
    k = int(np.argmax(counts))
    mode = float(edges[k] + edges[k + 1]) / 2.0
    under = mode - below[below < mode]
    noise = 1.4826 * float(np.median(under)) if under.size else 0.0
    low = mode + max(cfg.low_noise * noise, cfg.low_level * (otsu - mode))
    return min(high, low)


def _extend_faint(
    breast: NDArray[np.bool_], faint: NDArray[np.bool_], opening_radius: int
) -> NDArray[np.bool_]:
    """Grow the kept breast into the faint pixels (between the two thresholds) it touches.

    Only pixels below the main threshold are added: the breast's faint periphery (and, in a
    fatty breast that Otsu's threshold split from a bright pectoral muscle or dense tissue,
    the fatty tissue), never a bright label, marker or film edge that the post-processing
    removed. The union is opened first, so that a thin faint seam (the blurred inner edge of
    a film-edge strip) does not come along.
    """
    grown = breast | faint
    if opening_radius > 0:
        grown = ndimage.binary_opening(grown, structure=_disc(opening_radius))
    labels, n = ndimage.label(grown)
    if not n:
        return breast
    keep = np.zeros(n + 1, bool)
    keep[np.unique(labels[breast])] = True
    keep[0] = False
    return breast | keep[labels]


def _split_at_gaps(
    mask: NDArray[np.bool_], bright: NDArray[np.bool_], min_area: float
) -> NDArray[np.bool_]:
    """Cut ``mask`` between objects that are apart in ``bright`` (the unsmoothed image).

    Smoothing and a low threshold bridge the dark gap between the breast and a label or
    marker lying close to it, along the whole length of the gap: no opening can cut such a
    wide neck. The objects are still apart where the gap is dark in the (median-filtered,
    not smoothed) image. Each component of ``mask & bright``, eroded by one pixel, of at
    least ``min_area`` of the image is an object; every pixel of ``mask`` goes to its nearest
    object, and a line of two pixels is cut wherever two objects meet. Pixels that belong to
    no object (the breast's faint skin line, grain) thus stay with the object they lie
    against.
    """
    # eroded, so that a stray grain pixel above the threshold does not bridge a dark gap
    objects = ndimage.binary_erosion(mask & bright, structure=np.ones((3, 3), bool))
    labels, n = ndimage.label(objects)
    if n < 2:
        return mask
    sizes = np.bincount(labels.ravel(), minlength=n + 1)
    big = sizes >= max(1.0, min_area * mask.size)
    big[0] = False
    if int(big.sum()) < 2:
        return mask
    labels = np.where(big[labels], labels, 0)
    _, (iy, ix) = ndimage.distance_transform_edt(labels == 0, return_indices=True)
    owner = np.where(mask, labels[iy, ix], 0)
    cut = np.zeros_like(mask)
    for axis in (0, 1):
        a = owner.take(np.arange(owner.shape[axis] - 1), axis=axis)
        b = owner.take(np.arange(1, owner.shape[axis]), axis=axis)
        differ = (a != b) & (a > 0) & (b > 0)
        if axis == 0:
            cut[:-1] |= differ
            cut[1:] |= differ
        else:
            cut[:, :-1] |= differ
            cut[:, 1:] |= differ
    return mask & ~cut


def label_breast(
    image: NDArray,
    config: LabellerConfig | None = None,
    *,
    postprocess: PostprocessConfig | None = None,
    laterality: str | None = None,
) -> NDArray[np.uint8]:
    """Label the breast of one mammogram.

    Args:
        image: 2-D image (any numeric dtype), breast bright.
        config: Settings; defaults when ``None``.
        postprocess: Breast-mask post-processing of step 4; defaults when ``None``.
        laterality: The case's laterality (``L``, ``R`` or unknown), for the chest-wall side.

    Returns:
        A uint8 0/1 mask of the image's shape (all zeros for a constant image).

    Raises:
        ValueError: If ``image`` is not 2-D.
    """
    cfg = config or LabellerConfig()
    image = np.asarray(image)
    if image.ndim != 2:
        raise ValueError(f"label_breast expects a 2-D image, got shape {image.shape}")
    h, w = image.shape
    factor = min(1.0, cfg.work_size / max(h, w))
    work_shape = (max(1, round(h * factor)), max(1, round(w * factor)))
    small = resize(image.astype(np.float32), work_shape, order=1)
    lo, hi = float(small.min()), float(small.max())
    if hi <= lo:
        return np.zeros((h, w), np.uint8)
    small = (small - lo) / (hi - lo)
    fine = ndimage.median_filter(small, size=3)  # edges kept, grain reduced
    if cfg.sigma > 0:
        small = ndimage.gaussian_filter(small, cfg.sigma)
    otsu = _otsu(small)
    below = small[small <= otsu]
    background = float(np.median(below)) if below.size else float(small.min())
    high = background + cfg.level * (otsu - background)
    low = _low_threshold(below, otsu, high, cfg)
    mask = small > high
    if cfg.opening_radius > 0:
        mask = ndimage.binary_opening(mask, structure=_disc(cfg.opening_radius))
    if cfg.split:
        mask = _split_at_gaps(mask, fine > low, cfg.split_min_area)
    kept = postprocess_breast_mask(mask, postprocess, laterality=laterality, warn=False)
    mask = kept.mask.astype(bool)
    if low < high and mask.any():
        faint = (small > low) & (small <= high) & (fine > low)
        mask = _extend_faint(mask, faint, cfg.opening_radius)
    if cfg.closing_radius > 0 and mask.any():
        r = cfg.closing_radius
        padded = np.pad(mask, r)  # closing near the border must not erode the edge
        mask = ndimage.binary_closing(padded, structure=_disc(r))[r:-r, r:-r]
    if postprocess is None or postprocess.fill_holes:
        mask = fill_breast_holes(mask, kept.chest_wall)
    return resize(mask.astype(np.uint8), (h, w), order=0)
