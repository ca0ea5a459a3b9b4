"""The truth sidecar: the exact masks of every synthetic mammogram, written beside the CBIS layout.

CBIS-DDSM carries only ROI masks of the abnormalities; a rendered :class:`Phantom` also knows its
breast, pectoral muscle and scanner marks exactly. ``mammo synth`` writes them to a sidecar
folder so that breast segmentation can be trained and scored against truth instead of the
threshold labeller's heuristic masks::

    <out>/truth/truth.json                              index (format, version, files, images)
    <out>/truth/README.txt                              the same, for people
    <out>/truth/<image folder>/breast.png               the breast, skin line included
    <out>/truth/<image folder>/pectoral.png             the pectoral muscle (empty in CC views)
    <out>/truth/<image folder>/marks.png                labels, markers, rulers, film edges
    <out>/truth/<image folder>/mass_<k>.png             the exact body of mass k (k = 1, 2, ...)

``<image folder>`` is the CBIS full-mammogram folder name (``Mass-Training_P_00001_LEFT_CC``);
``k`` is the CSV's ``abnormality id`` (the ``_<k>`` abnormality folder). Every image has a
sidecar folder, normal images (no CSV row) included.

Each mask is an 8-bit greyscale PNG (0 = outside, 255 = inside) at the native geometry of the
full mammogram (same rows, columns and orientation as the DICOM pixel data), lossless, with no
ancillary chunks (no time stamp, no text), so the same seed gives the same bytes.

The CBIS-DDSM importer (:mod:`mammo_common.ingest.cbis_ddsm`) reads ``breast.png`` into the
store's ``breast_mask``; the other files are reference truth for tests and analyses.
"""

from __future__ import annotations

import json
import struct
import zlib
from pathlib import Path

import numpy as np

from mammo_common.synth.cases import ImageSpec
from mammo_common.synth.phantom import Phantom

__all__ = [
    "BREAST_FILE",
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "INDEX_FILE",
    "MARKS_FILE",
    "PECTORAL_FILE",
    "README_FILE",
    "TRUTH_DIR",
    "encode_mask_png",
    "mass_file",
    "truth_files",
    "write_truth",
    "write_truth_index",
]

#: Folder of the sidecar, at the dataset root (beside the case-description CSVs).
TRUTH_DIR = "truth"
#: Machine-readable index; the importer recognises a sidecar by it.
INDEX_FILE = "truth.json"
README_FILE = "README.txt"
#: ``format`` value of the index and its version (bumped on incompatible changes).
FORMAT_NAME = "mammo-synth-truth"
FORMAT_VERSION = 1
BREAST_FILE = "breast.png"
PECTORAL_FILE = "pectoral.png"
MARKS_FILE = "marks.png"

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

FILE_DESCRIPTIONS = {
    BREAST_FILE: "the breast, skin line and pectoral muscle included (the phantom's breast_mask)",
    PECTORAL_FILE: "the pectoral muscle (empty in CC views)",
    MARKS_FILE: "labels, markers, rulers and film edges (all outside the breast)",
    "mass_<k>.png": "the exact body of abnormality k of the CSV (folder <image folder>_<k>)",
}


def mass_file(number: int) -> str:
    """File name of the mask of abnormality ``number`` (1-based), e.g. ``mass_1.png``."""
    return f"mass_{int(number)}.png"


def _chunk(tag: bytes, data: bytes) -> bytes:
    crc = zlib.crc32(tag + data) & 0xFFFFFFFF
    return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", crc)


def encode_mask_png(mask: np.ndarray) -> bytes:
    """Encode a 2-D mask as an 8-bit greyscale PNG with values 0 and 255.

    Only the IHDR, IDAT and IEND chunks are written (no time stamp, gamma or text), and the
    pixel rows are deflated by the standard library's zlib at level 9, so equal masks give
    equal bytes.

    Args:
        mask: 2-D array; non-zero pixels become 255.

    Returns:
        The PNG file's bytes.

    Raises:
        ValueError: ``mask`` is not 2-D or is empty.
    """
    arr = np.asarray(mask)
    if arr.ndim != 2 or arr.size == 0:
        raise ValueError(f"a mask PNG needs a non-empty 2-D array, got shape {arr.shape}")
    rows, cols = arr.shape
    raw = np.zeros((rows, cols + 1), np.uint8)  # filter byte 0 (None) before every row
    raw[:, 1:] = np.where(arr != 0, 255, 0)
    header = struct.pack(">IIBBBBB", cols, rows, 8, 0, 0, 0, 0)  # 8-bit greyscale
    return b"".join(
        (
            _PNG_SIGNATURE,
            _chunk(b"IHDR", header),
            _chunk(b"IDAT", zlib.compress(raw.tobytes(), 9)),
            _chunk(b"IEND", b""),
        )
    )


def truth_files(phantom: Phantom) -> dict[str, np.ndarray]:
    """The sidecar files of one phantom: name -> mask (sorted names)."""
    shape = phantom.image.shape
    files = {
        BREAST_FILE: phantom.breast_mask,
        PECTORAL_FILE: phantom.pectoral_mask,
        MARKS_FILE: (
            phantom.marks_mask if phantom.marks_mask is not None else np.zeros(shape, bool)
        ),
    }
    for k, body in enumerate(phantom.mass_masks, 1):
        files[mass_file(k)] = body
    for name, mask in files.items():
        if np.shape(mask) != shape:
            raise ValueError(
                f"truth mask {name} has shape {np.shape(mask)}, not the image's {shape}"
            )
    return dict(sorted(files.items()))


def write_truth(truth_dir: Path, spec: ImageSpec, phantom: Phantom) -> list[str]:
    """Write the sidecar folder of one image.

    Args:
        truth_dir: The sidecar folder (``<out>/truth``).
        spec: The image (its :attr:`~ImageSpec.name` is the folder name).
        phantom: The rendered image and its truth.

    Returns:
        The file names written, sorted.
    """
    folder = truth_dir / spec.name
    folder.mkdir(parents=True, exist_ok=True)
    files = truth_files(phantom)
    for name, mask in files.items():
        (folder / name).write_bytes(encode_mask_png(mask))
    return list(files)


def write_truth_index(
    truth_dir: Path,
    images: dict[str, list[str]],
    *,
    seed: int,
    size: tuple[int, int],
) -> None:
    """Write ``truth.json`` and ``README.txt`` (no dates or versions: same input, same bytes).

    Args:
        truth_dir: The sidecar folder.
        images: Image folder name -> the files written for it.
        seed: Dataset seed.
        size: (rows, cols) of the full mammograms.
    """
    truth_dir.mkdir(parents=True, exist_ok=True)
    index = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "generator": "mammo synth (mammo_common.synth)",
        "description": (
            "Exact truth masks of the synthetic mammograms, one folder per CBIS full-mammogram "
            "folder name. 8-bit greyscale PNG, 0 = outside, 255 = inside, at the native "
            "geometry of the full mammogram (same rows, columns and orientation as its DICOM "
            "pixel data)."
        ),
        "values": {"outside": 0, "inside": 255},
        "seed": int(seed),
        "image_rows_cols": [int(size[0]), int(size[1])],
        "files": FILE_DESCRIPTIONS,
        "images": {name: sorted(files) for name, files in sorted(images.items())},
    }
    text = json.dumps(index, indent=2, sort_keys=False, ensure_ascii=True) + "\n"
    (truth_dir / INDEX_FILE).write_text(text, encoding="utf-8", newline="\n")
    lines = [
        f"Truth sidecar of a synthetic mammogram dataset ({FORMAT_NAME}, "
        f"format version {FORMAT_VERSION}).",
        "",
        "Written by `mammo synth` beside the CBIS-DDSM layout. The masks are the exact truth "
        "the phantoms were rendered from, not annotations.",
        "",
        "<image folder>/ is the CBIS full-mammogram folder name (Mass-Training_P_00001_LEFT_CC).",
        "Each file is an 8-bit greyscale PNG, 0 = outside, 255 = inside, at the native geometry "
        "of the full mammogram:",
        "",
        *(f"  {name:<14} {what}" for name, what in FILE_DESCRIPTIONS.items()),
        "",
        "`mammo ingest` (CBIS-DDSM importer) reads breast.png into each case's breast_mask;",
        f"{INDEX_FILE} lists every image folder and its files. Real CBIS-DDSM has no sidecar.",
        "",
    ]
    (truth_dir / README_FILE).write_text("\n".join(lines), encoding="utf-8", newline="\n")
