"""ROC curve as a PNG, drawn with Pillow (matplotlib is not a dependency)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from mammo_common.store import atomic_path

__all__ = ["draw_roc"]

_SIZE = 480
_PAD = 56


def draw_roc(
    fpr: np.ndarray,
    tpr: np.ndarray,
    path: str | Path,
    *,
    title: str = "ROC",
    auc: float | None = None,
    ci: tuple[float, float] | None = None,
    operating_point: tuple[float, float] | None = None,
) -> Path:
    """Draw an ROC curve (with the chance diagonal) into a PNG file, atomically.

    Args:
        fpr: False positive rates (x).
        tpr: True positive rates (y).
        path: Output ``.png``.
        title: Title line.
        auc: AUC shown in the legend.
        ci: AUC confidence interval shown in the legend.
        operating_point: ``(fpr, tpr)`` of the chosen threshold, marked with a dot.

    Returns:
        The path written.
    """
    w = h = _SIZE
    img = Image.new("RGB", (w, h), "white")
    draw = ImageDraw.Draw(img)
    x0, y0, x1, y1 = _PAD, 30, w - _PAD // 2, h - _PAD

    def to_px(fx: float, fy: float) -> tuple[float, float]:
        return x0 + fx * (x1 - x0), y1 - fy * (y1 - y0)

    for k in range(6):
        v = k / 5
        gx, gy = to_px(v, v)
        draw.line([(gx, y0), (gx, y1)], fill=(230, 230, 230))
        draw.line([(x0, gy), (x1, gy)], fill=(230, 230, 230))
        draw.text((gx - 8, y1 + 6), f"{v:.1f}", fill="black")
        draw.text((x0 - 30, gy - 6), f"{v:.1f}", fill="black")
    draw.rectangle([x0, y0, x1, y1], outline="black")
    draw.line([to_px(0, 0), to_px(1, 1)], fill=(160, 160, 160), width=1)
    pts = [
        to_px(float(a), float(b))
        for a, b in zip(fpr, tpr, strict=True)
        if np.isfinite(a) and np.isfinite(b)
    ]
    if len(pts) >= 2:
        draw.line(pts, fill=(200, 30, 30), width=3)
    if operating_point is not None:
        px, py = to_px(*operating_point)
        draw.ellipse([px - 5, py - 5, px + 5, py + 5], outline="black", fill=(30, 30, 200))
    draw.text(((x0 + x1) / 2 - 60, y1 + 24), "false positive rate", fill="black")
    draw.text((x0, 8), "true positive rate", fill="black")
    legend = title
    if auc is not None and np.isfinite(auc):
        legend += f"   AUC {auc:.3f}"
        if ci is not None and all(np.isfinite(ci)):
            legend += f" [{ci[0]:.3f}, {ci[1]:.3f}]"
    draw.text((x0 + 10, y1 - 20), legend, fill="black")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        img.save(tmp, format="PNG")
    return path
