"""Segmentation losses of the reference recipe and its offered options (Keras 3, backend-portable).

Every loss is *pooled over the batch*, exactly as the reference's soft Dice: the sums run over
all pixels of all images of the batch (not per image then averaged), so ``call`` returns a
scalar and ``sample_weight`` is not meaningful (it would only rescale that scalar).

All computations run in float32 (``y_pred`` is cast), so the losses work under a
``mixed_bfloat16`` / ``mixed_float16`` policy whatever dtype the last layer emits.

* ``dice``: ``1 - (2 sum(y p) + s) / (sum y + sum p + s)`` (the reference; ``s`` = ``smooth``).
* ``generalized_dice``: Sudre et al. 2017; classes background and foreground (one sigmoid
  channel) or the channels (softmax); weights ``1 / (sum_n r_ln)^2`` normalised to sum 1; a
  class absent from the batch gets the largest finite weight (as MONAI).
* ``tversky``: ``1 - TI`` with ``TI = (TP + s) / (TP + alpha FP + beta FN + s)``.
* ``focal_tversky``: ``(1 - TI) ** gamma`` (Abraham & Khan 2019: ``gamma = 0.75``).
* ``bce_dice``: ``bce_weight * mean BCE + dice_weight * dice``.

Use :func:`get_loss` to build one by name (for configs), or the classes directly. All are
registered as ``mammo_common>ClassName`` so compiled models reload with ``safe_mode=True``.
"""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

__all__ = [
    "LOSSES",
    "BCEDiceLoss",
    "DiceLoss",
    "FocalTverskyLoss",
    "GeneralizedDiceLoss",
    "TverskyLoss",
    "get_loss",
]

_PACKAGE = "mammo_common"


def align_targets(y_true: Any, y_pred: Any) -> tuple[Any, Any]:
    """Casts both to float32 and gives ``y_true`` the shape of ``y_pred`` (losses and metrics)."""
    y_pred = ops.cast(y_pred, "float32")
    y_true = ops.cast(y_true, "float32")
    if len(y_true.shape) == len(y_pred.shape) - 1:
        y_true = ops.expand_dims(y_true, -1)
    elif len(y_true.shape) == len(y_pred.shape) + 1 and y_true.shape[-1] == 1:
        y_true = ops.squeeze(y_true, -1)
    return y_true, y_pred


def _tversky_index(y_true: Any, y_pred: Any, alpha: float, beta: float, smooth: float) -> Any:
    tp = ops.sum(y_true * y_pred)
    fp = ops.sum((1.0 - y_true) * y_pred)
    fn = ops.sum(y_true * (1.0 - y_pred))
    return (tp + smooth) / (tp + alpha * fp + beta * fn + smooth)


def _soft_dice_loss(y_true: Any, y_pred: Any, smooth: float) -> Any:
    inter = ops.sum(y_true * y_pred)
    return 1.0 - (2.0 * inter + smooth) / (ops.sum(y_true) + ops.sum(y_pred) + smooth)


class _PooledLoss(keras.losses.Loss):
    """Common constructor and config of the pooled losses."""

    def __init__(
        self,
        name: str,
        reduction: str | None = "sum_over_batch_size",
        dtype: Any = None,
    ) -> None:
        super().__init__(name=name, reduction=reduction, dtype=dtype or "float32")

    def _params(self) -> dict[str, Any]:  # pragma: no cover - overridden
        return {}

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(self._params())
        return config


@keras.saving.register_keras_serializable(package=_PACKAGE)
class DiceLoss(_PooledLoss):
    """Soft Dice loss pooled over the batch (the reference's loss).

    ``1 - (2 sum(y p) + smooth) / (sum y + sum p + smooth)``.

    Args:
        smooth: Additive smoothing ``s`` (reference: 1).
        name: Loss name.
        reduction: Keras reduction (the value is already a scalar).
        dtype: Computation dtype (float32 by default, also under mixed precision).
    """

    def __init__(
        self,
        smooth: float = 1.0,
        name: str = "dice_loss",
        reduction: str | None = "sum_over_batch_size",
        dtype: Any = None,
    ) -> None:
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.smooth = float(smooth)

    def call(self, y_true: Any, y_pred: Any) -> Any:
        y_true, y_pred = align_targets(y_true, y_pred)
        return _soft_dice_loss(y_true, y_pred, self.smooth)

    def _params(self) -> dict[str, Any]:
        return {"smooth": self.smooth}


@keras.saving.register_keras_serializable(package=_PACKAGE)
class GeneralizedDiceLoss(_PooledLoss):
    """Generalised Dice loss (Sudre et al. 2017), pooled over the batch.

    ``1 - (2 sum_l w_l sum_n r_ln p_ln + s) / (sum_l w_l sum_n (r_ln + p_ln) + s)`` with
    ``w_l = 1 / (sum_n r_ln)^2``, normalised to sum to 1. With one output channel (sigmoid)
    the classes are background ``(1 - y, 1 - p)`` and foreground ``(y, p)``; with several
    channels (softmax) each channel is a class. A class absent from the batch (infinite
    weight) gets the largest finite weight instead, as MONAI does.

    Args:
        smooth: Additive smoothing ``s`` of numerator and denominator.
        name: Loss name.
        reduction: Keras reduction (the value is already a scalar).
        dtype: Computation dtype.
    """

    def __init__(
        self,
        smooth: float = 1e-6,
        name: str = "generalized_dice_loss",
        reduction: str | None = "sum_over_batch_size",
        dtype: Any = None,
    ) -> None:
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.smooth = float(smooth)

    def call(self, y_true: Any, y_pred: Any) -> Any:
        y_true, y_pred = align_targets(y_true, y_pred)
        if y_pred.shape[-1] == 1:
            y_true = ops.concatenate([1.0 - y_true, y_true], axis=-1)
            y_pred = ops.concatenate([1.0 - y_pred, y_pred], axis=-1)
        axes = tuple(range(len(y_pred.shape) - 1))
        ref = ops.sum(y_true, axis=axes)
        inter = ops.sum(y_true * y_pred, axis=axes)
        total = ref + ops.sum(y_pred, axis=axes)
        weights = 1.0 / ops.square(ref)
        finite = ops.isfinite(weights)
        largest = ops.max(ops.where(finite, weights, ops.zeros_like(weights)))
        weights = ops.where(finite, weights, largest)
        weights = weights / ops.sum(weights)
        num = 2.0 * ops.sum(weights * inter) + self.smooth
        den = ops.sum(weights * total) + self.smooth
        return 1.0 - num / den

    def _params(self) -> dict[str, Any]:
        return {"smooth": self.smooth}


@keras.saving.register_keras_serializable(package=_PACKAGE)
class TverskyLoss(_PooledLoss):
    """Tversky loss ``1 - (TP + s) / (TP + alpha FP + beta FN + s)``, pooled over the batch.

    Args:
        alpha: Weight of false positives.
        beta: Weight of false negatives (``alpha = beta = 0.5`` is the soft Dice).
        smooth: Additive smoothing ``s``.
        name: Loss name.
        reduction: Keras reduction (the value is already a scalar).
        dtype: Computation dtype.
    """

    def __init__(
        self,
        alpha: float = 0.3,
        beta: float = 0.7,
        smooth: float = 1.0,
        name: str = "tversky_loss",
        reduction: str | None = "sum_over_batch_size",
        dtype: Any = None,
    ) -> None:
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.alpha = float(alpha)
        self.beta = float(beta)
        self.smooth = float(smooth)

    def call(self, y_true: Any, y_pred: Any) -> Any:
        y_true, y_pred = align_targets(y_true, y_pred)
        return 1.0 - _tversky_index(y_true, y_pred, self.alpha, self.beta, self.smooth)

    def _params(self) -> dict[str, Any]:
        return {"alpha": self.alpha, "beta": self.beta, "smooth": self.smooth}


@keras.saving.register_keras_serializable(package=_PACKAGE)
class FocalTverskyLoss(TverskyLoss):
    """Focal Tversky loss ``(1 - TI) ** gamma``, pooled over the batch.

    Args:
        alpha: Weight of false positives.
        beta: Weight of false negatives.
        gamma: Focal exponent applied to ``1 - TI`` (0.75 as Abraham & Khan's ``1/γ``, γ=4/3).
        smooth: Additive smoothing.
        name: Loss name.
        reduction: Keras reduction (the value is already a scalar).
        dtype: Computation dtype.
    """

    def __init__(
        self,
        alpha: float = 0.3,
        beta: float = 0.7,
        gamma: float = 0.75,
        smooth: float = 1.0,
        name: str = "focal_tversky_loss",
        reduction: str | None = "sum_over_batch_size",
        dtype: Any = None,
    ) -> None:
        super().__init__(
            alpha=alpha, beta=beta, smooth=smooth, name=name, reduction=reduction, dtype=dtype
        )
        self.gamma = float(gamma)

    def call(self, y_true: Any, y_pred: Any) -> Any:
        y_true, y_pred = align_targets(y_true, y_pred)
        ti = _tversky_index(y_true, y_pred, self.alpha, self.beta, self.smooth)
        return ops.power(ops.maximum(1.0 - ti, 0.0), self.gamma)

    def _params(self) -> dict[str, Any]:
        return {**super()._params(), "gamma": self.gamma}


@keras.saving.register_keras_serializable(package=_PACKAGE)
class BCEDiceLoss(_PooledLoss):
    """Binary cross-entropy (mean over pixels) plus soft Dice, both pooled over the batch.

    ``bce_weight * mean(BCE(y, p)) + dice_weight * dice_loss(y, p)``; the BCE clips ``p`` to
    ``[eps, 1 - eps]`` with ``eps = keras.config.epsilon()``.

    Args:
        bce_weight: Weight of the cross-entropy term.
        dice_weight: Weight of the Dice term.
        smooth: Smoothing of the Dice term.
        name: Loss name.
        reduction: Keras reduction (the value is already a scalar).
        dtype: Computation dtype.
    """

    def __init__(
        self,
        bce_weight: float = 1.0,
        dice_weight: float = 1.0,
        smooth: float = 1.0,
        name: str = "bce_dice_loss",
        reduction: str | None = "sum_over_batch_size",
        dtype: Any = None,
    ) -> None:
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.bce_weight = float(bce_weight)
        self.dice_weight = float(dice_weight)
        self.smooth = float(smooth)

    def call(self, y_true: Any, y_pred: Any) -> Any:
        y_true, y_pred = align_targets(y_true, y_pred)
        bce = ops.mean(ops.binary_crossentropy(y_true, y_pred, from_logits=False))
        dice = _soft_dice_loss(y_true, y_pred, self.smooth)
        return self.bce_weight * bce + self.dice_weight * dice

    def _params(self) -> dict[str, Any]:
        return {
            "bce_weight": self.bce_weight,
            "dice_weight": self.dice_weight,
            "smooth": self.smooth,
        }


#: Loss names accepted by :func:`get_loss` (configs, CLIs) and their classes.
LOSSES: dict[str, type[keras.losses.Loss]] = {
    "dice": DiceLoss,
    "generalized_dice": GeneralizedDiceLoss,
    "tversky": TverskyLoss,
    "focal_tversky": FocalTverskyLoss,
    "bce_dice": BCEDiceLoss,
}


def get_loss(name: str, **kwargs: Any) -> keras.losses.Loss:
    """Builds a loss by name.

    Args:
        name: One of ``dice``, ``generalized_dice``, ``tversky``, ``focal_tversky``,
            ``bce_dice`` (case-insensitive; ``-`` is read as ``_``).
        **kwargs: Constructor arguments of the loss (e.g. ``smooth=1.0``, ``alpha=0.3``).

    Returns:
        The loss instance.

    Raises:
        ValueError: For an unknown name (the message lists the known ones) or arguments the
            loss does not take.
    """
    key = str(name).strip().lower().replace("-", "_")
    if key not in LOSSES:
        raise ValueError(f"unknown loss {name!r}; use one of: {', '.join(LOSSES)}")
    try:
        return LOSSES[key](**kwargs)
    except TypeError as exc:
        raise ValueError(f"loss {key!r} does not accept these arguments: {exc}") from None
