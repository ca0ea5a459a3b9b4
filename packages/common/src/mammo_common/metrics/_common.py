"""Small helpers shared by the metric modules (not public API)."""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

EmptyPolicy = Literal["one", "zero", "nan"]
"""What a metric returns when it is undefined (e.g. both masks empty)."""

_EMPTY_VALUES: dict[str, float] = {"one": 1.0, "zero": 0.0, "nan": math.nan}


def empty_value(policy: str) -> float:
    """Returns the value of an empty-mask policy.

    Args:
        policy: One of ``"one"``, ``"zero"``, ``"nan"``.

    Returns:
        1.0, 0.0 or NaN.

    Raises:
        ValueError: If the policy is unknown.
    """
    try:
        return _EMPTY_VALUES[policy]
    except (KeyError, TypeError):
        raise ValueError(
            f"empty={policy!r} is not a known policy; use one of 'one', 'zero', 'nan'"
        ) from None


def safe_div(num: float, den: float, zero_division: float) -> float:
    """Returns ``num / den``, or ``zero_division`` when ``den == 0``."""
    return float(num) / float(den) if den != 0 else float(zero_division)


def auc_from_counts(pos: NDArray[np.integer], neg: NDArray[np.integer]) -> float:
    """Exact, tie-aware ROC AUC from per-score counts (Mann-Whitney U / (P * N)).

    Args:
        pos: Count of positives at each distinct score, in increasing score order.
        neg: Count of negatives at each distinct score, same order and length.

    Returns:
        ``P(score_pos > score_neg) + 0.5 * P(score_pos == score_neg)``, or NaN when there
        are no positives or no negatives.
    """
    pos = np.asarray(pos, dtype=np.int64)
    neg = np.asarray(neg, dtype=np.int64)
    n_pos = int(pos.sum())
    n_neg = int(neg.sum())
    if n_pos == 0 or n_neg == 0:
        return math.nan
    neg_below = np.cumsum(neg) - neg  # negatives with a strictly smaller score
    # 2 * U in integers (exact up to 2**63), then one float division.
    twice_u = 2 * int(np.dot(pos, neg_below)) + int(np.dot(pos, neg))
    return twice_u / (2.0 * n_pos * n_neg)


def float16_keys(values: NDArray[np.float16]) -> NDArray[np.int64]:
    """Maps float16 values to integers in [0, 65536) with the same order.

    ``-0.0`` and ``+0.0`` map to the same key. NaN must be rejected by the caller.
    """
    v = np.asarray(values, dtype=np.float16) + np.float16(0.0)  # -0.0 -> +0.0
    bits = v.view(np.uint16).astype(np.int64)
    negative = bits >= 0x8000
    # Negative floats: larger bit pattern = smaller value -> invert; positives: set top bit.
    return np.where(negative, 0xFFFF - bits, bits + 0x8000)


def n_items(x: object) -> int:
    """Number of items along the first axis (lists, numpy and Zarr arrays alike)."""
    shape = getattr(x, "shape", None)
    if shape is not None and not isinstance(x, list | tuple):
        if len(shape) == 0:
            raise ValueError("expected a sequence of images, got a scalar")
        return int(shape[0])
    return len(x)  # type: ignore[arg-type]


def check_finite(x: NDArray, name: str) -> None:
    """Raises ValueError when ``x`` holds NaN or infinity."""
    if x.dtype.kind == "f" and not np.isfinite(x).all():
        raise ValueError(f"{name} contains NaN or infinite values; metrics need finite scores")


def as_1d(x: ArrayLike, name: str) -> NDArray:
    """Returns ``x`` as a 1-D array, raising ValueError for other shapes."""
    arr = np.asarray(x)
    if arr.ndim == 0:
        arr = arr.reshape(1)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {arr.shape}")
    return arr


def binary_labels(x: ArrayLike, name: str) -> NDArray[np.bool_]:
    """Validates 0/1 (or boolean) labels and returns them as a boolean 1-D array."""
    arr = as_1d(x, name)
    if arr.dtype == np.bool_:
        return arr
    if arr.size and not np.isin(arr, (0, 1)).all():
        bad = np.unique(arr[~np.isin(arr, (0, 1))])[:5].tolist()
        raise ValueError(
            f"{name} must hold 0/1 labels (1 = malignant), found {bad}; "
            "map the pathology to 0/1 first"
        )
    return arr.astype(bool)
