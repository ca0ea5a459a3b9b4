"""PNG overlays of ground truth (yellow) and predicted (red) mass contours, drawn with Pillow.

Used by ``massseg evaluate --overlays DIR`` to show the best, median and worst cases.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from mammo_common.store.atomic import atomic_path
from mammo_common.viz import COLORS, overlay

__all__ = ["draw_overlay", "pick_cases", "write_overlay"]

MIN_SIDE = 256
"""Overlays are enlarged (nearest neighbour) so that their shorter side is at least this."""


def draw_overlay(
    image: np.ndarray,
    truth: np.ndarray | None,
    pred: np.ndarray,
    caption: str = "",
    *,
    breast: np.ndarray | None = None,
) -> Image.Image:
    """An RGB overlay: the gray image with truth (yellow) and prediction (red) contours.

    Args:
        image: Gray image (any dtype; windowed to 1st-99.9th percentile).
        truth: Ground-truth mask, or ``None``.
        pred: Predicted binary mask.
        caption: Text drawn in a banner above the image (with the colour legend).
        breast: Optional breast mask, outlined in green.

    Returns:
        A Pillow image.
    """
    masks = {"breast": breast, "truth": truth, "pred": pred}
    rgb = overlay(np.asarray(image), {k: v for k, v in masks.items() if v is not None})
    img = Image.fromarray(rgb)
    scale = max(1, int(np.ceil(MIN_SIDE / max(1, min(img.size)))))
    if scale > 1:
        img = img.resize((img.size[0] * scale, img.size[1] * scale), Image.Resampling.NEAREST)
    banner = 30
    canvas = Image.new("RGB", (img.size[0], img.size[1] + banner), (16, 16, 16))
    canvas.paste(img, (0, banner))
    draw = ImageDraw.Draw(canvas)
    draw.text((4, 2), caption, fill=(240, 240, 240))
    draw.text((4, 15), "truth", fill=COLORS["truth"])
    draw.text((44, 15), "prediction", fill=COLORS["pred"])
    return canvas


def write_overlay(path: str | Path, image: Image.Image) -> Path:
    """Save a PNG atomically."""
    path = Path(path)
    with atomic_path(path) as tmp:
        image.save(tmp, format="PNG")
    return path


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
