"""Contact sheets: thumbnails of a store's cases with masks drawn as coloured contours.

Drawn with Pillow and NumPy only, so ``mammo show`` works wherever mammo-common installs.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw
from scipy import ndimage

from mammo_common.errors import MammoError
from mammo_common.store.atomic import atomic_path
from mammo_common.store.reader import MammogramsStore, StackedStore, Store

#: Colours of the contours, by what they outline.
COLORS = {
    "breast": (60, 200, 80),
    "truth": (255, 210, 0),
    "pred": (255, 40, 40),
}


def to_uint8(image: np.ndarray) -> np.ndarray:
    """Scale any gray image to 0-255 for display (1st-99.9th percentile window)."""
    image = np.asarray(image, dtype=np.float32)
    lo, hi = np.percentile(image, [1.0, 99.9]) if image.size else (0.0, 1.0)
    if hi <= lo:
        hi = lo + 1.0
    return (np.clip((image - lo) / (hi - lo), 0, 1) * 255).astype(np.uint8)


def contour(mask: np.ndarray, width: int = 1) -> np.ndarray:
    """The boundary pixels of a binary mask."""
    mask = np.asarray(mask) > 0
    if not mask.any():
        return mask
    eroded = ndimage.binary_erosion(mask, iterations=width, border_value=0)
    return mask & ~eroded


def overlay(
    image: np.ndarray, masks: dict[str, np.ndarray | None], *, size: int | None = None,
    width: int = 1,
) -> np.ndarray:
    """An RGB image with each mask's contour drawn in its colour (keys of :data:`COLORS`).

    Args:
        image: Gray image.
        masks: Masks by colour name; ``None`` entries are skipped.
        size: If given, the image is first scaled so its longer side is ``size`` pixels (masks
            with nearest neighbour), so contours stay visible on large images.
        width: Contour width in (output) pixels.
    """
    gray = to_uint8(image)
    shape = gray.shape
    if size is not None:
        scale = size / max(shape)
        shape = (max(1, round(shape[0] * scale)), max(1, round(shape[1] * scale)))
        gray = np.asarray(Image.fromarray(gray).resize(shape[::-1], Image.Resampling.BILINEAR))
    rgb = np.stack([gray] * 3, axis=-1)
    for name, mask in masks.items():
        if mask is None:
            continue
        mask = (np.asarray(mask) > 0).astype(np.uint8)
        if mask.shape != shape:
            mask = np.asarray(Image.fromarray(mask).resize(shape[::-1], Image.Resampling.NEAREST))
        rgb[contour(mask, width)] = COLORS[name]
    return rgb


def contact_sheet(
    tiles: list[tuple[np.ndarray, str]], *, tile: int = 192, columns: int = 6
) -> Image.Image:
    """Lay RGB tiles (at most ``tile - 4`` pixels on a side) with captions on a grid."""
    if not tiles:
        raise ValueError("no tiles to draw")
    columns = max(1, min(columns, len(tiles)))
    rows = -(-len(tiles) // columns)
    caption = 28
    sheet = Image.new("RGB", (columns * tile, rows * (tile + caption) + 14), (16, 16, 16))
    draw = ImageDraw.Draw(sheet)
    for k, (rgb, text) in enumerate(tiles):
        r, c = divmod(k, columns)
        x0, y0 = c * tile, r * (tile + caption)
        thumb = Image.fromarray(rgb)
        sheet.paste(thumb, (x0 + (tile - thumb.size[0]) // 2, y0 + 2))
        for line_no, line in enumerate(text.split("\n")[:2]):
            draw.text((x0 + 3, y0 + tile + 1 + 12 * line_no), line[:34], fill=(230, 230, 230))
    legend = "  ".join(f"{k}" for k in COLORS)
    draw.text((3, sheet.size[1] - 12), legend, fill=(150, 150, 150))
    return sheet


def store_tiles(
    store: Store, *, max_cases: int = 24, size: int = 188
) -> list[tuple[np.ndarray, str]]:
    """Overlays of the first ``max_cases`` cases of a store with a two-line caption each."""
    tiles: list[tuple[np.ndarray, str]] = []
    if isinstance(store, MammogramsStore):
        for cid in store.case_ids[:max_cases]:
            case = store.load(cid)
            rgb = overlay(
                case.image, {"breast": case.breast_mask, "truth": case.mass_mask}, size=size
            )
            rec = case.record
            tiles.append((rgb, f"{cid}\n{rec.view} {rec.laterality} {rec.pathology}"))
    elif isinstance(store, StackedStore):
        names = {
            "breast": "breast_masks",
            "truth": "mass_masks",
            "pred": "mass_pred",
        }
        present = {k: v for k, v in names.items() if store.has(v)}
        for i, rec in enumerate(store.cases[:max_cases]):
            masks = {k: store.array(v)[i] for k, v in present.items()}
            rgb = overlay(store.array("images")[i], masks, size=size)
            tiles.append((rgb, f"{rec.case_id}\n{rec.view} {rec.laterality} {rec.pathology}"))
    else:
        raise MammoError(
            f"a {store.kind} store holds no images to show",
            path=store.path,
            fix="show its parent masses store, or use `mammo info` for the diagnoses",
        )
    return tiles


def write_contact_sheet(
    store: Store, out: str | Path, *, max_cases: int = 24, tile: int = 192, columns: int = 6
) -> Path:
    """Draw a store's contact sheet to a PNG (written atomically)."""
    out = Path(out)
    if out.suffix.lower() != ".png":
        raise MammoError("the contact sheet is a PNG", path=out, fix="give a path ending in .png")
    tiles = store_tiles(store, max_cases=max_cases, size=tile - 4)
    sheet = contact_sheet(tiles, tile=tile, columns=columns)
    with atomic_path(out) as tmp:
        sheet.save(tmp, format="PNG")
    return out
