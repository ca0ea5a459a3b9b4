"""Percentile bootstrap confidence intervals for any metric."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = ["BootstrapResult", "bootstrap_ci"]


@dataclass(frozen=True)
class BootstrapResult:
    """Outcome of :func:`bootstrap_ci`.

    Attributes:
        estimate: The metric on the full (not resampled) data.
        low: Lower percentile bound (NaN when no resample was valid).
        high: Upper percentile bound (NaN when no resample was valid).
        confidence: Nominal coverage, e.g. 0.95.
        n_resamples: Resamples drawn.
        n_valid: Resamples whose metric was defined (finite) and used for the interval.
        n_skipped: Resamples skipped (metric NaN/inf or raised ``ValueError`` /
            ``ZeroDivisionError``, e.g. one class only).
        seed: Seed of the generator.
        stratified: Whether resampling kept the class counts of the first array.
        samples: The valid resampled values, in draw order.
    """

    estimate: float
    low: float
    high: float
    confidence: float
    n_resamples: int
    n_valid: int
    n_skipped: int
    seed: int
    stratified: bool
    samples: NDArray[np.float64] = field(repr=False, compare=False)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready summary (without the samples)."""
        return {
            "estimate": self.estimate,
            "low": self.low,
            "high": self.high,
            "confidence": self.confidence,
            "n_resamples": self.n_resamples,
            "n_valid": self.n_valid,
            "n_skipped": self.n_skipped,
            "seed": self.seed,
            "stratified": self.stratified,
            "method": "percentile",
        }


def _strata_indices(y: NDArray) -> list[NDArray[np.intp]]:
    if y.ndim != 1:
        raise ValueError(
            f"stratified bootstrap stratifies by the first array (labels), which must be 1-D, "
            f"got shape {y.shape}; pass stratified=False"
        )
    if y.dtype.kind == "f" and not np.array_equal(y, np.round(y)):
        raise ValueError(
            "stratified bootstrap stratifies by the values of the first array, which looks "
            "continuous; pass the labels first (metric_fn(y_true, y_prob)) or stratified=False"
        )
    _, inverse = np.unique(y, return_inverse=True)
    inverse = inverse.reshape(-1)
    order = np.argsort(inverse, kind="stable")
    bounds = np.cumsum(np.bincount(inverse))[:-1]
    return np.split(order, bounds)


def _call(metric_fn: Callable[..., float], arrays: list[NDArray], idx: NDArray) -> float:
    try:
        value = float(metric_fn(*(a[idx] for a in arrays)))
    except (ValueError, ZeroDivisionError):
        return math.nan
    return value


def bootstrap_ci(
    metric_fn: Callable[..., float],
    *arrays: ArrayLike,
    n_resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
    stratified: bool = True,
) -> BootstrapResult:
    """Percentile bootstrap confidence interval of ``metric_fn(*arrays)``.

    Samples (rows along the first axis, shared by all arrays) are drawn with replacement.
    With ``stratified=True`` each resample keeps the count of every distinct value of the
    first array (pass ``y_true`` first), so each resample holds both classes whenever the
    data do. Resamples where the metric is undefined (returns NaN/inf or raises
    ``ValueError``/``ZeroDivisionError``) are skipped and counted. The result depends only
    on the data and ``seed``.

    Args:
        metric_fn: Function of the arrays returning a float, e.g. ``roc_auc``.
        *arrays: One or more arrays with the same length (e.g. ``y_true, y_prob``, or one
            array of per-image Dice scores).
        n_resamples: Number of bootstrap resamples.
        confidence: Two-sided coverage in (0, 1).
        seed: Seed of ``numpy.random.default_rng``.
        stratified: Resample within the classes of the first array.

    Returns:
        A :class:`BootstrapResult`.

    Raises:
        ValueError: On no arrays, unequal or zero lengths, or bad ``confidence`` /
            ``n_resamples``.
    """
    if not arrays:
        raise ValueError("bootstrap_ci needs at least one array")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be >= 1, got {n_resamples}")
    data = [np.asarray(a) for a in arrays]
    n = len(data[0]) if data[0].ndim else 0
    if n == 0:
        raise ValueError("bootstrap_ci needs at least one sample")
    lengths = [len(a) if a.ndim else 0 for a in data]
    if any(length != n for length in lengths):
        raise ValueError(f"all arrays must have the same length, got {lengths}")

    estimate = _call(metric_fn, data, np.arange(n))
    rng = np.random.default_rng(seed)
    strata = _strata_indices(data[0]) if stratified else [np.arange(n)]
    values = np.empty(n_resamples, dtype=np.float64)
    for r in range(n_resamples):
        idx = np.concatenate([s[rng.integers(0, s.size, s.size)] for s in strata])
        values[r] = _call(metric_fn, data, idx)
    valid = values[np.isfinite(values)]
    alpha = (1.0 - confidence) / 2.0
    if valid.size:
        low, high = (float(v) for v in np.percentile(valid, [100 * alpha, 100 * (1 - alpha)]))
    else:
        low = high = math.nan
    return BootstrapResult(
        estimate=estimate,
        low=low,
        high=high,
        confidence=float(confidence),
        n_resamples=int(n_resamples),
        n_valid=int(valid.size),
        n_skipped=int(n_resamples - valid.size),
        seed=int(seed),
        stratified=bool(stratified),
        samples=valid,
    )
