"""Small line plots drawn with Pillow (training curves, ROC), so no plotting library is needed."""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from pathlib import Path

from PIL import Image, ImageDraw

PALETTE = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189),
           (140, 86, 75), (227, 119, 194), (127, 127, 127)]


def line_plot(
    series: dict[str, tuple[Sequence[float], Sequence[float]]],
    *,
    title: str = "",
    xlabel: str = "",
    ylabel: str = "",
    size: tuple[int, int] = (520, 360),
    ylim: tuple[float, float] | None = None,
    diagonal: bool = False,
) -> Image.Image:
    """Plot named (x, y) series on one axis; NaN points are skipped.

    Args:
        series: Name -> (xs, ys).
        title: Title above the plot.
        xlabel: X axis label.
        ylabel: Y axis label.
        size: Image size (width, height).
        ylim: Y range; from the data when None.
        diagonal: Draw the y = x chance line (for ROC curves).
    """
    width, height = size
    left, right, top, bottom = 56, 16, 28, 44
    img = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(img)
    xs_all = [x for xs, _ in series.values() for x in xs if _finite(x)]
    ys_all = [y for _, ys in series.values() for y in ys if _finite(y)]
    if not xs_all or not ys_all:
        draw.text((left, height // 2), "no data", fill="black")
        return img
    x0, x1 = min(xs_all), max(xs_all)
    y0, y1 = ylim if ylim else (min(ys_all), max(ys_all))
    if x1 == x0:
        x1 = x0 + 1
    if y1 == y0:
        y1 = y0 + 1
    pw, ph = width - left - right, height - top - bottom

    def px(x: float, y: float) -> tuple[float, float]:
        return left + (x - x0) / (x1 - x0) * pw, top + (1 - (y - y0) / (y1 - y0)) * ph

    draw.rectangle([left, top, left + pw, top + ph], outline=(120, 120, 120))
    for k in range(5):
        fy = y0 + (y1 - y0) * k / 4
        _, py = px(x0, fy)
        draw.line([left, py, left + pw, py], fill=(235, 235, 235))
        draw.text((4, py - 6), f"{fy:.3g}", fill=(60, 60, 60))
        fx = x0 + (x1 - x0) * k / 4
        pxx, _ = px(fx, y0)
        draw.text((pxx - 10, top + ph + 4), f"{fx:.3g}", fill=(60, 60, 60))
    if diagonal:
        draw.line([px(x0, y0), px(x1, y1)], fill=(180, 180, 180))
    for k, (name, (xs, ys)) in enumerate(series.items()):
        colour = PALETTE[k % len(PALETTE)]
        points = [px(x, y) for x, y in zip(xs, ys, strict=False) if _finite(x) and _finite(y)]
        if len(points) > 1:
            draw.line(points, fill=colour, width=2)
        elif points:
            draw.ellipse([points[0][0] - 2, points[0][1] - 2, points[0][0] + 2,
                          points[0][1] + 2], fill=colour)
        draw.text((left + 8, top + 6 + 13 * k), name, fill=colour)
    draw.text((left, 8), title, fill="black")
    draw.text((left + pw // 2 - 3 * len(xlabel), height - 16), xlabel, fill="black")
    draw.text((4, 8), ylabel, fill=(60, 60, 60))
    return img


def _finite(v: float) -> bool:
    try:
        return math.isfinite(float(v))
    except (TypeError, ValueError):
        return False


def read_history(path: str | Path) -> dict[str, list[float]]:
    """Read a ``history.csv`` (one row per epoch) into columns of floats."""
    with open(path, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    columns: dict[str, list[float]] = {}
    for row in rows:
        for key, value in row.items():
            try:
                columns.setdefault(key, []).append(float(value))
            except (TypeError, ValueError):
                columns.setdefault(key, []).append(float("nan"))
    return columns


def training_curves(history: dict[str, list[float]], *, title: str = "") -> Image.Image:
    """Loss and every metric with its validation twin, per epoch."""
    epochs = history.get("epoch") or list(range(1, len(next(iter(history.values()), [])) + 1))
    names = [k for k in history if k not in {"epoch", "lr", "seconds", "phase"}]
    series = {name: (epochs, history[name]) for name in names}
    return line_plot(series, title=title, xlabel="epoch", ylabel="value")
