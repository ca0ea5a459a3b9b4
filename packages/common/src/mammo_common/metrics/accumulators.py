"""Streaming metric accumulators (``update`` per image or batch, ``compute``, ``reset``).

They give the same numbers as the pure functions (tested), except for the pooled pixel
AUC of :class:`SegmentationAccumulator`, which comes from a fixed-bin histogram of
probabilities per class (:class:`BinnedAUC`) so that memory stays constant:

* ``auc_bins="float16"`` (default): one bin per float16 value (65536 bins, 1 MiB).
  Exact for float16 maps (the ``masses`` store's dtype); other inputs are rounded to
  float16 first, so scores closer than float16 resolution (relative 2**-11, e.g. about
  5e-4 just below 1) become ties.
* ``auc_bins=N``: N uniform bins on [0, 1] (scores outside are clipped into the end bins).
  With N = 4096, nearly continuous maps are within 1e-3 of the exact AUC, but saturated
  sigmoid outputs (many pixels below 1/N) collapse into one bin and can err more.

Within a bin, positive/negative pairs count as ties (1/2), so the error is at most half
the fraction of positive/negative pairs that share a bin.
"""

from __future__ import annotations

import math
from typing import Any, Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

from mammo_common.metrics._common import (
    EmptyPolicy,
    auc_from_counts,
    binary_labels,
    check_finite,
    empty_value,
    float16_keys,
    n_items,
)
from mammo_common.metrics.classification import classification_report
from mammo_common.metrics.segmentation import (
    binarize,
    dice_from_counts,
    jaccard_from_counts,
    nanmean,
    overlap_counts,
    pixel_auc,
)

__all__ = [
    "BinnedAUC",
    "ClassificationAccumulator",
    "DiceAccumulator",
    "SegmentationAccumulator",
]


class BinnedAUC:
    """Constant-memory ROC AUC from per-class score histograms.

    Args:
        bins: ``"float16"`` (one bin per float16 value; exact for float16 scores) or a
            number of uniform bins on [0, 1].
    """

    def __init__(self, bins: int | Literal["float16"] = "float16") -> None:
        if bins == "float16":
            n_bins = 65536
        elif isinstance(bins, int | np.integer) and not isinstance(bins, bool) and bins >= 2:
            n_bins = int(bins)
        else:
            raise ValueError(f"bins must be 'float16' or an integer >= 2, got {bins!r}")
        self.bins = bins
        self.pos = np.zeros(n_bins, dtype=np.int64)
        self.neg = np.zeros(n_bins, dtype=np.int64)

    def reset(self) -> None:
        """Forgets all scores."""
        self.pos[:] = 0
        self.neg[:] = 0

    def _keys(self, scores: NDArray) -> NDArray[np.intp]:
        if self.bins == "float16":
            return float16_keys(scores.astype(np.float16))
        n_bins = self.pos.size
        return np.clip(np.floor(scores.astype(np.float64) * n_bins), 0, n_bins - 1).astype(np.intp)

    def update(self, scores: ArrayLike, labels: ArrayLike) -> None:
        """Adds scores with their labels (any equal shapes; label foreground ``>= 0.5``)."""
        s = np.asarray(scores)
        y = binarize(labels, 0.5)
        if s.shape != y.shape:
            raise ValueError(f"scores shape {s.shape} differs from labels shape {y.shape}")
        check_finite(s, "scores")
        keys = self._keys(s.reshape(-1))
        total = np.bincount(keys, minlength=self.pos.size)
        pos = np.bincount(keys[y.reshape(-1)], minlength=self.pos.size)
        self.pos += pos
        self.neg += total - pos

    def compute(self) -> float:
        """Returns the AUC (NaN without positives or negatives)."""
        return auc_from_counts(self.pos, self.neg)


class DiceAccumulator:
    """Per-image and pooled Dice over a stream of images.

    Args:
        threshold: Binarisation threshold of the predictions (``>=``).
        empty: Policy when prediction and truth are both empty (default ``"one"``).
    """

    def __init__(self, threshold: float = 0.5, *, empty: EmptyPolicy = "one") -> None:
        empty_value(empty)
        self.threshold = threshold
        self.empty = empty
        self.reset()

    def reset(self) -> None:
        """Forgets all images."""
        self.scores: list[float] = []
        self._totals = [0, 0, 0]

    def update(self, pred: ArrayLike, truth: ArrayLike) -> float:
        """Adds one image; returns its Dice."""
        counts = overlap_counts(pred, truth, threshold=self.threshold)
        self._totals = [a + b for a, b in zip(self._totals, counts, strict=True)]
        value = dice_from_counts(*counts, empty=self.empty)
        self.scores.append(value)
        return value

    def compute(self) -> dict[str, Any]:
        """Returns ``{"n_images", "per_image", "mean", "pooled"}`` (mean skips NaN)."""
        return {
            "n_images": len(self.scores),
            "per_image": list(self.scores),
            "mean": nanmean(self.scores),
            "pooled": dice_from_counts(*self._totals, empty=self.empty),
        }


class SegmentationAccumulator:
    """Streaming equivalent of :func:`~mammo_common.metrics.segmentation.segmentation_report`.

    Keeps per-image Dice, Jaccard and exact AUC (a few floats per image), pooled overlap
    counts, and a :class:`BinnedAUC` for the pooled AUC, so memory does not grow with pixels.

    Args:
        threshold: Binarisation threshold of the predictions (``>=``).
        empty: Empty-mask policy of Dice and Jaccard (default ``"one"``).
        auc_empty: Policy for images whose truth is all 0 or all 1 (default ``"nan"``).
        auc_bins: Histogram of the pooled AUC, see :class:`BinnedAUC`.
    """

    def __init__(
        self,
        threshold: float = 0.5,
        *,
        empty: EmptyPolicy = "one",
        auc_empty: EmptyPolicy = "nan",
        auc_bins: int | Literal["float16"] = "float16",
    ) -> None:
        empty_value(empty)
        empty_value(auc_empty)
        self.threshold = threshold
        self.empty = empty
        self.auc_empty = auc_empty
        self._pooled_auc = BinnedAUC(auc_bins)
        self.reset()

    def reset(self) -> None:
        """Forgets all images."""
        self.per_image: dict[str, list[float]] = {"dice": [], "jaccard": [], "auc": []}
        self._totals = [0, 0, 0]
        self._n_auc_defined = 0
        self._pooled_auc.reset()

    def update(self, prob: ArrayLike, truth: ArrayLike) -> dict[str, float]:
        """Adds one image (any shape, prediction and truth equal); returns its scores."""
        prob = np.asarray(prob)
        truth = np.asarray(truth)
        counts = overlap_counts(prob, truth, threshold=self.threshold)
        self._totals = [a + b for a, b in zip(self._totals, counts, strict=True)]
        auc = pixel_auc(prob, truth, empty="nan")
        self._n_auc_defined += not math.isnan(auc)
        scores = {
            "dice": dice_from_counts(*counts, empty=self.empty),
            "jaccard": jaccard_from_counts(*counts, empty=self.empty),
            "auc": empty_value(self.auc_empty) if math.isnan(auc) else auc,
        }
        for key, value in scores.items():
            self.per_image[key].append(value)
        self._pooled_auc.update(prob, truth)
        return scores

    def update_batch(self, probs: ArrayLike, truths: ArrayLike) -> None:
        """Adds a batch whose first axis is the image."""
        if n_items(probs) != n_items(truths):
            raise ValueError(f"got {n_items(probs)} predictions but {n_items(truths)} truths")
        for i in range(n_items(probs)):
            self.update(probs[i], truths[i])

    def compute(self) -> dict[str, Any]:
        """Returns the same dict as ``segmentation_report`` (pooled AUC from the histogram)."""
        pooled_auc = self._pooled_auc.compute()
        return {
            "n_images": len(self.per_image["dice"]),
            "threshold": float(self.threshold),
            "n_auc_defined": int(self._n_auc_defined),
            "per_image": {k: list(v) for k, v in self.per_image.items()},
            "mean": {k: nanmean(v) for k, v in self.per_image.items()},
            "pooled": {
                "dice": dice_from_counts(*self._totals, empty=self.empty),
                "jaccard": jaccard_from_counts(*self._totals, empty=self.empty),
                "auc": empty_value(self.auc_empty) if math.isnan(pooled_auc) else pooled_auc,
            },
        }


class ClassificationAccumulator:
    """Collects ``(y_true, y_prob)`` batches and reports with ``classification_report``.

    Classification is per mass, so the scores are kept (8 bytes per sample) and the
    report is exact.

    Args:
        threshold: Decision threshold (``y_prob >= threshold`` is malignant).
        zero_division: Value of ratios with a zero denominator.
    """

    def __init__(self, threshold: float = 0.5, *, zero_division: float = 0.0) -> None:
        self.threshold = threshold
        self.zero_division = zero_division
        self.reset()

    def reset(self) -> None:
        """Forgets all samples."""
        self._true: list[NDArray[np.bool_]] = []
        self._prob: list[NDArray[np.float64]] = []

    def update(self, y_true: ArrayLike, y_prob: ArrayLike) -> None:
        """Adds a batch of labels (0/1, 1 = malignant) and scores (scalars or 1-D)."""
        t = binary_labels(np.ravel(y_true), "y_true")
        p = np.ravel(np.asarray(y_prob, dtype=np.float64))
        if t.shape != p.shape:
            raise ValueError(f"y_true has {t.size} samples but y_prob has {p.size}")
        check_finite(p, "y_prob")
        self._true.append(t)
        self._prob.append(p)

    @property
    def y_true(self) -> NDArray[np.bool_]:
        """All labels seen so far."""
        return np.concatenate(self._true) if self._true else np.zeros(0, dtype=bool)

    @property
    def y_prob(self) -> NDArray[np.float64]:
        """All scores seen so far."""
        return np.concatenate(self._prob) if self._prob else np.zeros(0)

    def compute(self) -> dict[str, Any]:
        """Returns ``classification_report`` of everything seen (ValueError when empty)."""
        return classification_report(
            self.y_true, self.y_prob, self.threshold, zero_division=self.zero_division
        )
