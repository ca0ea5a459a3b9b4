"""Read DICOM mammograms safely with pydicom: checked header, LUTs, MONOCHROME1, 16 bits.

:func:`read_dicom` refuses non-DICOM, truncated, absurdly large, non-finite and blank images
with an :class:`~mammo_common.errors.InputFileError` naming the file and the fix. The image
dimensions are checked from the header before the pixel data is decoded.

Compressed pixel data (RLE, JPEG baseline/extended/lossless, JPEG-LS, JPEG 2000) is decoded by
pydicom's plugins: pylibjpeg with its libjpeg, openjpeg and rle plugins (the ``dicom`` extra of
mammo-common, part of the default install), or python-gdcm. A transfer syntax that no installed
plugin decodes is refused before decoding with a message naming the file, the syntax and the
extra to install (:func:`check_decodable`).

Peak memory stays within a small multiple of the image: the pixel data element is released once
decoded, and the LUTs and the conversion to uint16 run over stripes of rows.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.pixels import apply_modality_lut, apply_voi_lut
from pydicom.pixels.decoders.base import get_decoder
from pydicom.uid import UID

from mammo_common.errors import InputFileError
from mammo_common.imageio import DEFAULT_MAX_PIXELS, check_pixel_count

#: Pixel data larger than this stays on disk until it is decoded (after the header checks).
_DEFER = "512 KB"

_FIX_DAMAGED = "re-download or re-copy the file, or remove it from the source folder"

#: The extra of mammo-common that installs the compressed-pixel-data decoders.
DICOM_EXTRA = "dicom"
#: How to get a decoder for a compressed transfer syntax.
DECODER_FIX = (
    f"install the DICOM decoders: pip install 'mammo-common[{DICOM_EXTRA}]' (pylibjpeg, "
    "pylibjpeg-libjpeg, pylibjpeg-openjpeg, pylibjpeg-rle; python-gdcm also works), or convert "
    "the file to uncompressed DICOM (e.g. gdcmconv --raw IN OUT, or dcmdjpeg IN OUT)"
)
_FIX_CONVERT = (
    "convert the file to uncompressed DICOM (e.g. gdcmconv --raw IN OUT) or to a standard "
    "compressed transfer syntax"
)

#: Rows per stripe when applying LUTs and converting to uint16 (bounds the float64 temporaries).
STRIPE_ROWS = 256


@dataclass
class DicomInfo:
    """What ingest keeps from a DICOM header.

    Attributes:
        shape: (rows, cols) of the image.
        photometric_interpretation: As stored (``MONOCHROME1`` images are returned inverted).
        bits_stored: Bits stored per pixel.
        bits_allocated: Bits allocated per pixel.
        pixel_spacing: Row and column spacing in mm (PixelSpacing, else ImagerPixelSpacing).
        laterality: ``L``/``R`` from ImageLaterality or Laterality, when present.
        view: ViewPosition (e.g. ``CC``, ``MLO``), when present.
        patient_id: PatientID, when present.
        manufacturer: Manufacturer, when present.
        notes: Processing applied (LUTs, inversion, rescaling).
    """

    shape: tuple[int, int]
    photometric_interpretation: str
    bits_stored: int | None
    bits_allocated: int | None
    pixel_spacing: tuple[float, float] | None = None
    laterality: str | None = None
    view: str | None = None
    patient_id: str | None = None
    manufacturer: str | None = None
    notes: list[str] = field(default_factory=list)


def _brief(exc: BaseException, limit: int = 200) -> str:
    """``Type: message`` of an exception, shortened (damaged files make long messages)."""
    text = " ".join(str(exc).split())
    if len(text) > limit:
        text = text[: limit - 3] + "..."
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _looks_like_raw_dicom(path: Path) -> bool:
    """Whether a file without preamble starts like a little-endian DICOM dataset (group 0008)."""
    with path.open("rb") as fh:
        head = fh.read(4)
    return len(head) == 4 and head[:2] in (b"\x08\x00", b"\x02\x00")


def read_header(path: str | Path, *, with_pixels: bool = False) -> Dataset:
    """Read a DICOM file's dataset; large pixel data is deferred (not loaded) by default.

    Args:
        path: The file.
        with_pixels: Keep the pixel data element (deferred when large) instead of stopping
            before it.

    Raises:
        InputFileError: The file is missing, empty, not DICOM or its header is damaged.
    """
    path = Path(path)
    if not path.is_file():
        raise InputFileError("is not a file", path=path, fix="check the path")
    if path.stat().st_size == 0:
        raise InputFileError("is empty (0 bytes)", path=path, fix=_FIX_DAMAGED)
    kwargs = {"stop_before_pixels": not with_pixels, "defer_size": _DEFER}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                return pydicom.dcmread(path, **kwargs)
            except InvalidDicomError:
                if not _looks_like_raw_dicom(path):
                    raise
                return pydicom.dcmread(path, force=True, **kwargs)
    except InvalidDicomError:
        raise InputFileError(
            "is not a DICOM file (no 'DICM' marker and no DICOM header)",
            path=path,
            fix="remove it from the source folder, or convert it to DICOM",
        ) from None
    except Exception as exc:  # pydicom raises many types for damaged headers
        raise InputFileError(
            f"has a damaged DICOM header ({_brief(exc)})",
            path=path,
            fix=_FIX_DAMAGED,
        ) from None


def _int(ds: Dataset, name: str) -> int | None:
    value = ds.get(name)
    try:
        return None if value is None or value == "" else int(value)
    except (TypeError, ValueError):
        return None


def _spacing(ds: Dataset) -> tuple[float, float] | None:
    for name in ("PixelSpacing", "ImagerPixelSpacing"):
        value = ds.get(name)
        try:
            if value is not None and len(value) >= 2:
                row, col = float(value[0]), float(value[1])
                if row > 0 and col > 0 and np.isfinite(row) and np.isfinite(col):
                    return (row, col)
        except (TypeError, ValueError):
            continue
    return None


def _text(ds: Dataset, *names: str) -> str | None:
    for name in names:
        value = ds.get(name)
        if value not in (None, ""):
            return str(value).strip() or None
    return None


def header_info(ds: Dataset, path: str | Path) -> DicomInfo:
    """The :class:`DicomInfo` of a dataset read by :func:`read_header` (no pixels decoded).

    Raises:
        InputFileError: The header has no image size or an attribute cannot be decoded.
    """
    try:
        return _header_info(ds, path)
    except InputFileError:
        raise
    except Exception as exc:  # pydicom decodes elements lazily: damage surfaces here
        raise InputFileError(
            f"has a damaged DICOM header ({_brief(exc)})", path=path, fix=_FIX_DAMAGED
        ) from None


def _header_info(ds: Dataset, path: str | Path) -> DicomInfo:
    rows, cols = _int(ds, "Rows"), _int(ds, "Columns")
    if rows is None or cols is None:
        raise InputFileError(
            "has no Rows/Columns, so it holds no image",
            path=path,
            field="Rows/Columns",
            fix="point ingest at image files only; remove structured reports and the like",
        )
    return DicomInfo(
        shape=(rows, cols),
        photometric_interpretation=str(ds.get("PhotometricInterpretation", "MONOCHROME2")).strip()
        or "MONOCHROME2",
        bits_stored=_int(ds, "BitsStored"),
        bits_allocated=_int(ds, "BitsAllocated"),
        pixel_spacing=_spacing(ds),
        laterality=_text(ds, "ImageLaterality", "Laterality"),
        view=_text(ds, "ViewPosition"),
        patient_id=_text(ds, "PatientID"),
        manufacturer=_text(ds, "Manufacturer"),
    )


def check_dimensions(ds: Dataset, path: str | Path, max_pixels: int) -> None:
    """Refuse absurd Rows x Columns x SamplesPerPixel x frames before decoding pixels."""
    rows, cols = _int(ds, "Rows") or 0, _int(ds, "Columns") or 0
    samples = _int(ds, "SamplesPerPixel") or 1
    frames = _int(ds, "NumberOfFrames") or 1
    bits = _int(ds, "BitsAllocated") or 16
    if bits not in (1, 8, 16, 32, 64):
        raise InputFileError(
            f"BitsAllocated is {bits}, not 1, 8, 16, 32 or 64",
            path=path,
            field="BitsAllocated",
            fix=_FIX_DAMAGED,
        )
    check_pixel_count(Path(path), rows, cols, samples * max(frames, 1), max_pixels)


def transfer_syntax(ds: Dataset) -> UID | None:
    """The dataset's Transfer Syntax UID from its file meta information (``None`` if absent)."""
    meta = getattr(ds, "file_meta", None)
    value = meta.get("TransferSyntaxUID") if meta is not None else None
    return UID(str(value).strip()) if value else None


def syntax_label(uid: UID) -> str:
    """``Name (UID)`` of a transfer syntax, or just the UID when pydicom does not know it."""
    return f"{uid.name} ({uid})" if uid.name != str(uid) else str(uid)


def check_decodable(ds: Dataset, path: str | Path) -> None:
    """Refuse, before decoding, pixel data whose transfer syntax no installed plugin decodes.

    Raises:
        InputFileError: No decoder exists for the syntax (e.g. MPEG video), or its decoders are
            not installed; the message names the file, the syntax and the extra to install.
    """
    uid = transfer_syntax(ds)
    if uid is None:
        return
    try:
        decoder = get_decoder(uid)
    except NotImplementedError:
        raise InputFileError(
            f"its pixel data uses the transfer syntax {syntax_label(uid)}, which no DICOM "
            "decoder supports",
            path=path,
            field="TransferSyntaxUID",
            fix=_FIX_CONVERT,
        ) from None
    if not decoder.is_available:
        missing = "; ".join(decoder.missing_dependencies) or "a decoder plugin"
        raise InputFileError(
            f"its pixel data is compressed as {syntax_label(uid)} and no installed decoder "
            f"reads it (missing: {missing})",
            path=path,
            field="TransferSyntaxUID",
            fix=DECODER_FIX,
        )


def _decode(ds: Dataset, path: Path) -> np.ndarray:
    check_decodable(ds, path)
    uid = transfer_syntax(ds)
    compressed = uid is not None and uid.is_transfer_syntax and uid.is_compressed
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            arr = ds.pixel_array
    except Exception as exc:  # truncated data, unknown compression, ...
        text = str(exc).lower()
        short = any(w in text for w in ("length", "truncat", "less than expected", "shorter"))
        what = f"{syntax_label(uid)} pixel data" if compressed and uid is not None else "pixel data"
        problem = (
            f"is truncated: its {what} is shorter than the header promises"
            if short or isinstance(exc, EOFError)
            else f"has {what} that cannot be decoded ({_brief(exc)})"
        )
        fix = _FIX_DAMAGED
        if compressed:
            fix = f"{_FIX_DAMAGED}; if the file is intact, {DECODER_FIX}"
        raise InputFileError(problem, path=path, field="PixelData", fix=fix) from None
    return np.asarray(arr)


def _frame_and_grey(arr: np.ndarray, ds: Dataset, notes: list[str]) -> np.ndarray:
    samples = _int(ds, "SamplesPerPixel") or 1
    frames = _int(ds, "NumberOfFrames") or 1
    if frames > 1 and arr.ndim >= 3:
        arr = arr[0]
        notes.append(f"multi-frame DICOM ({frames} frames): first frame used")
    if samples > 1 and arr.ndim == 3:
        arr = arr[..., :3].astype(np.float64) @ np.array([0.299, 0.587, 0.114])
        notes.append("colour DICOM converted to grey")
    return arr


def _stripes(rows: int) -> list[slice]:
    return [slice(r, min(rows, r + STRIPE_ROWS)) for r in range(0, rows, STRIPE_ROWS)]


class _Luts:
    """The Modality LUT (rescale or LUT) and first VOI LUT (window or LUT) of a dataset.

    Applied stripe by stripe (both are pointwise), so that their float64 results never exist
    for the whole image at once.
    """

    def __init__(self, ds: Dataset, path: Path, notes: list[str], enabled: bool):
        self.ds, self.path = ds, path
        self.modality = self.voi = False
        if not enabled:
            return
        try:
            self.modality = (
                "ModalityLUTSequence" in ds or "RescaleSlope" in ds or "RescaleIntercept" in ds
            )
            if self.modality:
                slope = float(ds.get("RescaleSlope", 1) or 1)
                icpt = float(ds.get("RescaleIntercept", 0) or 0)
                if "ModalityLUTSequence" in ds or slope != 1 or icpt != 0:
                    notes.append("modality LUT applied")
            self.voi = "VOILUTSequence" in ds or "WindowCenter" in ds
        except Exception as exc:  # malformed LUT attributes raise many types
            raise self._error(exc) from None
        if self.voi:
            notes.append("VOI LUT applied (first window/LUT)")

    @property
    def active(self) -> bool:
        return self.modality or self.voi

    def _error(self, exc: BaseException) -> InputFileError:
        return InputFileError(
            f"its modality/VOI LUT cannot be applied ({_brief(exc)})",
            path=self.path,
            field="RescaleSlope/WindowCenter/LUT",
            fix="correct or remove the malformed LUT attributes",
        )

    def __call__(self, values: np.ndarray) -> np.ndarray:
        if not self.active:
            return values
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                if self.modality:
                    values = apply_modality_lut(values, self.ds)
                if self.voi:
                    values = apply_voi_lut(values, self.ds, index=0)
        except Exception as exc:  # malformed LUT attributes raise many types
            raise self._error(exc) from None
        return values


def _range(arr: np.ndarray, luts: _Luts, path: Path) -> tuple[np.generic, np.generic, bool]:
    """Minimum, maximum and integrality of the LUT-applied values (refusing NaN/inf)."""
    lo = hi = None
    integral = True
    for rows in _stripes(arr.shape[0]):
        values = luts(arr[rows])
        if values.dtype.kind == "f" and not np.all(np.isfinite(values)):
            raise InputFileError(
                "holds NaN or infinite pixel values",
                path=path,
                field="PixelData",
                fix=_FIX_DAMAGED,
            )
        s_lo, s_hi = values.min(), values.max()
        lo = s_lo if lo is None or s_lo < lo else lo
        hi = s_hi if hi is None or s_hi > hi else hi
        if integral and values.dtype.kind not in "ui":
            integral = bool(np.all(values == np.round(values)))
    assert lo is not None and hi is not None
    return lo, hi, integral


def _to_uint16(
    arr: np.ndarray, luts: _Luts, path: Path, nominal_max: int, notes: list[str]
) -> tuple[np.ndarray, int]:
    """The LUT-applied image as uint16: integer values that fit 16 bits are kept; otherwise
    min..max is rescaled linearly to 0..65535 (order preserved).

    Returns:
        The image and the largest value its range allows (for MONOCHROME1 inversion).

    Raises:
        InputFileError: NaN/inf values, or a blank image (one value everywhere).
    """
    if arr.size == 0:
        raise InputFileError(
            "is blank: every pixel has the value n/a", path=path, field="PixelData",
            fix="remove the blank image from the source folder",
        )
    lo, hi, integral = _range(arr, luts, path)
    if lo == hi:
        raise InputFileError(
            f"is blank: every pixel has the value {lo}",
            path=path,
            field="PixelData",
            fix="remove the blank image from the source folder",
        )
    flo, fhi = float(lo), float(hi)
    keep = flo >= 0 and fhi <= 65535 and (integral or fhi - flo >= 256)
    out = np.empty(arr.shape, np.uint16)
    for rows in _stripes(arr.shape[0]):
        values = luts(arr[rows])
        if keep:
            out[rows] = values if values.dtype.kind in "ui" else np.rint(values)
        else:
            out[rows] = np.rint((values.astype(np.float64) - flo) / (fhi - flo) * 65535.0)
    if keep:
        return out, max(nominal_max, int(np.ceil(fhi)))
    notes.append(f"values {flo:g}..{fhi:g} rescaled linearly to 0..65535")
    return out, 65535


def read_dicom(
    path: str | Path,
    *,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    apply_luts: bool = True,
) -> tuple[np.ndarray, DicomInfo]:
    """Read a DICOM image as uint16 with LUTs applied and MONOCHROME1 inverted.

    Steps: read the header (pixel data deferred), refuse absurd dimensions and transfer syntaxes
    without an installed decoder, decode, apply the Modality LUT (rescale slope/intercept or LUT)
    and the VOI LUT (window or LUT) when present, refuse NaN/inf and constant images, keep 16-bit
    integer values as they are (otherwise rescale linearly to 0..65535, preserving order), and
    invert MONOCHROME1 so that dense tissue is bright.

    Args:
        path: The DICOM file.
        max_pixels: Largest accepted ``Rows * Columns * SamplesPerPixel * frames``.
        apply_luts: Apply the modality and VOI LUTs and MONOCHROME1 inversion (turn off for
            masks, whose stored values are labels).

    Returns:
        The 2-D uint16 image (dense tissue bright) and its :class:`DicomInfo`.

    Raises:
        InputFileError: Naming the file, the problem and the fix (also for damage that pydicom
            only notices while decoding an attribute).
    """
    path = Path(path)
    ds = read_header(path, with_pixels=True)
    return image_from_dataset(ds, path, max_pixels=max_pixels, apply_luts=apply_luts)


def image_from_dataset(
    ds: Dataset,
    path: str | Path,
    *,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    apply_luts: bool = True,
) -> tuple[np.ndarray, DicomInfo]:
    """:func:`read_dicom` for a dataset already read with ``read_header(path, with_pixels=True)``.

    Lets a caller look at the header first (modality, SOP class, frames) and decode only the
    files it keeps. The dataset's pixel data element is released once decoded.

    Raises:
        InputFileError: As :func:`read_dicom`.
    """
    path = Path(path)
    try:
        return _image_from_dataset(ds, path, max_pixels, apply_luts)
    except InputFileError:
        raise
    except Exception as exc:  # pydicom decodes lazily: a damaged element fails on first use
        raise InputFileError(
            f"cannot be read as a DICOM image ({_brief(exc)})", path=path, fix=_FIX_DAMAGED
        ) from None


def _image_from_dataset(
    ds: Dataset, path: Path, max_pixels: int, apply_luts: bool
) -> tuple[np.ndarray, DicomInfo]:
    info = header_info(ds, path)
    check_dimensions(ds, path, max_pixels)
    if "PixelData" not in ds and "FloatPixelData" not in ds and "DoubleFloatPixelData" not in ds:
        raise InputFileError(
            "has no pixel data", path=path, field="PixelData", fix="remove it from the source"
        )
    arr = _frame_and_grey(_decode(ds, path), ds, info.notes)
    for name in ("PixelData", "FloatPixelData", "DoubleFloatPixelData"):
        if name in ds:  # the encoded bytes are no longer needed: free them now
            del ds[name]
    if arr.ndim != 2:
        raise InputFileError(
            f"decoded to shape {arr.shape}, not a 2-D image", path=path, fix=_FIX_DAMAGED
        )
    luts = _Luts(ds, path, info.notes, apply_luts)
    bits = info.bits_stored if info.bits_stored and 1 <= info.bits_stored <= 16 else 16
    image, nominal_max = _to_uint16(arr, luts, path, (1 << bits) - 1, info.notes)
    del arr
    if apply_luts and info.photometric_interpretation.upper() == "MONOCHROME1":
        # every value is <= nominal_max, so this cannot wrap around
        np.subtract(np.uint16(nominal_max), image, out=image)
        info.notes.append("MONOCHROME1 inverted so that dense tissue is bright")
    info.shape = (int(image.shape[0]), int(image.shape[1]))
    return image, info
