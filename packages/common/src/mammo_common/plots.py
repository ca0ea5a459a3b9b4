"""Figures the stages and the report draw, with matplotlib (headless, Agg): training curves, ROC.

* :func:`training_curves`: one panel per quantity (loss, each metric, the learning rate on a
  log axis), training and validation paired in one colour each, the phases of a multi-phase
  training (``phase`` column of ``history.csv``) marked by dotted lines and named.
* :func:`roc_figure`: an ROC curve with the chance diagonal, a pointwise bootstrap band when
  given, the AUC with its confidence interval and the operating point.

Figures are built with :class:`matplotlib.figure.Figure` (never ``pyplot``, so nothing global
is touched and no display is needed) and returned as Pillow images or written atomically.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from mammo_common.history import read_history, read_phase_names

__all__ = [
    "curve_panels", "read_history", "read_phase_names", "roc_figure", "save_png",
    "training_curves",
]

#: history.csv columns that are bookkeeping, not curves.
_NOT_CURVES = {"epoch", "lr", "seconds", "phase", "phase_epoch", "phase_name"}


def _figure(width: float, height: float):  # -> matplotlib.figure.Figure
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=100, layout="constrained")


def _to_image(fig) -> Image.Image:
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    buf.seek(0)
    return Image.open(buf).convert("RGB")


def save_png(image: Image.Image, path: str | Path) -> Path:
    """Write ``image`` as a PNG atomically (a crash leaves no half-written file), compressed
    as far as zlib goes (a mammogram's grain compresses poorly: about 12 % smaller)."""
    from mammo_common.store import atomic_path

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        image.save(tmp, format="PNG", optimize=True)  # Pillow writes no timestamp
    return path


def _finite(v: float) -> bool:
    try:
        return math.isfinite(float(v))
    except (TypeError, ValueError):
        return False


def _phase_starts(history: dict[str, list[float]]) -> list[tuple[int, int]]:
    """``(row index, phase number)`` where each phase after the first begins."""
    phases = history.get("phase") or []
    return [(i, int(p)) for i, p in enumerate(phases)
            if i > 0 and _finite(p) and phases[i - 1] != p]


def curve_panels(history: dict[str, list[float]]) -> list[str]:
    """The panels :func:`training_curves` draws: each quantity once (its ``val_`` twin shares
    the panel), then ``lr`` when the learning rate changed; bookkeeping columns never."""
    quantities = [k for k in history if k not in _NOT_CURVES and not k.startswith("val_")]
    quantities += [k[4:] for k in history
                   if k.startswith("val_") and k[4:] not in history and k[4:] not in _NOT_CURVES]
    show_lr = "lr" in history and len({v for v in history["lr"] if _finite(v)}) > 1
    return (quantities + (["lr"] if show_lr else [])) or ["loss"]


def training_curves(
    history: dict[str, list[float]], *, title: str = "",
    phase_names: Sequence[str] | None = None,
) -> Image.Image:
    """Training curves of one model: a panel per quantity, training and validation paired.

    Args:
        history: Columns of ``history.csv`` (:func:`read_history`): ``epoch``, ``loss``,
            ``val_loss``, each metric and its ``val_`` twin, optionally ``lr`` and ``phase``.
        title: Figure title (the model id).
        phase_names: Names of the phases, in order, for the phase marks.

    Returns:
        The figure as an RGB image.
    """
    n_rows = len(next(iter(history.values()), []))
    epochs = history.get("epoch") or list(range(1, n_rows + 1))
    panels = curve_panels(history)
    cols = min(3, len(panels))
    rows = math.ceil(len(panels) / cols)
    fig = _figure(4.0 * cols, 3.0 * rows + 0.4)
    if title:
        fig.suptitle(title, fontsize=10)
    starts = _phase_starts(history)
    for k, name in enumerate(panels):
        ax = fig.add_subplot(rows, cols, k + 1)
        if name == "lr":
            ax.plot(epochs, history["lr"], color="tab:gray", label="learning rate")
            ax.set_yscale("log")
        else:
            for key, label, style in ((name, "training", "-"), (f"val_{name}", "validation",
                                                                 "--")):
                if key in history:
                    ax.plot(epochs, history[key], style, color="tab:blue" if style == "-"
                            else "tab:orange", marker="." if n_rows < 30 else None, label=label)
        for row, phase in starts:
            x = epochs[row] - 0.5
            ax.axvline(x, color="0.5", linestyle=":", linewidth=1)
            if phase_names and 0 < phase <= len(phase_names) and k == 0:
                ax.annotate(phase_names[phase - 1], (x, 1.0), xycoords=("data", "axes fraction"),
                            fontsize=7, color="0.35", ha="left", va="top")
        ax.set_title(name.replace("_", " "), fontsize=9)
        ax.set_xlabel("epoch", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
    return _to_image(fig)


def roc_figure(
    fpr: np.ndarray,
    tpr: np.ndarray,
    *,
    title: str = "ROC",
    auc: float | None = None,
    ci: tuple[float, float] | None = None,
    operating_point: tuple[float, float] | None = None,
    band: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
) -> Image.Image:
    """An ROC curve with the chance diagonal.

    Args:
        fpr: False positive rates (x).
        tpr: True positive rates (y).
        title: Title line.
        auc: AUC shown in the legend.
        ci: AUC confidence interval shown in the legend.
        operating_point: ``(fpr, tpr)`` of the chosen threshold, marked with a dot.
        band: ``(fpr grid, tpr low, tpr high)``: a pointwise confidence band (bootstrap).

    Returns:
        The figure as an RGB image.
    """
    fig = _figure(4.8, 4.8)
    ax = fig.add_subplot(1, 1, 1)
    ax.plot([0, 1], [0, 1], color="0.6", linewidth=1, label="chance")
    if band is not None:
        grid, low, high = band
        ax.fill_between(grid, low, high, color="tab:red", alpha=0.15, linewidth=0,
                        label="95 % band (bootstrap)")
    label = "ROC"
    if auc is not None and _finite(auc):
        label = f"AUC {auc:.3f}"
        if ci is not None and all(_finite(c) for c in ci):
            label += f" [{ci[0]:.3f}, {ci[1]:.3f}]"
    keep = np.isfinite(fpr) & np.isfinite(tpr)
    ax.plot(np.asarray(fpr)[keep], np.asarray(tpr)[keep], color="tab:red", linewidth=2,
            label=label)
    if operating_point is not None:
        ax.plot(*operating_point, "o", color="tab:blue", markeredgecolor="black",
                label="operating point")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.01)
    ax.set_aspect("equal")
    ax.set_xlabel("false positive rate (1 - specificity)")
    ax.set_ylabel("true positive rate (sensitivity)")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    return _to_image(fig)
