"""PNG overlays of the ground-truth (cyan) and predicted (orange) mass contours, with matplotlib.

Used by ``massseg evaluate --overlays DIR`` to show the best, median and worst cases: one
panel (:func:`mammo_common.viz.draw_panels`) with the case id and its Dice in the title.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from mammo_common.plots import save_png
from mammo_common.viz import Panel, draw_panels

__all__ = ["draw_overlay", "pick_cases", "write_overlay"]

MIN_SIDE = 256
"""The image's shorter side is drawn at least this many pixels (longer side at most 640)."""
DRAWN_SIDE = 448
"""The image's longer side is drawn at least this many pixels (a 64-pixel crop is enlarged)."""
MAX_SIDE = 640


def draw_overlay(
    image: np.ndarray,
    truth: np.ndarray | None,
    pred: np.ndarray,
    caption: str = "",
    *,
    breast: np.ndarray | None = None,
) -> Image.Image:
    """An RGB overlay: the gray image with truth (cyan) and prediction (orange) contours.

    Args:
        image: Gray image (any dtype; windowed to 1st-99.9th percentile).
        truth: Ground-truth mask, or ``None``.
        pred: Predicted binary mask (an empty one is named "prediction: none" in the legend).
        caption: Title above the image (case id and score); its first double space starts
            a second line.
        breast: Optional breast mask, outlined in yellow.

    Returns:
        A Pillow image (RGB).
    """
    image = np.asarray(image)
    h, w = image.shape[:2]
    short, long = min(h, w), max(h, w)
    side = min(MAX_SIDE, max(DRAWN_SIDE, long, int(np.ceil(MIN_SIDE * long / max(1, short)))))
    masks = {"truth": truth, "pred": pred, "breast": breast}
    title = caption.replace("  ", "\n", 1)  # "best 1: <case id>" over "Dice 0.912"
    return draw_panels([Panel(image, masks, title)], columns=1, panel_px=side,
                       font_size=10.0)


def write_overlay(path: str | Path, image: Image.Image) -> Path:
    """Save a PNG atomically (no timestamp in it)."""
    return save_png(image, path)


def pick_cases(scores: list[float], k: int = 1) -> dict[str, list[int]]:
    """Indices of the ``k`` best, median and worst scores (NaN scores are skipped).

    Returns:
        ``{"best": [...], "median": [...], "worst": [...]}`` (possibly overlapping when
        there are fewer than ``3k`` scores).
    """
    valid = [i for i, s in enumerate(scores) if not np.isnan(s)]
    if not valid or k < 1:
        return {"best": [], "median": [], "worst": []}
    order = sorted(valid, key=lambda i: (scores[i], i))
    k = min(k, len(order))
    mid = (len(order) - 1) // 2  # the lower median for an even count
    start = max(0, min(len(order) - k, mid - (k - 1) // 2))
    return {
        "best": list(reversed(order[-k:])),
        "median": order[start : start + k],
        "worst": order[:k],
    }
