"""Bootstrap confidence intervals for any metric, drawn by :func:`scipy.stats.bootstrap`.

:func:`bootstrap_ci` resamples *rows* (shared by all arrays along the first axis) by handing
scipy arrays of row indices and a statistic that evaluates the metric on the rows drawn:

* stratified (the default; the first array holds the labels): one sample of row indices per
  distinct label, resampled independently (``paired=False``), so every resample keeps the
  class counts, e.g. positives and negatives for an ROC AUC;
* unstratified: one sample of row indices, so the arrays are resampled together (what
  ``paired=True`` over the arrays does).

The generator is ``numpy.random.default_rng(seed)``; the interval is scipy's
(``'percentile'`` by default, ``'basic'`` or ``'BCa'`` on request). A resample on which the
metric is undefined (NaN/inf, or ``ValueError`` / ``ZeroDivisionError`` raised, e.g. one
class only in an unstratified resample) is *skipped*: it is counted in ``n_skipped`` and the
interval is computed by scipy from the ``n_valid`` defined values alone (its
``bootstrap_result`` argument, with no new resample), rather than becoming NaN. A stratum
with a single row is kept as it is in every resample (scipy needs two observations per
sample).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import stats

__all__ = ["BootstrapMethod", "BootstrapResult", "bootstrap_ci"]

BootstrapMethod = Literal["percentile", "basic", "BCa"]
_METHODS: tuple[str, ...] = ("percentile", "basic", "BCa")


@dataclass(frozen=True)
class BootstrapResult:
    """Outcome of :func:`bootstrap_ci`.

    Attributes:
        estimate: The metric on the full (not resampled) data.
        low: Lower bound (NaN when no resample was valid).
        high: Upper bound (NaN when no resample was valid).
        confidence: Nominal coverage, e.g. 0.95.
        n_resamples: Resamples drawn.
        n_valid: Resamples whose metric was defined (finite) and used for the interval.
        n_skipped: Resamples skipped (metric NaN/inf or raised ``ValueError`` /
            ``ZeroDivisionError``, e.g. one class only).
        seed: Seed of the generator.
        stratified: Whether resampling kept the class counts of the first array.
        samples: The valid resampled values, in draw order.
        method: The interval: ``"percentile"``, ``"basic"`` or ``"BCa"``.
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
    method: str = "percentile"

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
            "method": self.method,
        }


@dataclass(frozen=True)
class _Distribution:
    """What ``scipy.stats.bootstrap(bootstrap_result=...)`` reads from a previous result."""

    bootstrap_distribution: NDArray[np.float64]


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
    method: BootstrapMethod = "percentile",
) -> BootstrapResult:
    """Bootstrap confidence interval of ``metric_fn(*arrays)`` (:func:`scipy.stats.bootstrap`).

    Samples (rows along the first axis, shared by all arrays) are drawn with replacement.
    With ``stratified=True`` each resample keeps the count of every distinct value of the
    first array (pass ``y_true`` first), so each resample holds both classes whenever the
    data do. Resamples where the metric is undefined (returns NaN/inf or raises
    ``ValueError``/``ZeroDivisionError``) are skipped and counted; the interval comes from
    the others. The result depends only on the data, ``seed`` and the installed scipy.

    Args:
        metric_fn: Function of the arrays returning a float, e.g. ``roc_auc``.
        *arrays: One or more arrays with the same length (e.g. ``y_true, y_prob``, or one
            array of per-image Dice scores).
        n_resamples: Number of bootstrap resamples.
        confidence: Two-sided coverage in (0, 1).
        seed: Seed of ``numpy.random.default_rng``, the generator scipy draws with.
        stratified: Resample within the classes of the first array.
        method: scipy's interval: ``"percentile"`` (default), ``"basic"`` or ``"BCa"``
            (bias-corrected and accelerated; adds one jackknife pass, ``n`` metric calls,
            and is NaN when the jackknife meets an undefined metric).

    Returns:
        A :class:`BootstrapResult`.

    Raises:
        ValueError: On no arrays, unequal or zero lengths, or bad ``confidence`` /
            ``n_resamples`` / ``method``.
    """
    if not arrays:
        raise ValueError("bootstrap_ci needs at least one array")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be >= 1, got {n_resamples}")
    if method not in _METHODS:
        raise ValueError(f"method must be one of {', '.join(_METHODS)}, got {method!r}")
    data = [np.asarray(a) for a in arrays]
    n = len(data[0]) if data[0].ndim else 0
    if n == 0:
        raise ValueError("bootstrap_ci needs at least one sample")
    lengths = [len(a) if a.ndim else 0 for a in data]
    if any(length != n for length in lengths):
        raise ValueError(f"all arrays must have the same length, got {lengths}")

    estimate = _call(metric_fn, data, np.arange(n))
    strata = _strata_indices(data[0]) if stratified else [np.arange(n)]
    drawn = [k for k, s in enumerate(strata) if s.size >= 2]

    def statistic(*parts: NDArray) -> float:
        rows = list(strata)
        for k, part in zip(drawn, parts, strict=True):
            rows[k] = part
        return _call(metric_fn, data, np.concatenate(rows).astype(np.intp, copy=False))

    def result(values: NDArray[np.float64], low: float, high: float) -> BootstrapResult:
        return BootstrapResult(
            estimate=estimate,
            low=float(low),
            high=float(high),
            confidence=float(confidence),
            n_resamples=int(n_resamples),
            n_valid=int(values.size),
            n_skipped=int(n_resamples - values.size),
            seed=int(seed),
            stratified=bool(stratified),
            samples=values,
            method=method,
        )

    if not drawn:  # every stratum has one row: every resample is the data itself
        value = statistic()
        if not math.isfinite(value):
            return result(np.zeros(0), math.nan, math.nan)
        return result(np.full(n_resamples, value), value, value)

    samples = tuple(strata[k] for k in drawn)
    options: dict[str, Any] = {
        "vectorized": False,
        "paired": False,
        "confidence_level": confidence,
    }
    with warnings.catch_warnings():
        # scipy warns (DegenerateDataWarning) when its interval is NaN; we skip or report it
        warnings.simplefilter("ignore", stats.DegenerateDataWarning)
        boot = stats.bootstrap(
            samples,
            statistic,
            n_resamples=n_resamples,
            method="percentile",
            rng=np.random.default_rng(seed),
            **options,
        )
        values = np.asarray(boot.bootstrap_distribution, dtype=np.float64).reshape(-1)
        valid = values[np.isfinite(values)]
        if valid.size == 0:
            return result(valid, math.nan, math.nan)
        if method == "percentile" and valid.size == values.size:
            interval = boot.confidence_interval
        elif method == "BCa" and np.ptp(valid) == 0:
            interval = (valid[0], valid[0])  # degenerate: BCa is undefined, the range is not
        else:  # scipy's interval over the defined values only, no new resample
            interval = stats.bootstrap(
                samples,
                statistic,
                n_resamples=0,
                bootstrap_result=_Distribution(valid),
                method=method,
                rng=np.random.default_rng(seed),
                **options,
            ).confidence_interval
    return result(valid, interval[0], interval[1])
