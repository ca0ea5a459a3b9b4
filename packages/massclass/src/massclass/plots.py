"""The ROC figure of ``massclass evaluate``: curve, pointwise bootstrap band, AUC and its CI."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mammo_common.metrics import roc_curve
from mammo_common.plots import roc_figure, save_png

__all__ = ["draw_roc", "roc_band"]


def roc_band(
    y_true: np.ndarray, y_prob: np.ndarray, *, n_resamples: int = 1000, seed: int = 0,
    confidence: float = 0.95, points: int = 101,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pointwise percentile band of the ROC curve over a stratified bootstrap of the cases.

    Each resample keeps the number of positives and negatives (as the AUC interval of
    :func:`mammo_common.metrics.bootstrap_ci` does); its curve's true positive rate is read at
    ``points`` false positive rates from 0 to 1 (the upper envelope where the curve is
    vertical), and the band is the ``(1 - confidence) / 2`` and ``(1 + confidence) / 2``
    quantiles at each.

    Returns:
        ``(fpr grid, tpr low, tpr high)``.
    """
    y_true = np.asarray(y_true).astype(int)
    y_prob = np.asarray(y_prob, dtype=np.float64)
    grid = np.linspace(0.0, 1.0, points)
    rng = np.random.default_rng(seed)
    pos, neg = np.flatnonzero(y_true == 1), np.flatnonzero(y_true == 0)
    curves = np.empty((n_resamples, points))
    for k in range(n_resamples):
        idx = np.concatenate([rng.choice(pos, pos.size), rng.choice(neg, neg.size)])
        fpr, tpr, _ = roc_curve(y_true[idx], y_prob[idx])
        # the highest tpr reached at or before each fpr of the grid
        curves[k] = np.maximum.accumulate(np.interp(grid, fpr, tpr, left=0.0, right=1.0))
    alpha = (1.0 - confidence) / 2.0
    return grid, np.quantile(curves, alpha, axis=0), np.quantile(curves, 1.0 - alpha, axis=0)


def draw_roc(
    fpr: np.ndarray,
    tpr: np.ndarray,
    path: str | Path,
    *,
    title: str = "ROC",
    auc: float | None = None,
    ci: tuple[float, float] | None = None,
    operating_point: tuple[float, float] | None = None,
    band: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
) -> Path:
    """Draw an ROC curve (chance diagonal, optional band) into a PNG file, atomically.

    Args:
        fpr: False positive rates (x).
        tpr: True positive rates (y).
        path: Output ``.png``.
        title: Title line.
        auc: AUC shown in the legend.
        ci: AUC confidence interval shown in the legend.
        operating_point: ``(fpr, tpr)`` of the chosen threshold, marked with a dot.
        band: ``(fpr grid, tpr low, tpr high)`` from :func:`roc_band`.

    Returns:
        The path written.
    """
    image = roc_figure(fpr, tpr, title=title, auc=auc, ci=ci,
                       operating_point=operating_point, band=band)
    return save_png(image, path)
