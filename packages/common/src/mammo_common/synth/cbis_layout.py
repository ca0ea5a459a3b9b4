"""Write rendered phantoms in the CBIS-DDSM layout: DICOM tree and case-description CSVs.

Layout (paths in the CSVs are relative to the ``CBIS-DDSM`` folder, as in the TCIA download)::

    <out>/mass_case_description_train_set.csv
    <out>/mass_case_description_test_set.csv
    <out>/CBIS-DDSM/Mass-Training_P_00001_LEFT_CC/<study UID>/<series UID>/1-1.dcm
    <out>/CBIS-DDSM/Mass-Training_P_00001_LEFT_CC_1/<study UID>/<crop series UID>/1-1.dcm
    <out>/CBIS-DDSM/Mass-Training_P_00001_LEFT_CC_1/<study UID>/<mask series UID>/1-1.dcm
    <out>/truth/Mass-Training_P_00001_LEFT_CC/breast.png      (exact truth; see synth.truth)

Images without a mass have a full-mammogram folder but no CSV row (CBIS-DDSM itself holds no
normal images); the CBIS importer takes such unlisted full mammograms as abnormality "none".

Everything is deterministic: UIDs are ``2.25.<hash of seed and names>``, no dates or times are
written, files are written in sorted order, and the defects below follow fixed index rules.

Known CBIS-DDSM defects reproduced when ``defects`` is on:

* every 7th full mammogram (index 3, 10, ...) is ``000000.dcm`` on disk while the CSV says
  ``1-1.dcm``; every 8th ROI mask (index 5, 13, ...) likewise;
* CSV rows 1, 5, 9, ... have the ROI-mask and cropped-image columns swapped;
* CSV rows 0, 5, 10, ... end the ROI-mask path with a newline, rows 2, 8, 14, ... the cropped path;
* every 9th image (index 4, 13, ...) is stored MONOCHROME1 (inverted values);
* every 5th image (index 2, 7, ...) carries a VOI LUT window covering its value range and a
  modality rescale (slope 1, intercept -1000 over values stored 1000 higher).
"""

from __future__ import annotations

import csv
import io
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import FileDataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian

from mammo_common.synth.cases import ImageSpec, LesionSpec
from mammo_common.synth.phantom import Phantom

#: SOP classes: Digital Mammography X-Ray Image Storage - For Presentation; Secondary Capture.
MAMMO_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.1.2"
SECONDARY_CAPTURE_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.7"
#: Manufacturer written into every synthetic DICOM; the importer marks such data "synthetic".
SYNTH_MANUFACTURER = "mammo synth"

MASS_COLUMNS = (
    "patient_id",
    "breast_density",
    "left or right breast",
    "image view",
    "abnormality id",
    "abnormality type",
    "mass shape",
    "mass margins",
    "assessment",
    "pathology",
    "subtlety",
    "image file path",
    "cropped image file path",
    "ROI mask file path",
)

@dataclass
class Uids:
    """Deterministic UIDs of one CBIS folder (study, series and instances)."""

    study: str
    series: str
    instance: str
    series2: str = ""
    instance2: str = ""


_UID_NAMESPACE = uuid.UUID("6f1c1f4e-3d0b-5a43-9a53-6d616d6d6f00")


def uid(seed: int, *parts: object) -> str:
    """A deterministic DICOM UID ``2.25.<UUID as integer>`` (UUID v5 of the seed and names).

    ``pydicom.uid.generate_uid(prefix=None, ...)`` ignores its entropy sources (it draws a
    random UUID), so the name-based UUID is built here.
    """
    name = "/".join(["mammo-synth", str(seed), *map(str, parts)])
    return f"2.25.{uuid.uuid5(_UID_NAMESPACE, name).int}"


def folder_uids(seed: int, folder: str) -> Uids:
    """The UIDs of one CBIS folder."""
    return Uids(
        study=uid(seed, folder, "study"),
        series=uid(seed, folder, "series"),
        instance=uid(seed, folder, "instance"),
        series2=uid(seed, folder, "series2"),
        instance2=uid(seed, folder, "instance2"),
    )


def to_uint16(image: np.ndarray) -> np.ndarray:
    """Map phantom intensities 0..1 to stored values 1500..63500 (MONOCHROME2)."""
    return np.rint(1500 + np.clip(image, 0, 1) * 62000).astype(np.uint16)


def write_dicom(
    path: Path,
    pixels: np.ndarray,
    *,
    seed: int,
    spec: ImageSpec,
    uids: tuple[str, str, str],
    sop_class: str,
    description: str,
    spacing_mm: float,
    photometric: str = "MONOCHROME2",
    window: tuple[float, float] | None = None,
    rescale: tuple[float, float] | None = None,
) -> None:
    """Write one uncompressed little-endian DICOM file (no dates, fixed UIDs)."""
    study, series, instance = uids
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = instance
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = uid(0, "implementation")
    meta.ImplementationVersionName = "MAMMO_SYNTH_1"
    ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = instance
    ds.StudyInstanceUID = study
    ds.SeriesInstanceUID = series
    ds.Modality = "MG"
    ds.Manufacturer = SYNTH_MANUFACTURER
    ds.PatientID = spec.patient_id
    ds.PatientName = spec.patient_id
    ds.StudyID = f"{seed}"
    ds.SeriesDescription = description
    ds.SeriesNumber = 1
    ds.InstanceNumber = 1
    ds.BodyPartExamined = "BREAST"
    ds.Laterality = spec.side[0]
    ds.ImageLaterality = spec.side[0]
    ds.ViewPosition = spec.view
    ds.PixelSpacing = [f"{spacing_mm:.6f}", f"{spacing_mm:.6f}"]
    ds.BurnedInAnnotation = "YES" if description == "full mammogram" else "NO"
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = photometric
    ds.Rows, ds.Columns = int(pixels.shape[0]), int(pixels.shape[1])
    bits = pixels.dtype.itemsize * 8
    ds.BitsAllocated = bits
    ds.BitsStored = bits
    ds.HighBit = bits - 1
    ds.PixelRepresentation = 0
    if rescale is not None:
        ds.RescaleIntercept = f"{rescale[0]:g}"
        ds.RescaleSlope = f"{rescale[1]:g}"
        ds.RescaleType = "US"
    if window is not None:
        ds.WindowCenter = f"{window[0]:g}"
        ds.WindowWidth = f"{window[1]:g}"
        ds.VOILUTFunction = "LINEAR"
    ds.PixelData = np.ascontiguousarray(pixels).astype(pixels.dtype.newbyteorder("<")).tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    pydicom.dcmwrite(path, ds, enforce_file_format=True)


def _bbox(mask: np.ndarray, pad: int, shape: tuple[int, int]) -> tuple[int, int, int, int]:
    ys, xs = np.nonzero(mask)
    return (
        max(0, int(ys.min()) - pad),
        max(0, int(xs.min()) - pad),
        min(shape[0], int(ys.max()) + 1 + pad),
        min(shape[1], int(xs.max()) + 1 + pad),
    )


@dataclass
class Counters:
    """Running indices that decide which deterministic defects an item gets."""

    image: int = 0
    roi: int = 0


def write_image(
    cbis: Path,
    spec: ImageSpec,
    phantom: Phantom,
    *,
    seed: int,
    defects: bool,
    counters: Counters,
) -> list[dict[str, str]]:
    """Write one mammogram (and its abnormality folders) and return its CSV rows."""
    spacing = phantom.spacing_mm
    k = counters.image
    counters.image += 1
    stored = to_uint16(phantom.image)
    photometric, window, rescale = "MONOCHROME2", None, None
    if defects and k % 9 == 4:
        photometric = "MONOCHROME1"
        stored = (65535 - stored.astype(np.int64)).astype(np.uint16)
    elif defects and k % 5 == 2:
        lo, hi = int(stored.min()), int(stored.max())
        stored = (stored.astype(np.int64) + 1000).clip(0, 65535).astype(np.uint16)
        rescale = (-1000.0, 1.0)
        window = ((lo + hi) / 2.0 + 0.5, float(hi - lo + 1))
    ids = folder_uids(seed, spec.name)
    rel_dir = f"{spec.name}/{ids.study}/{ids.series}"
    disk_name = "000000.dcm" if (defects and k % 7 == 3 and spec.lesions) else "1-1.dcm"
    write_dicom(
        cbis / rel_dir / disk_name,
        stored,
        seed=seed,
        spec=spec,
        uids=(ids.study, ids.series, ids.instance),
        sop_class=MAMMO_SOP_CLASS,
        description="full mammogram",
        spacing_mm=spacing,
        photometric=photometric,
        window=window,
        rescale=rescale,
    )
    image_path = f"{rel_dir}/1-1.dcm"
    rows: list[dict[str, str]] = []
    full = to_uint16(phantom.image)
    for j, (lesion, body) in enumerate(zip(spec.lesions, phantom.mass_masks, strict=True), 1):
        rows.append(
            _write_abnormality(cbis, spec, lesion, body, j, full, image_path, seed, spacing,
                               defects, counters)
        )
    return rows


def _write_abnormality(
    cbis: Path,
    spec: ImageSpec,
    lesion: LesionSpec,
    body: np.ndarray,
    number: int,
    full: np.ndarray,
    image_path: str,
    seed: int,
    spacing: float,
    defects: bool,
    counters: Counters,
) -> dict[str, str]:
    folder = f"{spec.name}_{number}"
    ids = folder_uids(seed, folder)
    r = counters.roi
    counters.roi += 1
    y0, x0, y1, x1 = _bbox(body, max(2, int(0.15 * max(body.shape) / 10)), body.shape)
    crop_dir = f"{folder}/{ids.study}/{ids.series}"
    mask_dir = f"{folder}/{ids.study}/{ids.series2}"
    write_dicom(
        cbis / crop_dir / "1-1.dcm",
        np.ascontiguousarray(full[y0:y1, x0:x1]),
        seed=seed,
        spec=spec,
        uids=(ids.study, ids.series, ids.instance),
        sop_class=SECONDARY_CAPTURE_SOP_CLASS,
        description="cropped images",
        spacing_mm=spacing,
    )
    mask_name = "000001.dcm" if (defects and r % 8 == 5) else "1-1.dcm"
    write_dicom(
        cbis / mask_dir / mask_name,
        (body.astype(np.uint8) * 255),
        seed=seed,
        spec=spec,
        uids=(ids.study, ids.series2, ids.instance2),
        sop_class=SECONDARY_CAPTURE_SOP_CLASS,
        description="ROI mask images",
        spacing_mm=spacing,
    )
    crop_path, mask_path = f"{crop_dir}/1-1.dcm", f"{mask_dir}/1-1.dcm"
    if defects and r % 4 == 1:
        crop_path, mask_path = mask_path, crop_path
    if defects and r % 5 == 0:
        mask_path += "\n"
    if defects and r % 6 == 2:
        crop_path += "\n"
    return {
        "patient_id": spec.patient_id,
        "breast_density": str(spec.density),
        "left or right breast": spec.side,
        "image view": spec.view,
        "abnormality id": str(number),
        "abnormality type": "mass",
        "mass shape": lesion.shape,
        "mass margins": lesion.margins,
        "assessment": str(lesion.assessment),
        "pathology": lesion.pathology,
        "subtlety": str(lesion.subtlety),
        "image file path": image_path,
        "cropped image file path": crop_path,
        "ROI mask file path": mask_path,
    }


def write_csv(path: Path, rows: list[dict[str, str]]) -> None:
    """Write a mass case-description CSV (comma separated, header, ``\\n`` line ends)."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(MASS_COLUMNS), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    path.write_text(buf.getvalue(), encoding="utf-8", newline="")
