"""Helpers shared by the importers: safe relative paths, masks, mass records, the case item."""

from __future__ import annotations

import fnmatch
import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np
from skimage.transform import resize

from mammo_common.errors import InputFileError
from mammo_common.schema import CaseRecord, MassRecord, ParentRef

#: ``kind`` of the store parent that records a truth sidecar the breast masks came from.
TRUTH_PARENT_KIND = "truth-sidecar"


@dataclass(frozen=True)
class SidecarFile:
    """A mask read from a truth sidecar (see :mod:`mammo_common.synth.truth`).

    Attributes:
        sidecar: The sidecar's root folder (``<source>/truth``).
        path: The file read (``<source>/truth/<image folder>/breast.png``).
    """

    sidecar: Path
    path: Path


@dataclass
class CaseItem:
    """One case ready for :meth:`~mammo_common.store.MammogramsWriter.add_case`.

    ``breast_mask_from`` names the truth-sidecar file the ``breast_mask`` was read from (``None``
    when there is no breast mask or it came from the dataset's own annotations).
    """

    record: CaseRecord
    image: np.ndarray
    mass_mask: np.ndarray | None = None
    mass_labels: np.ndarray | None = None
    breast_mask: np.ndarray | None = None
    breast_mask_from: SidecarFile | None = None


def truth_parents(used: dict[Path, list[Path]], root: Path) -> list[ParentRef]:
    """Store parents for the truth sidecars that breast masks were read from.

    Args:
        used: Sidecar folder -> the files read from it.
        root: The source folder (file names in the digest are relative to it).

    Returns:
        One :class:`ParentRef` of kind :data:`TRUTH_PARENT_KIND` per sidecar, its digest a
        SHA-256 over the sorted relative names and sizes of the files read (like the source
        digest).
    """
    parents = []
    for folder in sorted(used):
        h = hashlib.sha256()
        for path in sorted(set(used[folder])):
            try:
                rel = path.resolve().relative_to(root.resolve()).as_posix()
                size = path.stat().st_size
            except (ValueError, OSError):
                rel, size = str(path), -1
            h.update(f"{rel}\t{size}\n".encode())
        parents.append(
            ParentRef(path=str(folder), kind=TRUTH_PARENT_KIND, digest="sha256:" + h.hexdigest())
        )
    return parents


class PathEscapeError(InputFileError):
    """A path listed in a source file points outside the source folder."""


_DRIVE = re.compile(r"^[A-Za-z]:")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
#: Longest accepted path written in a source file, and longest part of it (bytes, UTF-8).
MAX_PATH_CHARS = 1024
MAX_PART_BYTES = 255


def clean_relative(text: str, *, where: str = "") -> PurePosixPath:
    """Clean a path written in a CSV: strip whitespace/newlines/quotes, use ``/``.

    Raises:
        PathEscapeError: The path is absolute or climbs out with ``..``.
        InputFileError: The path is empty, holds control characters (e.g. a newline in the
            middle) or is too long to be a real file name.
    """
    cleaned = text.strip().strip('"').strip("'").strip().replace("\\", "/")
    if not cleaned:
        raise InputFileError("the path is empty", path=where or None, fix="fill in the path")
    if _CONTROL.search(cleaned):
        raise InputFileError(
            f"the path {cleaned[:80]!r} holds a control character (newline, tab, NUL, ...) "
            "inside it",
            path=where or None,
            fix="correct the path in the file; only leading/trailing whitespace is repaired",
        )
    if len(cleaned) > MAX_PATH_CHARS or any(
        len(part.encode("utf-8", "surrogatepass")) > MAX_PART_BYTES for part in cleaned.split("/")
    ):
        raise InputFileError(
            f"the path {cleaned[:80]!r}... is too long to be a file name "
            f"(over {MAX_PATH_CHARS} characters, or a part over {MAX_PART_BYTES} bytes)",
            path=where or None,
            fix="correct the path in the file",
        )
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
    except (ValueError, OSError, RuntimeError):
        return False
    return True


def safe_glob(root: Path, pattern: str) -> list[Path]:
    """``root.glob(pattern)`` that never lists a folder lying outside ``root``.

    ``pattern`` is made of plain parts separated by ``/`` (``*.csv``, ``*/mg``, ``*/*/CBIS-DDSM``;
    no ``**``). Folders reached through a symbolic link pointing outside ``root`` are not
    listed; a final match may itself be such a link (callers check and report it).

    Returns:
        The matches, sorted.
    """
    parts = pattern.split("/")
    level = [root]
    for depth, part in enumerate(parts):
        last = depth == len(parts) - 1
        found: list[Path] = []
        for folder in level:
            if not inside(folder, root):
                continue
            try:
                names = sorted(entry.name for entry in os.scandir(folder))
            except OSError:
                continue
            for name in names:
                if fnmatch.fnmatchcase(name, part):
                    path = folder / name
                    if last or path.is_dir():
                        found.append(path)
        level = found
    return sorted(level)


def safe_rglob(folder: Path, root: Path, pattern: str) -> list[Path]:
    """Files matching ``pattern`` under ``folder`` (any depth), if ``folder`` lies in ``root``.

    Sub-folders that are symbolic links are not entered; matched files may be links (callers
    check them with :func:`inside`).
    """
    if not inside(folder, root):
        return []
    return sorted(p for p in folder.rglob(pattern) if p.is_file())


def outside_error(path: Path, root: Path) -> PathEscapeError:
    """The error for a file or folder that (through a symbolic link) lies outside ``root``."""
    try:
        target = str(path.resolve())
    except (OSError, RuntimeError):
        target = "an unresolvable place"
    return PathEscapeError(
        f"resolves to {target}, outside the source folder {root} (a symbolic link?); ingest "
        "reads nothing outside the folder it is given",
        path=path,
        fix="copy the file into the source folder instead of linking to it",
    )


def require_inside(path: Path, root: Path) -> None:
    """Raise :func:`outside_error` unless ``path`` (symlinks resolved) lies inside ``root``."""
    if not inside(path, root):
        raise outside_error(path, root)


def resize_nearest(mask: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Resize a label/mask array with nearest-neighbour interpolation (values unchanged)."""
    out = resize(mask, shape, order=0, preserve_range=True, anti_aliasing=False, mode="edge")
    return out.astype(mask.dtype)


#: Largest relative difference of aspect ratio (rows/cols) between a mask and its image that is
#: still repaired by resizing; beyond it the mask belongs to another image.
MAX_ASPECT_DIFFERENCE = 0.1


def fit_mask(
    mask: np.ndarray, shape: tuple[int, int], *, path: str | Path | None = None, what: str = "mask"
) -> tuple[np.ndarray, str | None]:
    """Resize a mask of another size to ``shape`` (nearest neighbour) when it plausibly matches.

    Returns:
        The mask at ``shape`` and a note when it was resized (``None`` when it already fitted).

    Raises:
        InputFileError: The mask is empty-shaped or its aspect ratio differs from the image's by
            more than :data:`MAX_ASPECT_DIFFERENCE` (it cannot belong to this image).
    """
    if mask.shape == tuple(shape):
        return mask, None
    rows, cols = mask.shape[:2]
    if rows < 1 or cols < 1 or mask.ndim != 2:
        raise InputFileError(
            f"the {what} has shape {mask.shape}, not a 2-D image", path=path,
            fix="re-export the mask as a single-channel image",
        )
    ratio, image_ratio = rows / cols, shape[0] / shape[1]
    if abs(ratio - image_ratio) > MAX_ASPECT_DIFFERENCE * image_ratio:
        raise InputFileError(
            f"the {what} is {rows}x{cols} but the image is {shape[0]}x{shape[1]} (another aspect "
            "ratio), so it does not belong to this image",
            path=path,
            fix="pair the image with its own mask (same size, or the same shape scaled)",
        )
    note = (
        f"{what} {rows}x{cols} resized to the image's {shape[0]}x{shape[1]} (nearest neighbour)"
    )
    return resize_nearest(mask, shape), note


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
