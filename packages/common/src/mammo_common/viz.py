"""Overlays and contact sheets: gray images with masks drawn as thin contours, with matplotlib.

* :func:`draw_panels`: a grid of panels (:class:`Panel`: gray image, masks, title), each image
  windowed on its percentiles and shown with its own aspect, each mask outlined by a
  sub-pixel contour (``contour`` at 0.5) in its colour (:data:`COLORS`, colour-blind safe),
  one title per panel, no ticks, one legend for the figure. Used by ``mammo show``, the
  report's contact sheets, ``breastseg evaluate --plot`` and ``massseg evaluate --overlays``.
* :func:`overlay` / :func:`contact_sheet`: the older array-level interface (an RGB array with
  the contours rendered in, tiles laid on a grid), drawn the same way.

Figures are :class:`matplotlib.figure.Figure` objects rendered by Agg (never ``pyplot``;
matplotlib is imported inside the functions), returned as Pillow images and written with
:func:`mammo_common.plots.save_png` (atomic, no timestamp in the PNG).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image
from scipy import ndimage

from mammo_common.errors import MammoError
from mammo_common.store.reader import MammogramsStore, StackedStore, Store

__all__ = [
    "BACKGROUND", "COLORS", "LABELS", "Panel", "contact_sheet", "contour", "draw_panels",
    "overlay", "store_panels", "store_tiles", "to_uint8", "write_contact_sheet",
]

#: Colours of the contours, by what they outline (RGB, 0-255). Truth and prediction are the
#: cyan / orange pair that stays distinct in every common colour-vision deficiency; the breast
#: outline is a light yellow, brighter than both; ``malignant`` (a magenta) marks the masses
#: ``mammo run`` classifies as malignant.
COLORS: dict[str, tuple[int, int, int]] = {
    "breast": (240, 228, 66),
    "truth": (0, 215, 255),
    "pred": (255, 140, 0),
    "malignant": (255, 64, 230),
}

#: Legend labels of the contours.
LABELS: dict[str, str] = {
    "breast": "breast",
    "truth": "ground truth",
    "pred": "prediction",
    "malignant": "malignant",
}

#: Figure background (dark, as images are read) and text colour.
BACKGROUND = "#141414"
FOREGROUND = "#ebebeb"

#: Contour width in points (1 pt = 1.39 px at the figures' 100 dpi): thin, still visible.
LINE_WIDTH = 1.25

#: Drawing order and relative width of the contours: the truth is drawn wider, under the
#: prediction, so a prediction lying on the truth shows as an orange line edged in cyan.
_ORDER = {"breast": (0, 1.0), "truth": (1, 1.7), "pred": (2, 1.0), "malignant": (3, 1.0)}


def to_uint8(image: np.ndarray) -> np.ndarray:
    """Scale any gray image to 0-255 for display (1st-99.9th percentile window)."""
    image = np.asarray(image, dtype=np.float32)
    lo, hi = np.percentile(image, [1.0, 99.9]) if image.size else (0.0, 1.0)
    if hi <= lo:
        hi = lo + 1.0
    return (np.clip((image - lo) / (hi - lo), 0, 1) * 255).astype(np.uint8)


def contour(mask: np.ndarray, width: int = 1) -> np.ndarray:
    """The boundary pixels of a binary mask (``width`` pixels thick, inside the mask)."""
    mask = np.asarray(mask) > 0
    if not mask.any():
        return mask
    eroded = ndimage.binary_erosion(mask, iterations=width, border_value=0)
    return mask & ~eroded


@dataclass
class Panel:
    """One picture of a grid: a gray image, masks by colour name, a title.

    Attributes:
        image: Gray image (any dtype; windowed to its 1st-99.9th percentile), or with
            ``windowed=True`` display gray or RGB (0-255) drawn as is.
        masks: Masks by key of :data:`COLORS` (masks of another shape than the image are
            stretched over it); ``None`` entries are not drawn and not in the legend; an
            empty mask is not drawn and is named "(none)" in the legend.
        title: Title above the panel (a case id, a score; ``\\n`` for a second line).
        windowed: ``image`` is already display gray or RGB (0-255), drawn as is.
        colors: Colours overriding :data:`COLORS` for this panel's masks.
        labels: Legend labels overriding :data:`LABELS`.
        notes: Text boxes ``(x, y, text, va)`` in image pixels (``va``: ``"bottom"`` puts
            the box above the point, ``"top"`` below it).
    """

    image: np.ndarray
    masks: Mapping[str, np.ndarray | None] = field(default_factory=dict)
    title: str = ""
    windowed: bool = False
    colors: Mapping[str, tuple[int, int, int]] = field(default_factory=dict)
    labels: Mapping[str, str] = field(default_factory=dict)
    notes: Sequence[tuple[float, float, str, str]] = ()


def _rgb(color: tuple[int, int, int]) -> tuple[float, float, float]:
    return (color[0] / 255.0, color[1] / 255.0, color[2] / 255.0)


def display_gray(image: np.ndarray, max_side: int, *, windowed: bool = False) -> np.ndarray:
    """The display gray (uint8; an RGB ``windowed`` image stays RGB) of ``image``, box-averaged
    down when its longer side is more than twice ``max_side`` (the figure would average it
    anyway; this keeps Agg fast)."""
    gray = np.asarray(image) if windowed else to_uint8(image)
    if gray.dtype != np.uint8:  # windowed but not uint8 (RGB tiles are uint8 already)
        gray = np.clip(gray, 0, 255).astype(np.uint8)
    factor = int(max(gray.shape[:2]) // max(1, 2 * max_side))
    if factor >= 2:
        gray = np.asarray(Image.fromarray(gray).reduce(factor))
    return gray


def draw_image(ax, image: np.ndarray, shape: tuple[int, int], *, max_side: int,
               windowed: bool = False) -> None:
    """Show a gray image on ``ax`` in the pixel coordinates of ``shape`` (rows, cols), with
    the right aspect and no ticks."""
    gray = display_gray(image, max_side, windowed=windowed)
    h, w = shape
    upsampled = max(gray.shape[:2]) < max_side
    ax.imshow(gray, cmap="gray", vmin=0, vmax=255, extent=(-0.5, w - 0.5, h - 0.5, -0.5),
              interpolation="bilinear" if upsampled else "antialiased", resample=True)
    ax.set_xlim(-0.5, w - 0.5)
    ax.set_ylim(h - 0.5, -0.5)
    ax.set_aspect("equal")
    ax.set_axis_off()


def _pooled_fraction(mask: np.ndarray, factor: int) -> np.ndarray:
    """The share of ``mask`` pixels in each ``factor`` x ``factor`` block (edge blocks padded
    with zeros), as float32."""
    rows, cols = -(-mask.shape[0] // factor), -(-mask.shape[1] // factor)
    padded = np.zeros((rows * factor, cols * factor), bool)  # a byte a pixel, not four
    padded[: mask.shape[0], : mask.shape[1]] = mask
    blocks = padded.reshape(rows, factor, cols, factor).sum(axis=(1, 3), dtype=np.float32)
    return blocks / np.float32(factor * factor)


def draw_contour(ax, mask: np.ndarray | None, color: tuple[int, int, int],
                 shape: tuple[int, int], *, linewidth: float = LINE_WIDTH,
                 zorder: float = 2.0, max_side: int | None = None) -> bool:
    """Outline a binary mask (stretched over ``shape`` when its shape differs) on ``ax`` by
    the 0.5 iso-line of the mask, zero-padded so a mask touching the border is closed.

    Args:
        ax: Matplotlib axes in the pixel coordinates of ``shape``.
        mask: The mask (non-zero inside), or ``None``.
        color: RGB colour (0-255).
        shape: (rows, cols) of the image the axes show.
        linewidth: Line width in points.
        zorder: Drawing order.
        max_side: Longer side the panel is drawn at, in pixels: a mask more than twice as
            large is first pooled to about twice that (the share of mask pixels per block), so
            a 4000x3000 mammogram's outline costs what a drawing of its size needs, not a
            contour of 12 million pixels (``None``: the mask as it is).

    Returns:
        Whether anything was drawn (``False`` for a missing or empty mask).
    """
    if mask is None:
        return False
    m = np.asarray(mask) > 0
    if not m.any():
        return False
    factor = max(m.shape) // (2 * max_side) if max_side else 0
    level = m.astype(np.float32) if factor < 2 else _pooled_fraction(m, factor)
    # the pooled grid covers whole blocks: its cells map onto factor source pixels each
    cells = (m.shape[0] / factor, m.shape[1] / factor) if factor >= 2 else m.shape
    sy, sx = shape[0] / cells[0], shape[1] / cells[1]
    padded = np.pad(level, 1)
    ys = (np.arange(-1, level.shape[0] + 1) + 0.5) * sy - 0.5
    xs = (np.arange(-1, level.shape[1] + 1) + 0.5) * sx - 0.5
    ax.contour(xs, ys, padded, levels=[0.5], colors=[_rgb(color)], linewidths=linewidth,
               antialiased=True, zorder=zorder)
    return True


def legend_handles(present: Mapping[str, bool], colors: Mapping[str, tuple[int, int, int]],
                   labels: Mapping[str, str] | None = None):
    """Legend entries: a line in its colour for each drawn mask, a plain "(none)" text for a
    mask that was given but empty (so an empty prediction puts none of its colour on the
    picture)."""
    from matplotlib.lines import Line2D

    handles = []
    for key, drawn in present.items():
        label = (labels or {}).get(key) or LABELS.get(key, key)
        if drawn:
            handles.append(Line2D([], [], color=_rgb(colors[key]), linewidth=2.0, label=label))
        else:
            handles.append(Line2D([], [], linestyle="none", label=f"{label}: none"))
    return handles


def _style_legend(legend) -> None:
    legend.get_frame().set_facecolor(BACKGROUND)
    legend.get_frame().set_edgecolor("0.4")
    for text in legend.get_texts():
        text.set_color(FOREGROUND)


def draw_panels(
    panels: Sequence[Panel], *, columns: int = 6, panel_px: int = 240,
    title: str = "", legend: bool = True, font_size: float = 8.0,
) -> Image.Image:
    """Draw panels on a grid: one title per panel, one legend for the figure.

    Args:
        panels: What to draw, in reading order.
        columns: Panels per row (at most the number of panels).
        panel_px: Longer side of each panel's image, in pixels.
        title: Figure title.
        legend: Draw the legend of the masks (below the grid).
        font_size: Panel titles' size in points (the legend's is one less).

    Returns:
        The figure as an RGB image.
    """
    from mammo_common.plots import _figure

    if not panels:
        raise ValueError("no panels to draw")
    columns = max(1, min(columns, len(panels)))
    rows = -(-len(panels) // columns)
    aspects = [np.asarray(p.image).shape[0] / max(1, np.asarray(p.image).shape[1])
               for p in panels]
    aspect = max(aspects)  # height / width of the tallest panel
    width_in = panel_px / 100.0 / max(1.0, aspect)
    height_in = width_in * aspect
    lines = max(p.title.count("\n") + 1 if p.title else 0 for p in panels)
    title_in = lines * font_size * 1.4 / 72.0 + 0.08
    fig = _figure(columns * (width_in + 0.1) + 0.1,
                  rows * (height_in + title_in + 0.1) + (0.35 if legend else 0.0)
                  + (0.3 if title else 0.0))
    fig.set_facecolor(BACKGROUND)
    fig.get_layout_engine().set(w_pad=0.04, h_pad=0.06, wspace=0.03, hspace=0.03)
    if title:
        fig.suptitle(title, fontsize=font_size + 1, color=FOREGROUND)
    present: dict[str, bool] = {}
    colors = dict(COLORS)
    labels: dict[str, str] = {}
    for k, panel in enumerate(panels):
        ax = fig.add_subplot(rows, columns, k + 1)
        shape = np.asarray(panel.image).shape[:2]
        draw_image(ax, panel.image, shape, max_side=panel_px, windowed=panel.windowed)
        for key, mask in panel.masks.items():
            if mask is None:
                continue
            color = panel.colors.get(key, COLORS.get(key, (255, 255, 255)))
            colors[key] = color
            labels.update({key: panel.labels[key]} if key in panel.labels else {})
            order, widen = _ORDER.get(key, (4, 1.0))
            drawn = draw_contour(ax, mask, color, shape, linewidth=LINE_WIDTH * widen,
                                 zorder=2.0 + 0.1 * order, max_side=panel_px)
            present[key] = present.get(key, False) or drawn
        for x, y, text, va in panel.notes:
            ax.text(x, y, text, fontsize=font_size - 0.5, color=FOREGROUND, ha="left", va=va,
                    clip_on=True, bbox={"boxstyle": "square,pad=0.2", "facecolor": "black",
                                        "edgecolor": "none", "alpha": 0.75})
        if panel.title:
            ax.set_title(panel.title, fontsize=font_size, color=FOREGROUND, pad=3)
    for k in range(len(panels), rows * columns):  # keep the grid's cells for the layout
        fig.add_subplot(rows, columns, k + 1).set_axis_off()
    if legend and present:
        handles = legend_handles(present, colors, labels)
        _style_legend(fig.legend(handles=handles, loc="outside lower center",
                                 ncol=len(handles), fontsize=font_size - 1, frameon=True,
                                 handlelength=1.6, columnspacing=1.2))
    return _to_image_tight(fig)


def _to_image_tight(fig) -> Image.Image:
    """The figure as an RGB image, cropped to what is drawn plus a small margin (the layout
    of fixed-aspect panels can leave a title against the edge or a band of background)."""
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight", pad_inches=0.06,
                facecolor=fig.get_facecolor())
    buf.seek(0)
    return Image.open(buf).convert("RGB")


def _render_array(panel: Panel, shape: tuple[int, int], linewidth_px: float) -> np.ndarray:
    """``panel`` rendered edge to edge at exactly ``shape`` pixels (no title, no legend)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    h, w = shape
    fig = Figure(figsize=(w / 100.0, h / 100.0), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_axes((0.0, 0.0, 1.0, 1.0))
    src = np.asarray(panel.image).shape[:2]
    draw_image(ax, panel.image, src, max_side=max(shape), windowed=panel.windowed)
    for key, mask in panel.masks.items():
        color = panel.colors.get(key, COLORS.get(key, (255, 255, 255)))
        order, widen = _ORDER.get(key, (4, 1.0))
        draw_contour(ax, mask, color, src, linewidth=linewidth_px * widen * 72.0 / 100.0,
                     zorder=2.0 + 0.1 * order, max_side=max(shape))
    fig.canvas.draw()
    return np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()


def overlay(
    image: np.ndarray, masks: dict[str, np.ndarray | None], *, size: int | None = None,
    width: int = 1,
) -> np.ndarray:
    """An RGB array of the gray image with each mask's contour in its colour (:data:`COLORS`).

    Args:
        image: Gray image.
        masks: Masks by colour name; ``None`` entries are skipped.
        size: If given, the picture is scaled so its longer side is ``size`` pixels.
        width: Contour width in (output) pixels.

    Returns:
        ``uint8`` array ``(H, W, 3)``: the image's shape, or scaled to ``size``.
    """
    shape = np.asarray(image).shape[:2]
    if size is not None:
        scale = size / max(shape)
        shape = (max(1, round(shape[0] * scale)), max(1, round(shape[1] * scale)))
    return _render_array(Panel(image, masks), shape, max(1.0, float(width)) * 1.5)


def contact_sheet(
    tiles: Sequence[tuple[np.ndarray, str] | Panel], *, tile: int = 192, columns: int = 6
) -> Image.Image:
    """Lay tiles on a grid with one title each, the legend below.

    Args:
        tiles: :class:`Panel` objects (contours drawn at the sheet's scale), or
            ``(rgb, caption)`` pairs of already drawn RGB arrays (:func:`overlay`).
        tile: Longer side of each tile's image, in pixels.
        columns: Tiles per row.
    """
    if not tiles:
        raise ValueError("no tiles to draw")
    panels = [t if isinstance(t, Panel) else Panel(np.asarray(t[0]), {}, t[1], windowed=True)
              for t in tiles]
    return draw_panels(panels, columns=columns, panel_px=tile)


def store_panels(store: Store, *, max_cases: int = 24) -> list[Panel]:
    """Panels of the first ``max_cases`` cases of a store: image, breast, truth (and predicted
    mass) contours, a two-line title (case id; view, laterality, pathology)."""
    panels: list[Panel] = []
    if isinstance(store, MammogramsStore):
        for cid in store.case_ids[:max_cases]:
            case = store.load(cid)
            rec = case.record
            panels.append(Panel(case.image, {"breast": case.breast_mask,
                                             "truth": case.mass_mask},
                                f"{cid}\n{rec.view} {rec.laterality} {rec.pathology}"))
    elif isinstance(store, StackedStore):
        names = {"breast": "breast_masks", "truth": "mass_masks", "pred": "mass_pred"}
        present = {k: v for k, v in names.items() if store.has(v)}
        for i, rec in enumerate(store.cases[:max_cases]):
            masks = {k: np.asarray(store.array(v)[i]) for k, v in present.items()}
            panels.append(Panel(np.asarray(store.array("images")[i]), masks,
                                f"{rec.case_id}\n{rec.view} {rec.laterality} {rec.pathology}"))
    else:
        raise MammoError(
            f"a {store.kind} store holds no images to show",
            path=store.path,
            fix="show its parent masses store, or use `mammo info` for the diagnoses",
        )
    return panels


def store_tiles(
    store: Store, *, max_cases: int = 24, size: int = 188
) -> list[tuple[np.ndarray, str]]:
    """Overlays (:func:`overlay`) of the first ``max_cases`` cases of a store with a two-line
    caption each."""
    return [(overlay(p.image, dict(p.masks), size=size), p.title)
            for p in store_panels(store, max_cases=max_cases)]


def write_contact_sheet(
    store: Store, out: str | Path, *, max_cases: int = 24, tile: int = 192, columns: int = 6
) -> Path:
    """Draw a store's contact sheet to a PNG (written atomically)."""
    from mammo_common.plots import save_png

    out = Path(out)
    if out.suffix.lower() != ".png":
        raise MammoError("the contact sheet is a PNG", path=out, fix="give a path ending in .png")
    panels = store_panels(store, max_cases=max_cases)
    return save_png(draw_panels(panels, columns=columns, panel_px=tile), out)
