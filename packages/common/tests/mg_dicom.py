"""Write DICOM mammograms for the ``images`` ingest and compressed-pixel-data tests.

Everything is made here: a mammogram-like 16-bit image, an MG DICOM with any header attributes,
compressed copies through pydicom's own encoders (``Dataset.compress``) and, since no Python
package encodes it, a small JPEG Lossless (process 14, selection value 1) encoder written from
ITU-T T.81 annex H, so that the most common lossless syntax of real mammograms is tested too.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileDataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian, JPEGLosslessSV1

MG_PRESENTATION = "1.2.840.10008.5.1.4.1.1.1.2"
MG_PROCESSING = "1.2.840.10008.5.1.4.1.1.1.2.1"
SECONDARY_CAPTURE = "1.2.840.10008.5.1.4.1.1.7"
CT_IMAGE = "1.2.840.10008.5.1.4.1.1.2"


def mammo_like(shape: tuple[int, int] = (96, 64), bits: int = 16, seed: int = 0) -> np.ndarray:
    """A uint16 image with a breast-like bright region, texture and noise over ``bits`` bits."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0 : shape[0], 0 : shape[1]]
    breast = ((yy - shape[0] / 2) / (shape[0] * 0.45)) ** 2 + (xx / (shape[1] * 0.8)) ** 2 < 1
    top = (1 << bits) - 1
    texture = np.sin(yy / 3.0) * np.cos(xx / 5.0) * top * 0.1
    img = np.where(breast, top * 0.55 + texture, top * 0.05) + rng.normal(0, top * 0.02, shape)
    return np.clip(np.rint(img), 0, top).astype(np.uint16)


def uid_for(text: str) -> str:
    """A deterministic UID (``2.25.<uuid5>``) for a name."""
    return f"2.25.{uuid.uuid5(uuid.NAMESPACE_URL, text).int}"


def view_code(value: str, meaning: str, scheme: str = "SCT") -> Sequence:
    """A one-item ViewCodeSequence."""
    item = Dataset()
    item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = value, scheme, meaning
    return Sequence([item])


def write_mg(
    path: Path,
    pixels: np.ndarray,
    *,
    bits_stored: int = 16,
    sop_class: str = MG_PRESENTATION,
    photometric: str = "MONOCHROME2",
    preamble: bool = True,
    compress: str | None = None,
    frames: int = 1,
    **attrs: object,
) -> Path:
    """Write a DICOM image; ``attrs`` are DICOM keywords (``None`` leaves one out).

    Defaults: Modality MG, PatientID, StudyInstanceUID, SeriesInstanceUID, SOPInstanceUID from
    the file name. ``compress`` is a transfer syntax UID for :meth:`Dataset.compress`.
    ``frames`` > 1 repeats the image as a multi-frame image.
    """
    uid = uid_for(path.as_posix())
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128 if preamble else None)
    defaults: dict[str, object] = {
        "SOPClassUID": sop_class,
        "SOPInstanceUID": uid,
        "StudyInstanceUID": uid_for("study"),
        "SeriesInstanceUID": uid_for("series"),
        "Modality": "MG",
        "PatientID": "PAT1",
    }
    for key, value in {**defaults, **attrs}.items():
        if value is not None:
            setattr(ds, key, value)
    samples = 3 if pixels.ndim == 3 else 1
    ds.Rows, ds.Columns = pixels.shape[:2]
    ds.SamplesPerPixel = samples
    ds.PhotometricInterpretation = photometric
    if samples == 3:
        ds.PlanarConfiguration = 0
    bits = pixels.dtype.itemsize * 8
    ds.BitsAllocated = bits
    ds.BitsStored = min(bits_stored, bits)
    ds.HighBit = ds.BitsStored - 1
    ds.PixelRepresentation = 0
    data = np.ascontiguousarray(pixels)
    if frames > 1:
        ds.NumberOfFrames = frames
        data = np.stack([data] * frames)
    ds.PixelData = data.tobytes()
    if compress is not None:
        ds.compress(compress)
    path.parent.mkdir(parents=True, exist_ok=True)
    pydicom.dcmwrite(path, ds, enforce_file_format=preamble)
    return path


# ----------------------------------------------------------------- JPEG Lossless, process 14


class _Bits:
    def __init__(self) -> None:
        self.out = bytearray()
        self.acc = 0
        self.n = 0

    def put(self, value: int, length: int) -> None:
        for i in range(length - 1, -1, -1):
            self.acc = (self.acc << 1) | ((value >> i) & 1)
            self.n += 1
            if self.n == 8:
                self.out.append(self.acc)
                if self.acc == 0xFF:
                    self.out.append(0)  # byte stuffing
                self.acc, self.n = 0, 0

    def flush(self) -> bytes:
        while self.n:
            self.put(1, 1)  # pad with ones
        return bytes(self.out)


def jpeg_lossless_sv1(pixels: np.ndarray, precision: int) -> bytes:
    """Encode a 2-D image as a JPEG Lossless codestream, predictor 1 (left), point transform 0.

    One Huffman table gives every difference category 0..16 a 5-bit code (valid: no code is all
    ones). The decoder must reproduce ``pixels`` exactly.
    """
    rows, cols = pixels.shape
    x = pixels.astype(np.int64)
    pred = np.empty_like(x)
    pred[0, 0] = 1 << (precision - 1)
    pred[0, 1:] = x[0, :-1]
    pred[1:, 0] = x[:-1, 0]
    pred[1:, 1:] = x[1:, :-1]
    diff = (x - pred) & 0xFFFF
    diff = np.where(diff >= 0x8000, diff - 0x10000, diff)
    bits = _Bits()
    for d in diff.ravel().tolist():
        if d == -32768:
            bits.put(16, 5)  # category 16: no additional bits
            continue
        size = abs(d).bit_length()
        bits.put(size, 5)
        if size:
            bits.put(d if d > 0 else d - 1 + (1 << size), size)
    scan = bits.flush()
    counts = [0, 0, 0, 0, 17] + [0] * 11
    dht = bytes([0x00, *counts, *range(17)])
    sof = bytes([precision, rows >> 8, rows & 255, cols >> 8, cols & 255, 1, 1, 0x11, 0])
    sos = bytes([1, 1, 0x00, 1, 0, 0])

    def segment(marker: int, body: bytes) -> bytes:
        return bytes([0xFF, marker]) + (len(body) + 2).to_bytes(2, "big") + body

    return (
        b"\xff\xd8" + segment(0xC4, dht) + segment(0xC3, sof) + segment(0xDA, sos) + scan
        + b"\xff\xd9"
    )


def to_jpeg_lossless(path: Path, pixels: np.ndarray, bits_stored: int, **attrs: object) -> Path:
    """Write ``pixels`` as a JPEG Lossless SV1 DICOM file."""
    write_mg(path, pixels, bits_stored=bits_stored, **attrs)
    ds = pydicom.dcmread(path)
    ds.PixelData = encapsulate([jpeg_lossless_sv1(pixels, bits_stored)])
    ds["PixelData"].VR = "OB"
    ds.file_meta.TransferSyntaxUID = JPEGLosslessSV1
    ds.save_as(path, enforce_file_format=True)
    return path

