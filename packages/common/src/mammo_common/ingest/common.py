"""Helpers shared by the importers: safe relative paths, masks, mass records, the case item."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np
from skimage.transform import resize

from mammo_common.errors import InputFileError
from mammo_common.schema import CaseRecord, MassRecord


@dataclass
class CaseItem:
    """One case ready for :meth:`~mammo_common.store.MammogramsWriter.add_case`."""

    record: CaseRecord
    image: np.ndarray
    mass_mask: np.ndarray | None = None
    mass_labels: np.ndarray | None = None
    breast_mask: np.ndarray | None = None


class PathEscapeError(InputFileError):
    """A path listed in a source file points outside the source folder."""


_DRIVE = re.compile(r"^[A-Za-z]:")


def clean_relative(text: str, *, where: str = "") -> PurePosixPath:
    """Clean a path written in a CSV: strip whitespace/newlines/quotes, use ``/``.

    Raises:
        PathEscapeError: The path is absolute or climbs out with ``..``.
        InputFileError: The path is empty.
    """
    cleaned = text.strip().strip('"').strip("'").strip().replace("\\", "/")
    if not cleaned:
        raise InputFileError("the path is empty", path=where or None, fix="fill in the path")
    if cleaned.startswith("/") or _DRIVE.match(cleaned):
        raise PathEscapeError(
            f"the path {cleaned!r} is absolute, so it may point outside the source folder",
            path=where or None,
            fix="write paths relative to the source folder",
        )
    rel = PurePosixPath(cleaned)
    if ".." in rel.parts:
        raise PathEscapeError(
            f"the path {cleaned!r} climbs out of the source folder with '..'",
            path=where or None,
            fix="write paths relative to the source folder, without '..'",
        )
    return rel


def inside(path: Path, root: Path) -> bool:
    """Whether ``path`` (symlinks resolved) lies inside ``root``."""
    try:
        path.resolve().relative_to(root.resolve())
    except (ValueError, OSError):
        return False
    return True


def resize_nearest(mask: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Resize a label/mask array with nearest-neighbour interpolation (values unchanged)."""
    out = resize(mask, shape, order=0, preserve_range=True, anti_aliasing=False, mode="edge")
    return out.astype(mask.dtype)


def bbox_area(mask: np.ndarray) -> tuple[tuple[int, int, int, int] | None, int]:
    """Bounding box ``(y0, x0, y1, x1)`` (end-exclusive) and pixel count of a mask."""
    area = int(np.count_nonzero(mask))
    if area == 0:
        return None, 0
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    return (int(rows[0]), int(cols[0]), int(rows[-1]) + 1, int(cols[-1]) + 1), area


def mass_record(mass_id: int, mask: np.ndarray, **fields: object) -> MassRecord:
    """A :class:`MassRecord` with bbox and area measured from ``mask``."""
    bbox, area = bbox_area(mask)
    return MassRecord(mass_id=mass_id, bbox=bbox, area=area, **fields)  # type: ignore[arg-type]


def parse_int(text: object, lo: int, hi: int) -> int | None:
    """An integer in ``lo..hi`` from messy text (``" 3"``, ``"4a"``, ``"3.0"``), else ``None``."""
    if text is None:
        return None
    m = re.match(r"\s*(\d+)", str(text))
    if not m:
        return None
    value = int(m.group(1))
    return value if lo <= value <= hi else None


PATHOLOGY_RANK = {"MALIGNANT": 3, "BENIGN": 2, "BENIGN_WITHOUT_CALLBACK": 1, "unknown": 0}


def worst_pathology(values: list[str]) -> str:
    """The most severe pathology of a list (MALIGNANT > BENIGN > BENIGN_WITHOUT_CALLBACK)."""
    return max(values, key=lambda v: PATHOLOGY_RANK.get(v, 0), default="unknown")


def fill_polygon(xs: np.ndarray, ys: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Fill a closed polygon (x, y in pixels) into a bool mask, outline included."""
    from PIL import Image, ImageDraw
    from skimage.draw import polygon

    mask = np.zeros(shape, bool)
    rr, cc = polygon(ys, xs, shape=shape)
    mask[rr, cc] = True
    canvas = Image.new("1", (shape[1], shape[0]), 0)
    points = [(float(x), float(y)) for x, y in zip(np.rint(xs), np.rint(ys), strict=True)]
    if len(points) >= 2:
        ImageDraw.Draw(canvas).polygon(points, fill=None, outline=1)
    return mask | np.asarray(canvas, dtype=bool)
