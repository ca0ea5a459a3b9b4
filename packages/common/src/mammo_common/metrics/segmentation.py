"""Segmentation metrics on numpy masks and probability maps (pure functions).

Conventions (the reference's "Evaluation as reported"):

* A prediction is binarised with ``prob >= threshold`` (default 0.5). ``>=`` matches the
  ROC convention used by :func:`mammo_common.metrics.classification.roc_curve`. Boolean
  arrays are taken as they are. Ground-truth masks are binarised with ``truth >= 0.5``, so
  0/1 and 0/255 masks both work.
* Dice and Jaccard are undefined only when prediction and truth are both empty; the
  ``empty`` policy decides the value: ``"one"`` (default, as the reference: an empty truth
  predicted empty scores 1), ``"zero"`` or ``"nan"``. An empty truth with a non-empty
  prediction scores 0.
* Pixel ROC AUC is undefined when the truth is all 0 or all 1; the policy defaults to
  ``"nan"`` there, and means skip NaN values.
* AUC is exact and tie-aware (Mann-Whitney U over distinct scores, the value
  ``sklearn.metrics.roc_auc_score`` gives). float16, uint8 and bool maps are counted with a
  fixed 65536/256/2-bin histogram (no sort, O(pixels)); other dtypes use one sort.
* "Pooled" variants treat all pixels of all images as one image.

Every function accepts any array shape (2-D images, ``(H, W, 1)`` maps, ...); prediction
and truth must have the same shape.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from mammo_common.metrics._common import (
    EmptyPolicy,
    auc_from_counts,
    check_finite,
    empty_value,
    float16_keys,
    n_items,
)

__all__ = [
    "binarize",
    "dice",
    "dice_from_counts",
    "jaccard",
    "jaccard_from_counts",
    "overlap_counts",
    "pixel_auc",
    "pooled_dice",
    "pooled_jaccard",
    "pooled_pixel_auc",
    "score_counts",
    "segmentation_report",
]


def binarize(prob: ArrayLike, threshold: float = 0.5) -> NDArray[np.bool_]:
    """Binarises a probability map (``prob >= threshold``); boolean input is returned as is.

    Args:
        prob: Probability map or mask of any shape.
        threshold: Decision threshold; pixels at or above it are foreground.

    Returns:
        Boolean array of the same shape.
    """
    arr = np.asarray(prob)
    if arr.dtype == np.bool_:
        return arr
    return arr >= threshold


def _pair(pred: ArrayLike, truth: ArrayLike, threshold: float) -> tuple[NDArray, NDArray]:
    p = binarize(pred, threshold)
    t = binarize(truth, 0.5)
    if p.shape != t.shape:
        raise ValueError(f"prediction shape {p.shape} differs from truth shape {t.shape}")
    return p, t


def overlap_counts(
    pred: ArrayLike, truth: ArrayLike, *, threshold: float = 0.5
) -> tuple[int, int, int]:
    """Counts the pixels needed by Dice and Jaccard.

    Args:
        pred: Predicted mask or probability map.
        truth: Ground-truth mask.
        threshold: Binarisation threshold for ``pred``.

    Returns:
        ``(intersection, predicted_foreground, true_foreground)`` pixel counts.
    """
    p, t = _pair(pred, truth, threshold)
    inter = int(np.count_nonzero(p & t))
    return inter, int(np.count_nonzero(p)), int(np.count_nonzero(t))


def dice_from_counts(inter: int, n_pred: int, n_truth: int, *, empty: EmptyPolicy = "one") -> float:
    """Dice ``2|P∩T| / (|P| + |T|)`` from counts; ``empty`` policy when both are empty."""
    if n_pred + n_truth == 0:
        return empty_value(empty)
    empty_value(empty)  # validate the policy even when unused
    return 2.0 * inter / (n_pred + n_truth)


def jaccard_from_counts(
    inter: int, n_pred: int, n_truth: int, *, empty: EmptyPolicy = "one"
) -> float:
    """Jaccard ``|P∩T| / |P∪T|`` from counts; ``empty`` policy when both are empty."""
    union = n_pred + n_truth - inter
    if union == 0:
        return empty_value(empty)
    empty_value(empty)
    return inter / union


def dice(
    pred: ArrayLike, truth: ArrayLike, *, threshold: float = 0.5, empty: EmptyPolicy = "one"
) -> float:
    """Dice coefficient of one image.

    Args:
        pred: Predicted mask or probability map (binarised with ``>= threshold``).
        truth: Ground-truth mask (binarised with ``>= 0.5``).
        threshold: Binarisation threshold for ``pred``.
        empty: Value when prediction and truth are both empty: ``"one"`` (reference),
            ``"zero"`` or ``"nan"``.

    Returns:
        Dice in [0, 1] (or NaN under ``empty="nan"``).
    """
    return dice_from_counts(*overlap_counts(pred, truth, threshold=threshold), empty=empty)


def jaccard(
    pred: ArrayLike, truth: ArrayLike, *, threshold: float = 0.5, empty: EmptyPolicy = "one"
) -> float:
    """Jaccard index (IoU) of one image; arguments as :func:`dice`."""
    return jaccard_from_counts(*overlap_counts(pred, truth, threshold=threshold), empty=empty)


def score_counts(
    scores: ArrayLike, labels: ArrayLike
) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """Counts positives and negatives at each distinct score, in increasing score order.

    float16 scores use a 65536-bin histogram of their bit patterns, uint8 a 256-bin and
    bool a 2-bin one (empty bins are harmless); other dtypes use ``np.unique``.

    Args:
        scores: Scores of any shape (finite).
        labels: Labels of the same shape; foreground/positive is ``>= 0.5`` or True.

    Returns:
        ``(pos_counts, neg_counts)`` with equal length.

    Raises:
        ValueError: On shape mismatch or non-finite scores.
    """
    s = np.asarray(scores)
    y = binarize(labels, 0.5)
    if s.shape != y.shape:
        raise ValueError(f"scores shape {s.shape} differs from labels shape {y.shape}")
    s = s.reshape(-1)
    y = y.reshape(-1)
    check_finite(s, "scores")
    if s.dtype == np.float16:
        keys, n_bins = float16_keys(s), 65536
    elif s.dtype in (np.uint8, np.bool_):
        keys, n_bins = s.astype(np.intp), 256 if s.dtype == np.uint8 else 2
    else:
        uniq, keys = np.unique(s, return_inverse=True)
        keys, n_bins = keys.reshape(-1), uniq.size
    total = np.bincount(keys, minlength=n_bins)
    pos = np.bincount(keys[y], minlength=n_bins)
    return pos.astype(np.int64), (total - pos).astype(np.int64)


def pixel_auc(prob: ArrayLike, truth: ArrayLike, *, empty: EmptyPolicy = "nan") -> float:
    """Exact pixel ROC AUC of one probability map.

    Args:
        prob: Probability map (finite; any dtype, float16 is fastest).
        truth: Ground-truth mask of the same shape.
        empty: Value when the truth is all 0 or all 1 (AUC undefined); default ``"nan"``.

    Returns:
        ROC AUC in [0, 1], tie-aware (equal to ``sklearn.metrics.roc_auc_score``).
    """
    empty_value(empty)
    value = auc_from_counts(*score_counts(prob, truth))
    return empty_value(empty) if math.isnan(value) else value


def _check_lengths(probs: Sequence[Any], truths: Sequence[Any]) -> None:
    if n_items(probs) != n_items(truths):
        raise ValueError(f"got {n_items(probs)} predictions but {n_items(truths)} truths")


def _pooled_counts(
    preds: Sequence[ArrayLike] | NDArray, truths: Sequence[ArrayLike] | NDArray, threshold: float
) -> tuple[int, int, int]:
    _check_lengths(preds, truths)
    inter = n_pred = n_truth = 0
    for i in range(n_items(preds)):
        a, b, c = overlap_counts(preds[i], truths[i], threshold=threshold)
        inter, n_pred, n_truth = inter + a, n_pred + b, n_truth + c
    return inter, n_pred, n_truth


def pooled_dice(
    preds: Sequence[ArrayLike] | NDArray,
    truths: Sequence[ArrayLike] | NDArray,
    *,
    threshold: float = 0.5,
    empty: EmptyPolicy = "one",
) -> float:
    """Dice over all pixels of all images (sums of counts); arguments as :func:`dice`."""
    return dice_from_counts(*_pooled_counts(preds, truths, threshold), empty=empty)


def pooled_jaccard(
    preds: Sequence[ArrayLike] | NDArray,
    truths: Sequence[ArrayLike] | NDArray,
    *,
    threshold: float = 0.5,
    empty: EmptyPolicy = "one",
) -> float:
    """Jaccard over all pixels of all images; arguments as :func:`dice`."""
    return jaccard_from_counts(*_pooled_counts(preds, truths, threshold), empty=empty)


class _ExactPooledAUC:
    """Exact pooled AUC: float16 key histograms, else kept scores (memory grows)."""

    def __init__(self, float16: bool) -> None:
        self.float16 = float16
        self.pos = np.zeros(65536, dtype=np.int64)
        self.neg = np.zeros(65536, dtype=np.int64)
        self.scores: list[NDArray] = []
        self.labels: list[NDArray] = []

    def add(self, prob: ArrayLike, truth: ArrayLike) -> tuple[NDArray, NDArray] | None:
        p = np.asarray(prob)
        if self.float16:
            pos, neg = score_counts(p, truth)
            self.pos += pos
            self.neg += neg
            return pos, neg
        t = binarize(truth, 0.5)
        if p.shape != t.shape:
            raise ValueError(f"scores shape {p.shape} differs from labels shape {t.shape}")
        self.scores.append(p.reshape(-1).astype(np.float64))
        self.labels.append(t.reshape(-1))
        return None

    def value(self) -> float:
        if self.float16:
            return auc_from_counts(self.pos, self.neg)
        if not self.scores:
            return math.nan
        return auc_from_counts(
            *score_counts(np.concatenate(self.scores), np.concatenate(self.labels))
        )


def _all_float16(probs: Sequence[ArrayLike] | NDArray) -> bool:
    dtype = getattr(probs, "dtype", None)
    if dtype is not None and not isinstance(probs, list | tuple):
        try:
            return np.dtype(dtype) == np.float16
        except TypeError:
            pass
    return all(np.asarray(probs[i]).dtype == np.float16 for i in range(n_items(probs)))


def pooled_pixel_auc(
    probs: Sequence[ArrayLike] | NDArray,
    truths: Sequence[ArrayLike] | NDArray,
    *,
    empty: EmptyPolicy = "nan",
) -> float:
    """Exact ROC AUC over all pixels of all images.

    Memory is constant (two 65536-bin histograms) when every map is float16; otherwise all
    scores are gathered as float64 (8 bytes per pixel).

    Args:
        probs: Probability maps (a list, or an array whose first axis is the image).
        truths: Ground-truth masks, same length and shapes.
        empty: Value when the pooled truth is all 0 or all 1.

    Returns:
        The pooled AUC.
    """
    empty_value(empty)
    _check_lengths(probs, truths)
    acc = _ExactPooledAUC(_all_float16(probs))
    for i in range(n_items(probs)):
        acc.add(probs[i], truths[i])
    value = acc.value()
    return empty_value(empty) if math.isnan(value) else value


def nanmean(values: Sequence[float]) -> float:
    """Mean of the non-NaN values, NaN when there are none (no warning)."""
    arr = np.asarray(values, dtype=np.float64)
    ok = ~np.isnan(arr)
    return float(arr[ok].mean()) if ok.any() else math.nan


def segmentation_report(
    probs: Sequence[ArrayLike] | NDArray,
    truths: Sequence[ArrayLike] | NDArray,
    threshold: float = 0.5,
    *,
    empty: EmptyPolicy = "one",
    auc_empty: EmptyPolicy = "nan",
) -> dict[str, Any]:
    """Per-image and pooled Dice, Jaccard and pixel AUC of a set of probability maps.

    Args:
        probs: Probability maps (a list, or a numpy/Zarr array whose first axis is the
            image; arrays are read one image at a time).
        truths: Ground-truth masks, same length and shapes.
        threshold: Binarisation threshold for Dice and Jaccard.
        empty: Empty-mask policy for Dice and Jaccard (default ``"one"``).
        auc_empty: Policy for images whose truth is all 0 or all 1 (default ``"nan"``).

    Returns:
        A JSON-ready dict (plain floats; NaN where undefined)::

            {"n_images": int, "threshold": float, "n_auc_defined": int,
             "per_image": {"dice": [...], "jaccard": [...], "auc": [...]},
             "mean": {"dice": ..., "jaccard": ..., "auc": ...},   # NaN values skipped
             "pooled": {"dice": ..., "jaccard": ..., "auc": ...}}  # pooled AUC is exact
    """
    empty_value(empty)
    empty_value(auc_empty)
    _check_lengths(probs, truths)
    pooled_auc = _ExactPooledAUC(_all_float16(probs))
    per: dict[str, list[float]] = {"dice": [], "jaccard": [], "auc": []}
    inter_sum = pred_sum = truth_sum = n_auc_defined = 0
    for i in range(n_items(probs)):
        prob, truth = np.asarray(probs[i]), np.asarray(truths[i])
        counts = overlap_counts(prob, truth, threshold=threshold)
        inter_sum, pred_sum, truth_sum = (
            inter_sum + counts[0],
            pred_sum + counts[1],
            truth_sum + counts[2],
        )
        per["dice"].append(dice_from_counts(*counts, empty=empty))
        per["jaccard"].append(jaccard_from_counts(*counts, empty=empty))
        hist = pooled_auc.add(prob, truth)
        auc = (
            auc_from_counts(*hist)
            if hist is not None
            else auc_from_counts(*score_counts(prob, truth))
        )
        n_auc_defined += not math.isnan(auc)
        per["auc"].append(empty_value(auc_empty) if math.isnan(auc) else auc)
    pooled_value = pooled_auc.value()
    totals = (inter_sum, pred_sum, truth_sum)
    return {
        "n_images": len(per["dice"]),
        "threshold": float(threshold),
        "n_auc_defined": int(n_auc_defined),
        "per_image": per,
        "mean": {k: nanmean(v) for k, v in per.items()},
        "pooled": {
            "dice": dice_from_counts(*totals, empty=empty),
            "jaccard": jaccard_from_counts(*totals, empty=empty),
            "auc": empty_value(auc_empty) if math.isnan(pooled_value) else pooled_value,
        },
    }
