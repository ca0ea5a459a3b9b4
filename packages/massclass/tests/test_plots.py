"""The ROC band of ``massclass evaluate``: a bootstrap band around the curve."""

from __future__ import annotations

import numpy as np

from mammo_common.metrics import roc_curve
from massclass.plots import draw_roc, roc_band


def test_roc_band_brackets_the_curve_and_narrows_with_data(tmp_path) -> None:
    rng = np.random.default_rng(0)

    def sample(n: int) -> tuple[np.ndarray, np.ndarray]:
        y = np.repeat([0, 1], n)
        return y, rng.normal(size=2 * n) + 1.2 * y

    y, p = sample(40)
    grid, low, high = roc_band(y, p, n_resamples=300, seed=0)
    assert grid[0] == 0.0 and grid[-1] == 1.0
    assert np.all(low <= high) and np.all(np.diff(low) >= -1e-12)
    fpr, tpr, _ = roc_curve(y, p)
    observed = np.maximum.accumulate(np.interp(grid, fpr, tpr))
    inside = (observed >= low - 1e-9) & (observed <= high + 1e-9)
    assert inside.mean() > 0.95
    _, low_big, high_big = roc_band(*sample(400), n_resamples=300, seed=0)
    assert np.mean(high_big - low_big) < 0.6 * np.mean(high - low)
    # same seed, same band
    assert np.array_equal(roc_band(y, p, n_resamples=50, seed=3)[1],
                          roc_band(y, p, n_resamples=50, seed=3)[1])
    out = draw_roc(fpr, tpr, tmp_path / "roc.png", auc=0.8, ci=(0.7, 0.9),
                   band=(grid, low, high))
    assert out.is_file() and out.stat().st_size > 1000
