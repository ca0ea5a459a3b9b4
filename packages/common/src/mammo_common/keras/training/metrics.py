"""Keras segmentation metrics that agree with :mod:`mammo_common.metrics` (numpy).

* :class:`DiceCoefficient` and :class:`IoU`: the prediction is binarised with
  ``y_pred >= threshold`` (default 0.5) and the truth with ``y_true >= 0.5``; Dice / Jaccard is
  computed **per image** and averaged over every image seen since the last reset (the epoch),
  so the value equals ``mean(mammo_common.metrics.dice(p_i, t_i))`` over the images, with the
  same ``empty`` policy: an empty truth predicted empty scores 1 (``"one"``, as the reference
  reports), 0 (``"zero"``), or is left out of the mean (``"nan"``); ``"skip"`` leaves every
  image with an empty truth out (the mean over the images with a mass, as ``massseg evaluate``
  reports it: false detections on normal images are not part of this score).
* :class:`SoftDice`: the soft (unthresholded) Dice pooled over all pixels seen since the last
  reset, ``(2 sum(y p) + s) / (sum y + sum p + s)``: one minus the training loss, but
  accumulated over the epoch instead of averaged over batches.

Metric state is float32 (also under mixed precision); all are registered as
``mammo_common>ClassName``.
"""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

from mammo_common.keras.training.losses import align_targets

__all__ = ["DiceCoefficient", "IoU", "SoftDice"]

_PACKAGE = "mammo_common"
_EMPTY = ("one", "zero", "nan", "skip")


class _PerImageOverlap(keras.metrics.Metric):
    """Per-image mean of an overlap score of binarised masks (Dice or Jaccard)."""

    def __init__(
        self,
        threshold: float = 0.5,
        empty: str = "one",
        name: str | None = None,
        dtype: Any = None,
    ) -> None:
        super().__init__(name=name, dtype=dtype or "float32")
        if empty not in _EMPTY:
            raise ValueError(f"empty={empty!r} is not a known policy; use one of {_EMPTY}")
        self.threshold = float(threshold)
        self.empty = empty
        self.total = self.add_variable(shape=(), initializer="zeros", name="total", dtype="float32")
        self.count = self.add_variable(shape=(), initializer="zeros", name="count", dtype="float32")

    def _score(self, inter: Any, n_pred: Any, n_true: Any) -> tuple[Any, Any]:
        """Returns (score, defined) per image; ``defined`` is False when both are empty."""
        raise NotImplementedError

    def update_state(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> None:
        """Adds the per-image scores of a batch.

        Args:
            y_true: Ground-truth masks ``(b, H, W[, 1])``.
            y_pred: Probability maps of the same shape.
            sample_weight: Optional per-image weights ``(b,)`` (weighted mean).
        """
        y_true, y_pred = align_targets(y_true, y_pred)
        pred = ops.cast(y_pred >= self.threshold, "float32")
        true = ops.cast(y_true >= 0.5, "float32")
        axes = tuple(range(1, len(pred.shape)))
        inter = ops.sum(pred * true, axis=axes)
        n_pred = ops.sum(pred, axis=axes)
        n_true = ops.sum(true, axis=axes)
        score, defined = self._score(inter, n_pred, n_true)
        if self.empty == "one":
            score = ops.where(defined, score, ops.ones_like(score))
            weight = ops.ones_like(score)
        elif self.empty == "zero":
            score = ops.where(defined, score, ops.zeros_like(score))
            weight = ops.ones_like(score)
        elif self.empty == "skip":
            weight = ops.cast(n_true > 0, "float32")
            score = ops.where(defined, score, ops.zeros_like(score))
        else:
            weight = ops.cast(defined, "float32")
            score = ops.where(defined, score, ops.zeros_like(score))
        if sample_weight is not None:
            weight = weight * ops.reshape(ops.cast(sample_weight, "float32"), (-1,))
        self.total.assign_add(ops.sum(score * weight))
        self.count.assign_add(ops.sum(weight))

    def result(self) -> Any:
        return ops.divide_no_nan(self.total, self.count)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "threshold": self.threshold, "empty": self.empty}


@keras.saving.register_keras_serializable(package=_PACKAGE)
class DiceCoefficient(_PerImageOverlap):
    """Dice of the binarised prediction, per image, averaged over the epoch.

    Equals the mean of :func:`mammo_common.metrics.dice` over the images seen.

    Args:
        threshold: Binarisation threshold of the prediction (``>=``).
        empty: Policy for an empty truth predicted empty: ``"one"``, ``"zero"``, ``"nan"``;
            ``"skip"`` leaves out every image whose truth is empty
            (left out of the mean).
        name: Metric name (``"dice"``, so the logs hold ``dice`` and ``val_dice``).
        dtype: State dtype (float32).
    """

    def __init__(
        self,
        threshold: float = 0.5,
        empty: str = "one",
        name: str = "dice",
        dtype: Any = None,
    ) -> None:
        super().__init__(threshold=threshold, empty=empty, name=name, dtype=dtype)

    def _score(self, inter: Any, n_pred: Any, n_true: Any) -> tuple[Any, Any]:
        den = n_pred + n_true
        return ops.divide_no_nan(2.0 * inter, den), den > 0


@keras.saving.register_keras_serializable(package=_PACKAGE)
class IoU(_PerImageOverlap):
    """Jaccard index (IoU) of the binarised prediction, per image, averaged over the epoch.

    Equals the mean of :func:`mammo_common.metrics.jaccard` over the images seen. Not to be
    confused with ``keras.metrics.IoU`` (a pooled, multi-class confusion-matrix IoU).

    Args:
        threshold: Binarisation threshold of the prediction (``>=``).
        empty: Policy for an empty truth predicted empty: ``"one"``, ``"zero"``, ``"nan"``;
            ``"skip"`` leaves out every image whose truth is empty.
        name: Metric name (``"iou"``).
        dtype: State dtype (float32).
    """

    def __init__(
        self,
        threshold: float = 0.5,
        empty: str = "one",
        name: str = "iou",
        dtype: Any = None,
    ) -> None:
        super().__init__(threshold=threshold, empty=empty, name=name, dtype=dtype)

    def _score(self, inter: Any, n_pred: Any, n_true: Any) -> tuple[Any, Any]:
        union = n_pred + n_true - inter
        return ops.divide_no_nan(inter, union), union > 0


@keras.saving.register_keras_serializable(package=_PACKAGE)
class SoftDice(keras.metrics.Metric):
    """Soft Dice ``(2 sum(y p) + s) / (sum y + sum p + s)`` pooled over every pixel of the epoch.

    Args:
        smooth: Additive smoothing ``s`` (1, as the loss).
        name: Metric name (``"soft_dice"``).
        dtype: State dtype (float32).
    """

    def __init__(self, smooth: float = 1.0, name: str = "soft_dice", dtype: Any = None) -> None:
        super().__init__(name=name, dtype=dtype or "float32")
        self.smooth = float(smooth)
        self.intersection = self.add_variable(
            shape=(), initializer="zeros", name="intersection", dtype="float32"
        )
        self.total = self.add_variable(shape=(), initializer="zeros", name="total", dtype="float32")

    def update_state(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> None:
        """Adds a batch's sums (``sample_weight`` is not supported and must be None)."""
        if sample_weight is not None:
            raise ValueError("SoftDice is pooled over pixels and takes no sample_weight")
        y_true, y_pred = align_targets(y_true, y_pred)
        self.intersection.assign_add(ops.sum(y_true * y_pred))
        self.total.assign_add(ops.sum(y_true) + ops.sum(y_pred))

    def result(self) -> Any:
        return (2.0 * self.intersection + self.smooth) / (self.total + self.smooth)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "smooth": self.smooth}
