"""Read PNG, TIFF and JPEG images safely: size checked before decoding, clear errors.

Every reader refuses (with :class:`~mammo_common.errors.InputFileError` naming the file and the
fix) a file that is not an image, is truncated, or claims more pixels than ``max_pixels``, and
checks the size from the header *before* any pixel buffer is allocated.
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import tifffile
from PIL import Image, UnidentifiedImageError

from mammo_common.errors import InputFileError

#: Default refusal limit for one image (rows * cols * samples), about 60 megapixels.
DEFAULT_MAX_PIXELS = 60_000_000

#: File name endings read by :func:`read_image`.
IMAGE_SUFFIXES = (".png", ".tif", ".tiff", ".jpg", ".jpeg", ".bmp")

_TIFF_SUFFIXES = (".tif", ".tiff")


@dataclass
class ImageInfo:
    """What the file said about its pixels.

    Attributes:
        shape: (rows, cols) of the returned 2-D array.
        bits: Bits per sample in the file (8 or 16 typically).
        photometric: Photometric interpretation (``MONOCHROME2`` after any inversion).
        notes: Conversions applied (colour to grey, inversion).
    """

    shape: tuple[int, int]
    bits: int
    photometric: str = "MONOCHROME2"
    notes: list[str] = field(default_factory=list)


def check_pixel_count(path: Path, rows: int, cols: int, samples: int, max_pixels: int) -> None:
    """Refuse absurd or empty dimensions before any pixel buffer is allocated.

    Args:
        path: The file (for the message).
        rows: Rows claimed by the header.
        cols: Columns claimed by the header.
        samples: Samples per pixel claimed by the header.
        max_pixels: Largest accepted ``rows * cols * samples``.

    Raises:
        InputFileError: When the dimensions are non-positive or too large.
    """
    if rows <= 0 or cols <= 0 or samples <= 0:
        raise InputFileError(
            f"the header claims an empty image ({rows}x{cols}, {samples} samples per pixel)",
            path=path,
            fix="check that the file is a complete image; re-export or remove it",
        )
    total = int(rows) * int(cols) * int(samples)
    if total > max_pixels:
        raise InputFileError(
            f"the header claims {rows}x{cols}x{samples} = {total:,} pixel values, more than the "
            f"limit of {max_pixels:,}",
            path=path,
            fix="check the file is not damaged; raise the limit (mammo ingest --max-pixels) "
            "only if the image is genuine",
        )


def _to_gray(arr: np.ndarray, info: ImageInfo) -> np.ndarray:
    if arr.ndim == 3:
        if arr.shape[-1] in (3, 4):
            weights = np.array([0.299, 0.587, 0.114])
            grey = arr[..., :3].astype(np.float64) @ weights
            if arr.dtype.kind in "ui":
                info_ = np.iinfo(arr.dtype)
                arr = np.clip(np.rint(grey), info_.min, info_.max).astype(arr.dtype)
            else:
                arr = grey
            info.notes.append("colour image converted to grey")
        elif arr.shape[-1] in (1, 2):
            arr = arr[..., 0]
        else:
            arr = arr[0]
            info.notes.append("multi-page image: first page used")
    return arr


@contextlib.contextmanager
def _quiet_tifffile() -> Iterator[None]:
    """Silence tifffile's log warnings about damaged tags (the error we raise says enough)."""
    logger = logging.getLogger("tifffile")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(level)


def _read_tiff(path: Path, max_pixels: int) -> tuple[np.ndarray, ImageInfo]:
    try:
        with _quiet_tifffile(), tifffile.TiffFile(path) as tif:
            if not tif.pages:
                raise InputFileError("the TIFF has no image", path=path, fix="re-export it")
            page = tif.pages[0]
            shape = tuple(int(s) for s in page.shape)  # type: ignore[union-attr]
            rows, cols = shape[0], shape[1]
            samples = int(np.prod(shape[2:])) if len(shape) > 2 else 1
            check_pixel_count(path, rows, cols, samples, max_pixels)
            arr = page.asarray()  # type: ignore[union-attr]
            photometric = str(getattr(page, "photometric", "")).upper()
            bits = int(getattr(page, "bitspersample", arr.dtype.itemsize * 8))
    except InputFileError:
        raise
    except Exception as exc:  # tifffile raises many types for damaged files
        raise InputFileError(
            f"cannot be read as a TIFF image ({type(exc).__name__}: {exc})",
            path=path,
            fix="check that the file is a complete TIFF; re-export or remove it",
        ) from None
    info = ImageInfo(shape=(rows, cols), bits=bits)
    arr = _to_gray(np.asarray(arr), info)
    if "MINISWHITE" in photometric:
        arr = (np.iinfo(arr.dtype).max - arr).astype(arr.dtype) if arr.dtype.kind == "u" else -arr
        info.notes.append("MINISWHITE TIFF inverted")
    return arr, info


def _read_pil(path: Path, max_pixels: int) -> tuple[np.ndarray, ImageInfo]:
    try:
        with warnings.catch_warnings():
            # our own limit (max_pixels, checked below) replaces PIL's bomb warning
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            return _read_pil_checked(path, max_pixels)
    except Image.DecompressionBombError as exc:
        raise InputFileError(
            f"the header claims an image too large to decode safely ({exc})",
            path=path,
            fix="check the file is not damaged; convert a genuine huge image to TIFF",
        ) from None


def _read_pil_checked(path: Path, max_pixels: int) -> tuple[np.ndarray, ImageInfo]:
    try:
        with Image.open(path) as img:
            cols, rows = img.size
            samples = len(img.getbands())
            check_pixel_count(path, rows, cols, samples, max_pixels)
            mode = img.mode
            img.load()
            if mode in ("I;16", "I;16B", "I;16L"):
                arr = np.asarray(img, dtype=np.uint16)
                bits = 16
            elif mode in ("I", "F"):
                arr = np.asarray(img)
                bits = 32
            elif mode in ("1", "L", "P", "LA", "PA", "RGB", "RGBA", "CMYK", "YCbCr"):
                if mode in ("1", "P", "PA", "CMYK", "YCbCr"):
                    img = img.convert("RGB" if mode != "1" else "L")
                arr = np.asarray(img, dtype=np.uint8)
                bits = 8
            else:
                raise InputFileError(
                    f"unsupported image mode {mode!r}",
                    path=path,
                    fix="convert the image to 8- or 16-bit greyscale PNG or TIFF",
                )
    except InputFileError:
        raise
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise InputFileError(
            f"cannot be read as an image ({type(exc).__name__}: {exc})",
            path=path,
            fix="check that the file is a complete PNG/JPEG; re-export or remove it",
        ) from None
    info = ImageInfo(shape=(rows, cols), bits=bits)
    arr = _to_gray(arr, info)
    if arr.dtype.kind not in "u":
        _refuse_non_finite(arr, path)
        arr = np.clip(arr, 0, 65535).astype(np.uint16)
    return arr, info


def _refuse_non_finite(arr: np.ndarray, path: Path) -> None:
    if arr.dtype.kind in "fc" and not np.all(np.isfinite(arr)):
        raise InputFileError(
            "holds NaN or infinite pixel values",
            path=path,
            fix="re-export the image with finite values (e.g. as 16-bit integer PNG or TIFF)",
        )


def refuse_blank(arr: np.ndarray, path: str | Path) -> None:
    """Refuse a mammogram whose pixels all have one value (all black, all white, empty).

    Masks may be blank; images may not: a blank image holds nothing to segment or classify.

    Raises:
        InputFileError: Naming the file and the value.
    """
    if arr.size == 0 or arr.min() == arr.max():
        value = arr.flat[0] if arr.size else "n/a"
        raise InputFileError(
            f"is blank: every pixel has the value {value}",
            path=path,
            fix="remove the blank image from the source folder, or re-export it",
        )


def read_image(
    path: str | Path, *, max_pixels: int = DEFAULT_MAX_PIXELS
) -> tuple[np.ndarray, ImageInfo]:
    """Read a greyscale image (PNG, TIFF, JPEG, BMP) with its size checked first.

    Args:
        path: The image file.
        max_pixels: Largest accepted ``rows * cols * samples`` (checked from the header).

    Returns:
        The 2-D array (uint8 or uint16 as stored; colour converted to grey) and its
        :class:`ImageInfo`.

    Raises:
        InputFileError: Unreadable, truncated, empty or too large images.
    """
    path = Path(path)
    if not path.is_file():
        raise InputFileError("is not a file", path=path, fix="check the path")
    if path.stat().st_size == 0:
        raise InputFileError("is empty (0 bytes)", path=path, fix="re-copy the file")
    if path.suffix.lower() in _TIFF_SUFFIXES:
        arr, info = _read_tiff(path, max_pixels)
    else:
        arr, info = _read_pil(path, max_pixels)
    _refuse_non_finite(arr, path)
    if arr.ndim != 2:
        raise InputFileError(
            f"has shape {arr.shape}, not a 2-D greyscale image",
            path=path,
            fix="convert it to a single-channel image",
        )
    info.shape = (int(arr.shape[0]), int(arr.shape[1]))
    return arr, info


def to_uint16(arr: np.ndarray) -> tuple[np.ndarray, str | None]:
    """Bring an 8- or 16-bit image to uint16 over the full range, preserving order.

    8-bit values are multiplied by 257 (0 -> 0, 255 -> 65535); 16-bit values are kept.

    Returns:
        The uint16 image and a note describing the conversion (``None`` when none was needed).
    """
    if arr.dtype == np.uint16:
        return arr, None
    if arr.dtype == np.uint8 or arr.dtype == np.bool_:
        scale = 65535 if arr.dtype == np.bool_ else 257
        return arr.astype(np.uint16) * np.uint16(scale), "8-bit image scaled to 16 bits (x257)"
    values = arr.astype(np.float64)
    lo, hi = float(values.min()), float(values.max())
    if hi <= lo:
        return np.zeros(arr.shape, np.uint16), "constant image"
    out = np.rint((values - lo) / (hi - lo) * 65535).astype(np.uint16)
    return out, f"{arr.dtype} image rescaled linearly to 16 bits"


def binarize_mask(arr: np.ndarray) -> np.ndarray:
    """Turn a stored mask (0/1, 0/255, 0/65535, ...) into a 0/1 uint8 array.

    Pixels above half the mask's maximum are foreground; an all-zero mask stays all zero.
    """
    arr = np.asarray(arr)
    if arr.size == 0:
        return arr.astype(np.uint8)
    hi = float(arr.max())
    if hi <= 0:
        return np.zeros(arr.shape, np.uint8)
    return (arr.astype(np.float64) > hi / 2.0).astype(np.uint8)


def read_mask(path: str | Path, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Read a mask image (PNG/TIFF) as a 0/1 uint8 array."""
    arr, _ = read_image(path, max_pixels=max_pixels)
    return binarize_mask(arr)
