"""Re-estimate BatchNorm moving statistics on the data the model will predict ("precise BN").

A network trained on patches predicts whole images, whose activation statistics differ (more
background, other context): the moving means and variances collected from patch batches then
shift every layer at inference, and a segmenter that works in training mode marks the whole
breast. The remedy (Wu & Johnson, "Rethinking 'Batch' in BatchNorm", 2021) is to recompute the
population statistics with training-mode forward passes over whole images, with dropout off:
:func:`recalibrate_batchnorm` does this exactly (a running average over the batches, not an
exponential one), and :class:`RecalibrateBatchNorm` does it before every validation, so that
validation metrics, the best-weights checkpoint and early stopping see the model as it will
predict.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import keras
import numpy as np

__all__ = ["RecalibrateBatchNorm", "recalibrate_batchnorm"]


def _layers(model: keras.Model, kind: type) -> list[Any]:
    return [layer for layer in model._flatten_layers(include_self=False) if isinstance(layer, kind)]


def recalibrate_batchnorm(model: keras.Model, batches: Iterable[np.ndarray]) -> int:
    """Set every trainable BatchNorm's moving statistics to the mean of its batch statistics.

    Args:
        model: The network (changed in place: only the moving means and variances).
        batches: Input batches as the model will see them at prediction time.

    Returns:
        The number of batches used (0 leaves the model untouched).
    """
    bns = [b for b in _layers(model, keras.layers.BatchNormalization) if b.trainable]
    if not bns:
        return 0
    drops = _layers(model, keras.layers.Dropout)
    saved_momentum = [b.momentum for b in bns]
    saved_rates = [d.rate for d in drops]
    saved_stats = [(b.moving_mean.numpy(), b.moving_variance.numpy()) for b in bns]
    n = 0
    try:
        for d in drops:
            d.rate = 0.0
        for x in batches:
            for b in bns:  # momentum k / (k + 1): the running mean of the k + 1 batches
                b.momentum = n / (n + 1.0)
            model(x, training=True)
            n += 1
    finally:
        for b, m in zip(bns, saved_momentum, strict=True):
            b.momentum = m
        for d, r in zip(drops, saved_rates, strict=True):
            d.rate = r
        if n == 0:
            for b, (mean, var) in zip(bns, saved_stats, strict=True):
                b.moving_mean.assign(mean)
                b.moving_variance.assign(var)
    return n


class RecalibrateBatchNorm(keras.callbacks.Callback):
    """Recalibrates the BatchNorm statistics before every evaluation (validation included).

    Args:
        batches: Called each time; returns the input batches to average over.
    """

    def __init__(self, batches: Callable[[], Iterable[np.ndarray]]) -> None:
        super().__init__()
        self.batches = batches

    def on_test_begin(self, logs: dict[str, Any] | None = None) -> None:
        recalibrate_batchnorm(self.model, self.batches())
