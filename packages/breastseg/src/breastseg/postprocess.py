"""Breast-mask post-processing: keep the breast, cut off what is not, fill holes, chest wall.

A mask from the network or the threshold labeller can hold more than the breast: an ID label,
lead markers, a ruler, bright unexposed strips along the film edges, or thin bridges joining
them to the breast. :func:`postprocess_breast_mask` turns it into the breast alone, without
assuming a black background (it only looks at the mask's shape):

1. **Cut thin structures** (``cut_width``): a morphological opening with a disc of diameter
   ``cut_width`` x the image's longer side (on a copy reduced to ``work_size``) removes every
   part of the mask thinner than that: film-edge strips along the border, ruler bars, marker
   letters and the bridges that join them to the breast. The breast, much wider, survives
   whole apart from its sharpest corners (restored in step 4).
2. **Know the chest-wall side** (``chest_wall``): ``left`` or ``right`` as given; ``auto``
   takes the case's laterality when known (``L``: the chest wall is on the image's left, as in
   the standard display and in ``mammo synth``; ``R``: on the right) and otherwise infers it
   from the mask (:func:`infer_chest_wall`: the breast lies against the chest-wall edge). When
   the laterality contradicts a mask that clearly lies against the other edge (a flipped
   image), the mask wins and the result says so in its notes. ``none`` uses no side.
3. **Keep the breast's component** (``largest_component``): of what survived step 1, the
   largest component that touches the chest-wall edge (the breast lies against it; labels
   and markers sit on the far side), or the largest one when no side is known or none
   touches it. Off: every component that survived step 1 is kept.
4. **Restore the outline**: the kept mask is the input mask near the kept component and
   connected to it, at the input's full resolution. A piece that the cut took off and that
   lies wholly within the cut's radius of the component (a corner, the sharp tip where the
   breast meets the image border, a bump of the skin line) comes back whole; a piece reaching
   farther (a film-edge strip, a bridge to a label) is an artefact and comes back only within
   :data:`RESTORE_PIXELS` of the component. On a clean mask the result is the input exactly.
   Where a strip runs into the breast, what stays is its junction with the skin line (at most
   the strip's width from the breast): the mask alone cannot say where the breast ends there.
5. **Fill holes** (``fill_holes``): background enclosed by the breast becomes breast, and so
   does background enclosed by the breast and the chest-wall edge (the image border on the
   chest-wall side counts as closed).

An empty mask stays empty (with a :class:`BreastMaskWarning` and a note); nothing here raises
for a valid 2-D mask.

Example:
    >>> import numpy as np
    >>> mask = np.zeros((100, 80), np.uint8)
    >>> mask[20:80, :50] = 1                  # the breast against the left edge
    >>> mask[:4, :] = 1                       # a film-edge strip along the top border
    >>> out = postprocess_breast_mask(mask)
    >>> int(out.mask[:4].sum()), out.chest_wall, out.chest_wall_source
    (0, 'left', 'image')
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray
from pydantic import BaseModel, ConfigDict, Field
from scipy import ndimage

from mammo_common.postprocess import label
from mammo_common.transforms import resize

__all__ = [
    "BreastMask",
    "BreastMaskWarning",
    "ChestWall",
    "PostprocessConfig",
    "Side",
    "border_share",
    "fill_breast_holes",
    "infer_chest_wall",
    "laterality_side",
    "postprocess_breast_mask",
]

ChestWall = Literal["auto", "left", "right", "none"]
Side = Literal["left", "right"]

#: Pixels (at the working resolution) by which step 4 grows the kept component back into
#: pieces that reach farther than the cut's radius (artefacts joined to the breast).
RESTORE_PIXELS = 2
#: A component touching the chest-wall edge is preferred to the largest one only if it has at
#: least this share of the largest one's pixels.
MIN_CHEST_WALL_SHARE = 0.1
#: Laterality is overruled when the mask lies against the other edge with at least this
#: confidence (see :func:`infer_chest_wall`).
OVERRULE_CONFIDENCE = 0.5
#: Share of the image border covered by the mask above which a note warns that the background
#: may have been taken for breast.
BORDER_WARNING = 0.75


class BreastMaskWarning(UserWarning):
    """A breast mask that post-processing could not make sense of (e.g. an empty one)."""


class PostprocessConfig(BaseModel):
    """Settings of :func:`postprocess_breast_mask` (``postprocess:`` of predict and evaluate).

    Attributes:
        largest_component: Keep only the breast's component (the largest one touching the
            chest-wall edge); off keeps every component wider than ``cut_width``.
        fill_holes: Fill holes, the image edge on the chest-wall side counting as closed.
        chest_wall: ``auto`` (the case's laterality when known, else inferred from the mask),
            ``left``, ``right`` or ``none`` (no side: plain largest component, holes only
            where enclosed by the breast).
        cut_width: Parts of the mask thinner than this fraction of the image's longer side are
            cut off (film-edge strips, ruler bars, marker letters, bridges to labels); 0 cuts
            nothing. The default, 0.05, is 12 mm on a 24 cm film.
        work_size: Longer side of the reduced copy the cut and the component choice work on
            (the result keeps the input's resolution).
    """

    model_config = ConfigDict(extra="forbid")

    largest_component: bool = True
    fill_holes: bool = True
    chest_wall: ChestWall = "auto"
    cut_width: float = Field(default=0.05, ge=0, le=0.25)
    work_size: int = Field(default=512, ge=64)


@dataclass
class BreastMask:
    """A post-processed breast mask and what was done to it.

    Attributes:
        mask: The breast, uint8 0/1, of the input's shape.
        chest_wall: ``left``, ``right`` or ``None`` (not known and not inferable, or
            ``chest_wall="none"``).
        chest_wall_source: ``config``, ``laterality``, ``image`` or ``None``.
        removed_pixels: Pixels of the input mask left out (artefacts, thin parts).
        filled_pixels: Pixels added by hole filling.
        notes: Things worth telling (an empty mask, a laterality the image contradicts, no
            component on the chest-wall edge, a mask covering the image border).
    """

    mask: NDArray[np.uint8]
    chest_wall: Side | None
    chest_wall_source: str | None
    removed_pixels: int = 0
    filled_pixels: int = 0
    notes: list[str] = field(default_factory=list)


def laterality_side(laterality: str | None) -> Side | None:
    """The chest-wall side of a laterality in the standard orientation.

    ``L`` (or ``LEFT``): the left breast, its chest wall on the image's left and the nipple
    pointing right; ``R``: the other way round. Anything else (``unknown``, ``B``, ``None``)
    gives ``None``.
    """
    text = str(laterality or "").strip().upper()
    if text in ("L", "LEFT"):
        return "left"
    if text in ("R", "RIGHT"):
        return "right"
    return None


def _as_mask(mask: ArrayLike) -> NDArray[np.bool_]:
    arr = np.asarray(mask)
    if arr.ndim != 2:
        raise ValueError(f"a breast mask is 2-D, got shape {arr.shape}")
    with np.errstate(invalid="ignore"):
        return arr > 0 if arr.dtype != bool else arr


def _edge_columns(width: int) -> int:
    return max(1, round(0.01 * width))


def infer_chest_wall(mask: ArrayLike) -> tuple[Side | None, float]:
    """Infer the chest-wall side from a breast mask.

    The breast lies against the chest-wall edge along much of the image's height and its area
    thins out towards the nipple. The side is the one whose edge columns (1 % of the width) the
    mask touches on more rows; when both touch about equally (or neither does), the side with
    more of the mask's pixels in its half.

    Args:
        mask: 2-D mask (non-zero: breast), best without thin artefacts along the borders (the
            post-processing infers it after its cut).

    Returns:
        ``(side, confidence)``: ``left``/``right`` and the margin between the two sides (0: a
        tie, 1: all evidence on one side); ``(None, 0.0)`` for an empty mask.
    """
    m = _as_mask(mask)
    if not m.any():
        return None, 0.0
    k = _edge_columns(m.shape[1])
    left = int(m[:, :k].any(axis=1).sum())
    right = int(m[:, -k:].any(axis=1).sum())
    if left + right > 0:
        confidence = abs(left - right) / (left + right)
        if confidence >= 0.2:
            return ("left" if left > right else "right"), float(confidence)
    half = m.shape[1] // 2
    cols = m.sum(axis=0, dtype=np.int64)
    a, b = int(cols[:half].sum()), int(cols[m.shape[1] - half :].sum())
    if a == b:
        return None, 0.0
    return ("left" if a > b else "right"), float(abs(a - b) / (a + b))


def _open(mask: NDArray[np.bool_], radius: float) -> NDArray[np.bool_]:
    """Opening with a Euclidean disc of ``radius`` (the image border counts as background)."""
    padded = np.pad(mask, 1)
    inner = ndimage.distance_transform_edt(padded) > radius
    if not inner.any():
        return np.zeros_like(mask)
    opened = ndimage.distance_transform_edt(~inner) <= radius
    return opened[1:-1, 1:-1] & mask


def _grow(mask: NDArray[np.bool_], radius: float) -> NDArray[np.bool_]:
    """Dilation with a Euclidean disc of ``radius``."""
    if not mask.any():
        return mask.copy()
    return ndimage.distance_transform_edt(~mask) <= radius


def _restore_region(
    small: NDArray[np.bool_], chosen: NDArray[np.bool_], radius: float, reduced: bool
) -> NDArray[np.bool_]:
    """Where step 4 may take the input back: the breast's own corners, not artefact stubs.

    Every piece of the mask outside the kept component that lies wholly within ``radius`` of it
    (a corner, a sharp tip where the breast meets the image border, a bump of the skin line)
    comes back whole; a piece reaching farther (a film-edge strip, a bridge to a label) is an
    artefact and comes back only within :data:`RESTORE_PIXELS` of the component.
    """
    slack = 1 if reduced else 0
    distance = ndimage.distance_transform_edt(~chosen)
    region = distance <= RESTORE_PIXELS + slack
    pieces, n = label(small & ~chosen)
    if n:
        reach = ndimage.maximum(distance, pieces, index=np.arange(1, n + 1))
        whole = np.concatenate([[False], np.asarray(reach) <= radius + slack])
        region |= whole[pieces]
    return region


def _choose(
    core: NDArray[np.bool_], side: Side | None, config: PostprocessConfig, notes: list[str]
) -> NDArray[np.bool_]:
    labels, n = label(core)
    if n <= 1 or not config.largest_component:
        return core
    sizes = np.bincount(labels.ravel(), minlength=n + 1)
    sizes[0] = 0
    largest = int(np.argmax(sizes))
    chosen = largest
    if side is not None:
        k = _edge_columns(core.shape[1])
        edge = labels[:, :k] if side == "left" else labels[:, -k:]
        touching = [int(i) for i in np.unique(edge) if i]
        touching = [i for i in touching if sizes[i] >= MIN_CHEST_WALL_SHARE * sizes[largest]]
        if touching:
            chosen = max(touching, key=lambda i: sizes[i])
        else:
            notes.append(
                f"no part of the breast mask touches the {side} edge (chest wall); "
                "kept the largest part"
            )
    return labels == chosen


def _chest_wall(
    config: PostprocessConfig,
    laterality: str | None,
    evidence: NDArray[np.bool_],
    notes: list[str],
) -> tuple[Side | None, str | None]:
    if config.chest_wall in ("left", "right"):
        return config.chest_wall, "config"  # type: ignore[return-value]
    if config.chest_wall == "none":
        return None, None
    known = laterality_side(laterality)
    inferred, confidence = infer_chest_wall(evidence)
    if known is None:
        return inferred, ("image" if inferred else None)
    if inferred is not None and inferred != known and confidence >= OVERRULE_CONFIDENCE:
        notes.append(
            f"laterality {laterality} puts the chest wall on the {known}, but the breast lies "
            f"against the {inferred} edge (a flipped image?); used the {inferred}"
        )
        return inferred, "image"
    return known, "laterality"


def fill_breast_holes(mask: ArrayLike, side: Side | None = None) -> NDArray[np.bool_]:
    """Fill holes; with a chest-wall ``side``, that image edge counts as closed.

    Background enclosed by the breast is filled, and with ``side`` also background enclosed by
    the breast and the chest-wall edge (dark retromammary fat against the chest wall, say).

    Args:
        mask: 2-D mask.
        side: ``left``, ``right`` or ``None`` (only holes enclosed by the mask itself).

    Returns:
        The filled mask (bool).
    """
    mask = _as_mask(mask)
    if side is None:
        return ndimage.binary_fill_holes(mask)
    wall = np.ones((mask.shape[0], 1), bool)
    if side == "left":
        return ndimage.binary_fill_holes(np.hstack([wall, mask]))[:, 1:]
    return ndimage.binary_fill_holes(np.hstack([mask, wall]))[:, :-1]


def border_share(mask: NDArray[np.bool_]) -> float:
    """Share of the image's border pixels inside ``mask`` (the background taken for breast
    covers most of it)."""
    border = np.concatenate([mask[0], mask[-1], mask[1:-1, 0], mask[1:-1, -1]])
    return float(border.mean()) if border.size else 0.0


def postprocess_breast_mask(
    mask: ArrayLike,
    config: PostprocessConfig | None = None,
    *,
    laterality: str | None = None,
    warn: bool = True,
) -> BreastMask:
    """Make a predicted breast mask the breast alone (see the module docstring for the steps).

    Args:
        mask: 2-D mask of the native image (non-zero: breast), e.g. a thresholded probability
            map or the threshold labeller's mask.
        config: Settings; defaults (everything on, ``chest_wall="auto"``) when ``None``.
        laterality: The case's laterality (``L``, ``R``, ``unknown`` or ``None``), used by
            ``chest_wall="auto"``.
        warn: Emit a :class:`BreastMaskWarning` for an empty mask (the note is always added).

    Returns:
        The breast mask (uint8 0/1, the input's shape) and what was done.

    Raises:
        ValueError: If ``mask`` is not 2-D.
    """
    cfg = config or PostprocessConfig()
    m = _as_mask(mask)
    h, w = m.shape
    notes: list[str] = []
    if not m.any():
        side, source = _chest_wall(cfg, laterality, m, notes)
        note = "empty breast mask: no breast found; the mask stays empty"
        notes.append(note)
        if warn:
            warnings.warn(note, BreastMaskWarning, stacklevel=2)
        return BreastMask(np.zeros((h, w), np.uint8), side, source, notes=notes)

    factor = min(1.0, cfg.work_size / max(h, w))
    reduced = factor < 1.0
    work_shape = (max(1, round(h * factor)), max(1, round(w * factor)))
    small = resize(m.astype(np.float32), work_shape, order=1, anti_aliasing=False) >= 0.5
    if reduced and not small.any():
        small = resize(m, work_shape, order=0)
    radius = cfg.cut_width * max(work_shape) / 2.0
    core = _open(small, radius) if radius >= 1.0 else small
    if not core.any():
        notes.append(
            f"the whole mask is thinner than cut_width ({cfg.cut_width}); nothing was cut"
        )
        core = small
        radius = 0.0

    side, source = _chest_wall(cfg, laterality, _choose(core, None, cfg, []), notes)
    chosen = _choose(core, side, cfg, notes)

    cut = radius >= 1.0
    if cut or cfg.largest_component:
        seed = chosen
        region = _restore_region(small, chosen, radius, reduced) if cut else None
        if reduced:
            seed = resize(seed, (h, w), order=0)
            region = None if region is None else resize(region, (h, w), order=0)
        candidate = m if region is None else m & region
        labels, _ = label(candidate)
        ids = np.unique(labels[seed & candidate])
        ids = ids[ids > 0]
        kept = np.isin(labels, ids) if ids.size else candidate
    else:
        kept = m.copy()

    final = fill_breast_holes(kept, side) if cfg.fill_holes else kept
    share = border_share(final)
    if share >= BORDER_WARNING:
        notes.append(
            f"the breast mask covers {share:.0%} of the image border: the background may have "
            "been taken for breast (an inverted image?)"
        )
    return BreastMask(
        mask=final.astype(np.uint8),
        chest_wall=side,
        chest_wall_source=source,
        removed_pixels=int((m & ~kept).sum()),
        filled_pixels=int((final & ~m).sum()),
        notes=notes,
    )
