"""Binary classification metrics (positive class = malignant), pure numpy.

Conventions:

* ``y_true`` holds 0/1 (or boolean) labels, 1 = malignant. ``y_pred`` holds 0/1 labels;
  ``y_prob`` holds scores, turned into labels with ``y_prob >= threshold``.
* Zero division: every ratio whose denominator is 0 returns ``zero_division`` (default
  0.0, as scikit-learn's ``zero_division=0``; pass ``math.nan`` to mark it undefined).
  This covers precision (no predicted positive), sensitivity (no true positive),
  specificity (no true negative), F1 (``2tp + fp + fn == 0``), MCC (a marginal is empty;
  scikit-learn also returns 0.0) and Cohen's kappa (expected agreement 1, i.e. truth and
  prediction are the same single class; scikit-learn returns NaN there by default).
* ROC AUC is NaN when ``y_true`` holds one class only (scikit-learn raises instead).
* :func:`roc_curve` keeps every distinct score as a threshold (scikit-learn's
  ``drop_intermediate=False``), the first threshold being ``inf``.
* Empty inputs raise ``ValueError``.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import numpy as np
from numpy.typing import ArrayLike, NDArray

from mammo_common.metrics._common import (
    as_1d,
    auc_from_counts,
    binary_labels,
    check_finite,
    safe_div,
)

__all__ = [
    "ConfusionMatrix",
    "accuracy",
    "classification_report",
    "cohen_kappa",
    "confusion_matrix",
    "f1",
    "mcc",
    "precision",
    "recall",
    "roc_auc",
    "roc_curve",
    "sensitivity",
    "specificity",
    "youden_threshold",
]


class ConfusionMatrix(NamedTuple):
    """Binary confusion matrix counts (unpacks as ``tn, fp, fn, tp`` like scikit-learn)."""

    tn: int
    fp: int
    fn: int
    tp: int

    def as_array(self) -> NDArray[np.int64]:
        """Returns scikit-learn's layout ``[[tn, fp], [fn, tp]]``."""
        return np.array([[self.tn, self.fp], [self.fn, self.tp]], dtype=np.int64)

    @property
    def n(self) -> int:
        """Total number of samples."""
        return self.tn + self.fp + self.fn + self.tp


def _labels_pair(y_true: ArrayLike, y_pred: ArrayLike) -> tuple[NDArray, NDArray]:
    t = binary_labels(y_true, "y_true")
    p = binary_labels(y_pred, "y_pred")
    if t.shape != p.shape:
        raise ValueError(f"y_true has {t.size} samples but y_pred has {p.size}")
    if t.size == 0:
        raise ValueError("no samples: y_true and y_pred are empty")
    return t, p


def _scores_pair(y_true: ArrayLike, y_score: ArrayLike) -> tuple[NDArray, NDArray]:
    t = binary_labels(y_true, "y_true")
    s = as_1d(y_score, "y_prob")
    if t.shape != s.shape:
        raise ValueError(f"y_true has {t.size} samples but y_prob has {s.size}")
    if t.size == 0:
        raise ValueError("no samples: y_true and y_prob are empty")
    check_finite(s, "y_prob")
    return t, s


def confusion_matrix(y_true: ArrayLike, y_pred: ArrayLike) -> ConfusionMatrix:
    """Counts true negatives, false positives, false negatives and true positives.

    Args:
        y_true: 0/1 labels, 1 = malignant.
        y_pred: 0/1 predicted labels.

    Returns:
        ``ConfusionMatrix(tn, fp, fn, tp)``.
    """
    t, p = _labels_pair(y_true, y_pred)
    tp = int(np.count_nonzero(t & p))
    fp = int(np.count_nonzero(~t & p))
    fn = int(np.count_nonzero(t & ~p))
    return ConfusionMatrix(tn=t.size - tp - fp - fn, fp=fp, fn=fn, tp=tp)


def accuracy(y_true: ArrayLike, y_pred: ArrayLike) -> float:
    """Fraction of correct labels."""
    cm = confusion_matrix(y_true, y_pred)
    return (cm.tp + cm.tn) / cm.n


def sensitivity(y_true: ArrayLike, y_pred: ArrayLike, *, zero_division: float = 0.0) -> float:
    """Sensitivity (recall, true positive rate) ``tp / (tp + fn)``."""
    cm = confusion_matrix(y_true, y_pred)
    return safe_div(cm.tp, cm.tp + cm.fn, zero_division)


recall = sensitivity
"""Alias of :func:`sensitivity`."""


def specificity(y_true: ArrayLike, y_pred: ArrayLike, *, zero_division: float = 0.0) -> float:
    """Specificity (true negative rate) ``tn / (tn + fp)``."""
    cm = confusion_matrix(y_true, y_pred)
    return safe_div(cm.tn, cm.tn + cm.fp, zero_division)


def precision(y_true: ArrayLike, y_pred: ArrayLike, *, zero_division: float = 0.0) -> float:
    """Precision (positive predictive value) ``tp / (tp + fp)``."""
    cm = confusion_matrix(y_true, y_pred)
    return safe_div(cm.tp, cm.tp + cm.fp, zero_division)


def _f1(cm: ConfusionMatrix, zero_division: float) -> float:
    return safe_div(2 * cm.tp, 2 * cm.tp + cm.fp + cm.fn, zero_division)


def _mcc(cm: ConfusionMatrix, zero_division: float) -> float:
    tp, tn, fp, fn = (float(v) for v in (cm.tp, cm.tn, cm.fp, cm.fn))
    den = (tp + fp) * (tp + fn) * (tn + fp) * (tn + fn)
    if den == 0:
        return float(zero_division)
    return (tp * tn - fp * fn) / math.sqrt(den)


def _kappa(cm: ConfusionMatrix, zero_division: float) -> float:
    # kappa = (p_o - p_e) / (1 - p_e), multiplied through by n**2 to stay in integers.
    chance = (cm.tp + cm.fp) * (cm.tp + cm.fn) + (cm.tn + cm.fn) * (cm.tn + cm.fp)
    return safe_div(cm.n * (cm.tp + cm.tn) - chance, cm.n**2 - chance, zero_division)


def f1(y_true: ArrayLike, y_pred: ArrayLike, *, zero_division: float = 0.0) -> float:
    """F1 score ``2tp / (2tp + fp + fn)`` (scikit-learn >= 1.3 definition)."""
    return _f1(confusion_matrix(y_true, y_pred), zero_division)


def mcc(y_true: ArrayLike, y_pred: ArrayLike, *, zero_division: float = 0.0) -> float:
    """Matthews correlation coefficient; ``zero_division`` when a marginal is empty."""
    return _mcc(confusion_matrix(y_true, y_pred), zero_division)


def cohen_kappa(y_true: ArrayLike, y_pred: ArrayLike, *, zero_division: float = 0.0) -> float:
    """Cohen's kappa; ``zero_division`` when the expected agreement is 1."""
    return _kappa(confusion_matrix(y_true, y_pred), zero_division)


def roc_auc(y_true: ArrayLike, y_prob: ArrayLike) -> float:
    """Exact, tie-aware ROC AUC (as ``sklearn.metrics.roc_auc_score``).

    Args:
        y_true: 0/1 labels, 1 = malignant.
        y_prob: Scores (higher = more malignant).

    Returns:
        AUC in [0, 1]; NaN when ``y_true`` holds a single class.
    """
    t, s = _scores_pair(y_true, y_prob)
    uniq, inv = np.unique(s, return_inverse=True)
    inv = inv.reshape(-1)
    total = np.bincount(inv, minlength=uniq.size)
    pos = np.bincount(inv[t], minlength=uniq.size)
    return auc_from_counts(pos, total - pos)


def _roc_counts(
    y_true: ArrayLike, y_prob: ArrayLike
) -> tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.float64]]:
    """Cumulative true/false positive counts at ``inf`` and each distinct score, descending."""
    t, s = _scores_pair(y_true, y_prob)
    uniq, inv = np.unique(s, return_inverse=True)
    inv = inv.reshape(-1)
    total = np.bincount(inv, minlength=uniq.size)[::-1]
    pos = np.bincount(inv[t], minlength=uniq.size)[::-1]
    tps = np.concatenate([[0], np.cumsum(pos)]).astype(np.int64)
    fps = np.concatenate([[0], np.cumsum(total - pos)]).astype(np.int64)
    thresholds = np.concatenate([[np.inf], uniq[::-1].astype(np.float64)])
    return tps, fps, thresholds


def roc_curve(
    y_true: ArrayLike, y_prob: ArrayLike
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
    """ROC curve with one point per distinct score.

    Same output as ``sklearn.metrics.roc_curve(..., drop_intermediate=False)``: thresholds
    are ``inf`` followed by the distinct scores in decreasing order; a sample is predicted
    positive when ``score >= threshold``. With a single class in ``y_true``, the undefined
    rate (``tpr`` without positives, ``fpr`` without negatives) is NaN.

    Args:
        y_true: 0/1 labels, 1 = malignant.
        y_prob: Scores.

    Returns:
        ``(fpr, tpr, thresholds)``, each of length ``n_distinct_scores + 1``.
    """
    tps, fps, thresholds = _roc_counts(y_true, y_prob)
    n_pos, n_neg = int(tps[-1]), int(fps[-1])
    tpr = tps / n_pos if n_pos > 0 else np.full(tps.shape, np.nan)
    fpr = fps / n_neg if n_neg > 0 else np.full(fps.shape, np.nan)
    return fpr, tpr, thresholds


def youden_threshold(y_true: ArrayLike, y_prob: ArrayLike) -> float:
    """Threshold maximising Youden's J = sensitivity + specificity - 1.

    Candidates are the distinct scores (``inf`` excluded). J is compared exactly (in
    integer counts), and on ties the highest threshold wins. Classify with
    ``y_prob >= threshold``.

    Raises:
        ValueError: If ``y_true`` holds a single class (J is undefined).
    """
    tps, fps, thresholds = _roc_counts(y_true, y_prob)
    n_pos, n_neg = int(tps[-1]), int(fps[-1])
    if n_pos == 0 or n_neg == 0:
        raise ValueError("Youden threshold needs both classes in y_true (benign and malignant)")
    j_scaled = tps[1:] * n_neg - fps[1:] * n_pos  # J * n_pos * n_neg
    return float(thresholds[1:][int(np.argmax(j_scaled))])


def classification_report(
    y_true: ArrayLike,
    y_prob: ArrayLike,
    threshold: float = 0.5,
    *,
    zero_division: float = 0.0,
) -> dict[str, Any]:
    """All classification metrics of the reference at one threshold.

    Args:
        y_true: 0/1 labels, 1 = malignant.
        y_prob: Malignancy scores; predicted malignant when ``y_prob >= threshold``.
        threshold: Decision threshold.
        zero_division: Value of ratios with a zero denominator.

    Returns:
        JSON-ready dict with keys ``n, n_positive, n_negative, threshold, tn, fp, fn, tp,
        confusion_matrix`` (``[[tn, fp], [fn, tp]]``), ``accuracy, sensitivity, recall,
        specificity, precision, f1, mcc, cohen_kappa, roc_auc`` (NaN with one class) and
        ``youden_threshold`` (NaN with one class).
    """
    t, s = _scores_pair(y_true, y_prob)
    cm = confusion_matrix(t, s >= threshold)
    sens = safe_div(cm.tp, cm.tp + cm.fn, zero_division)
    single_class = bool(t.all() or not t.any())
    return {
        "n": cm.n,
        "n_positive": cm.tp + cm.fn,
        "n_negative": cm.tn + cm.fp,
        "threshold": float(threshold),
        "tn": cm.tn,
        "fp": cm.fp,
        "fn": cm.fn,
        "tp": cm.tp,
        "confusion_matrix": cm.as_array().tolist(),
        "accuracy": (cm.tp + cm.tn) / cm.n,
        "sensitivity": sens,
        "recall": sens,
        "specificity": safe_div(cm.tn, cm.tn + cm.fp, zero_division),
        "precision": safe_div(cm.tp, cm.tp + cm.fp, zero_division),
        "f1": _f1(cm, zero_division),
        "mcc": _mcc(cm, zero_division),
        "cohen_kappa": _kappa(cm, zero_division),
        "roc_auc": roc_auc(t, s),
        "youden_threshold": math.nan if single_class else youden_threshold(t, s),
    }
