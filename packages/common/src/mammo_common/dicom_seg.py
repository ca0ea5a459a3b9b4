"""DICOM Segmentation (SEG) output: the breast and each mass as segments a DICOM viewer reads.

:func:`write_seg` turns the cascade's native-resolution masks for one DICOM mammogram into a
DICOM Segmentation object (highdicom) that references the source image's study, series and SOP
instance, with the same rows and columns as the source pixel data:

- segment 1, "Breast": category SCT 91723000 "Anatomical Structure", type SCT 76752008
  "Breast";
- segments 2.., "Mass 1", "Mass 2", ...: category SCT 49755003 "Morphologically Abnormal
  Structure", type SCT 4147007 "Mass", anatomic region "Breast" with the image laterality as
  modifier, the malignancy probability (if given) in the segment description;
- with ``fractional=True``, a last segment "Mass probability": the mass probability map as a
  FRACTIONAL (probability) segment, 8 bits (0..255 for 0..1); the other segments are then
  stored as fractional segments holding 0 or 1.

A mammogram is a projection image: it has no Image Position/Orientation (Patient), so the SEG
has no plane positions or orientation either; its frames correspond pixel for pixel to the
source image (Derivation Image Sequence, Spatial Locations Preserved YES). highdicom would copy
the source's Pixel Spacing into the SEG's Pixel Measures without a Slice Thickness (which a
projection image does not have); that is valid DICOM, but highdicom itself (0.28) then refuses
to read the file back, so :func:`write_seg` leaves such a spacing-only Pixel Measures out. The
spacing stays available from the referenced source image.

:func:`read_seg` reads a SEG back into masks (with highdicom), for tests and users.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from pydicom.dataset import Dataset
from pydicom.uid import (
    UID,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGLSLossless,
    RLELossless,
)

from mammo_common import __version__
from mammo_common.errors import InputFileError, MammoError
from mammo_common.store.atomic import atomic_path

__all__ = [
    "BREAST_LABEL",
    "MASS_PROBABILITY_LABEL",
    "SegContents",
    "SegSegment",
    "mass_label",
    "read_seg",
    "write_seg",
]

#: Label of the breast segment (always segment 1).
BREAST_LABEL = "Breast"
#: Label of the fractional mass-probability segment (last segment of a FRACTIONAL SEG).
MASS_PROBABILITY_LABEL = "Mass probability"
#: Equipment written into every SEG (the software that made it).
MANUFACTURER = "mammo"
MODEL_NAME = "mammo-common"
DEVICE_SERIAL_NUMBER = "0"
#: Default series number of a SEG series (far from the source's usual 1..100).
DEFAULT_SERIES_NUMBER = 900
#: Highest stored fractional value (8-bit fractional segments: probability = value / 255).
MAX_FRACTIONAL_VALUE = 255

_MALIGNANCY_RE = re.compile(r"malignancy probability ([0-9.]+)")
# Type 2 attributes highdicom copies from the source; anonymised files sometimes lack them.
_TYPE2_COPIED = (
    "PatientID",
    "PatientName",
    "PatientBirthDate",
    "PatientSex",
    "AccessionNumber",
    "StudyID",
    "StudyDate",
    "StudyTime",
    "ReferringPhysicianName",
)
_REQUIRED_UIDS = ("SOPClassUID", "SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID")
_PIXEL_DATA_TAGS = (0x7FE00010, 0x7FE00008, 0x7FE00009)
_FIX_MASK = "pass a mask at the source image's native resolution (Rows x Columns)"


def mass_label(index: int) -> str:
    """The segment label of mass ``index`` (0-based): ``"Mass 1"``, ``"Mass 2"``, ..."""
    return f"Mass {index + 1}"


@dataclass
class SegSegment:
    """One segment of a SEG read back by :func:`read_seg`.

    Attributes:
        number: Segment number (1-based).
        label: Segment Label.
        description: Segment Description, if any.
        category: Segmented Property Category as (scheme, value, meaning).
        property_type: Segmented Property Type as (scheme, value, meaning).
        pixels: The segment at the source's rows x columns: bool for a BINARY SEG, float32 in
            [0, 1] for a FRACTIONAL one.
    """

    number: int
    label: str
    description: str | None
    category: tuple[str, str, str]
    property_type: tuple[str, str, str]
    pixels: np.ndarray

    @property
    def malignancy_probability(self) -> float | None:
        """The malignancy probability written in the description by :func:`write_seg`."""
        match = _MALIGNANCY_RE.search(self.description or "")
        return float(match.group(1)) if match else None


@dataclass
class SegContents:
    """A SEG read back by :func:`read_seg`: its references and its segments.

    Attributes:
        path: The SEG file.
        segmentation_type: ``"BINARY"`` or ``"FRACTIONAL"``.
        study_instance_uid: Study Instance UID of the SEG (the source's study).
        referenced_series_instance_uid: Series Instance UID of the source image.
        referenced_sop_instance_uid: SOP Instance UID of the source image.
        rows: Rows of the frames (the source's).
        columns: Columns of the frames (the source's).
        segments: Every segment in segment-number order.
    """

    path: Path
    segmentation_type: str
    study_instance_uid: str
    referenced_series_instance_uid: str
    referenced_sop_instance_uid: str
    rows: int
    columns: int
    segments: list[SegSegment] = field(default_factory=list)

    def segment(self, label: str) -> SegSegment | None:
        """The segment with this label, or None."""
        return next((s for s in self.segments if s.label == label), None)

    @property
    def breast(self) -> np.ndarray:
        """The breast mask (bool, rows x columns); all False if the SEG has no breast segment."""
        seg = self.segment(BREAST_LABEL)
        if seg is None:
            return np.zeros((self.rows, self.columns), dtype=bool)
        return _as_bool(seg.pixels)

    @property
    def mass_segments(self) -> list[SegSegment]:
        """The "Mass N" segments in order of N."""
        found = [s for s in self.segments if re.fullmatch(r"Mass \d+", s.label)]
        return sorted(found, key=lambda s: int(s.label.split()[1]))

    @property
    def masses(self) -> list[np.ndarray]:
        """One bool mask (rows x columns) per mass, in order."""
        return [_as_bool(s.pixels) for s in self.mass_segments]

    @property
    def malignancy(self) -> list[float | None]:
        """The malignancy probability of each mass (None where the SEG gives none)."""
        return [s.malignancy_probability for s in self.mass_segments]

    @property
    def mass_probability_map(self) -> np.ndarray | None:
        """The fractional mass probability map (float32 in [0, 1]), or None."""
        seg = self.segment(MASS_PROBABILITY_LABEL)
        return None if seg is None else seg.pixels.astype(np.float32)


def _as_bool(pixels: np.ndarray) -> np.ndarray:
    return pixels >= 0.5 if pixels.dtype.kind == "f" else pixels.astype(bool)


# ----------------------------------------------------------------------------- validation


def _source_name(ds: Dataset) -> str:
    filename = getattr(ds, "filename", None)
    if isinstance(filename, str | Path) and str(filename):
        return str(filename)
    return f"DICOM dataset {ds.get('SOPInstanceUID', '(no SOPInstanceUID)')}"


def _load_source(source: str | Path | Dataset) -> tuple[Dataset, str]:
    """The source header (no pixel data needed) and the name errors give it."""
    if isinstance(source, Dataset):
        return source, _source_name(source)
    if not isinstance(source, str | Path):
        raise MammoError(
            f"the source must be a DICOM file path or a pydicom Dataset, not "
            f"{type(source).__name__}",
            field="source",
            fix="pass the path of the mammogram's DICOM file",
        )
    from mammo_common.ingest.dicom import read_header

    return read_header(source), str(source)


def _check_source(ds: Dataset, name: str) -> tuple[int, int]:
    """Refuse a source that is not a single-frame MG image; return its (rows, columns)."""
    modality = str(ds.get("Modality", "") or "").strip().upper()
    if modality != "MG":
        shown = f"a {modality} image" if modality else "an image without a Modality"
        raise InputFileError(
            f"is {shown}, not a mammogram",
            path=name,
            field="Modality",
            fix="write DICOM SEG files only for mammograms (Modality MG)",
        )
    for keyword in _REQUIRED_UIDS:
        if not str(ds.get(keyword, "") or "").strip():
            raise InputFileError(
                "is missing; a DICOM SEG must reference the source image by it",
                path=name,
                field=keyword,
                fix="use the original DICOM file as received from the modality or archive",
            )
    frames = ds.get("NumberOfFrames", 1)
    try:
        frames = int(frames or 1)
    except (TypeError, ValueError):
        frames = 1
    if frames > 1:
        raise InputFileError(
            f"has {frames} frames (tomosynthesis?); DICOM SEG output is for 2D mammograms",
            path=name,
            field="NumberOfFrames",
            fix="pass a single-frame (2D) mammogram",
        )
    try:
        rows, cols = int(ds.Rows), int(ds.Columns)
    except (AttributeError, TypeError, ValueError):
        raise InputFileError(
            "has no usable Rows/Columns",
            path=name,
            field="Rows/Columns",
            fix="use the original DICOM file; its header is incomplete",
        ) from None
    if rows < 1 or cols < 1:
        raise InputFileError(
            f"has an empty image ({rows} x {cols})",
            path=name,
            field="Rows/Columns",
            fix="use the original DICOM file; its header is damaged",
        )
    return rows, cols


def _mask(value: Any, field_name: str, shape: tuple[int, int], name: str) -> np.ndarray:
    """A bool mask of the source's shape, or a MammoError naming the field and the fix."""
    arr = np.asarray(value)
    if arr.shape != shape:
        raise MammoError(
            f"has shape {arr.shape}, the source image has {shape[0]} rows x {shape[1]} columns",
            path=name,
            field=field_name,
            fix=_FIX_MASK,
        )
    if arr.dtype == bool:
        return arr
    if arr.dtype.kind not in "iuf" or not np.isin(arr, (0, 1)).all():
        raise MammoError(
            f"is not a binary mask (dtype {arr.dtype}, values other than 0 and 1)",
            path=name,
            field=field_name,
            fix="pass a bool mask (threshold probabilities first; the probability map goes "
            "in mass_probability_map with fractional=True)",
        )
    return arr.astype(bool)


def _probabilities(
    probabilities: Sequence[float | None] | None, n_masses: int, name: str
) -> list[float | None]:
    if probabilities is None:
        return [None] * n_masses
    probs = list(probabilities)
    if len(probs) != n_masses:
        raise MammoError(
            f"has {len(probs)} values for {n_masses} mass masks",
            path=name,
            field="probabilities",
            fix="give one malignancy probability (or None) per mass mask, in the same order",
        )
    out: list[float | None] = []
    for i, p in enumerate(probs):
        if p is None:
            out.append(None)
            continue
        try:
            value = float(p)
        except (TypeError, ValueError):
            value = math.nan
        if not 0.0 <= value <= 1.0:
            raise MammoError(
                f"is {p!r}, not a probability in [0, 1]",
                path=name,
                field=f"probabilities[{i}]",
                fix="pass the classifier's malignancy probability (0..1) or None",
            )
        out.append(value)
    return out


def _probability_map(value: Any, shape: tuple[int, int], name: str) -> np.ndarray:
    arr = np.asarray(value)
    if arr.shape != shape:
        raise MammoError(
            f"has shape {arr.shape}, the source image has {shape[0]} rows x {shape[1]} columns",
            path=name,
            field="mass_probability_map",
            fix="pass the probability map at the source image's native resolution",
        )
    if arr.dtype.kind not in "biuf":
        raise MammoError(
            f"has dtype {arr.dtype}, not numbers",
            path=name,
            field="mass_probability_map",
            fix="pass a float map of probabilities in [0, 1]",
        )
    arr = arr.astype(np.float32)
    if not np.isfinite(arr).all() or arr.min() < 0.0 or arr.max() > 1.0:
        raise MammoError(
            "has values outside [0, 1] (or NaN/inf)",
            path=name,
            field="mass_probability_map",
            fix="pass probabilities in [0, 1] (apply the sigmoid/softmax first)",
        )
    return arr


def _transfer_syntax(value: str | None, fractional: bool, name: str) -> UID:
    if value is None:
        return ExplicitVRLittleEndian
    syntax = UID(str(value))
    allowed = [ExplicitVRLittleEndian, ImplicitVRLittleEndian]
    if fractional:
        allowed += [RLELossless, JPEG2000Lossless, JPEGLSLossless]
    if syntax not in allowed:
        kind = "FRACTIONAL" if fractional else "BINARY"
        raise MammoError(
            f"is {syntax} ({syntax.name}), which a {kind} SEG cannot use",
            path=name,
            field="transfer_syntax_uid",
            fix="use one of " + ", ".join(f"{u} ({u.name})" for u in allowed),
        )
    return syntax


def _working_header(ds: Dataset) -> Dataset:
    """The source's attributes without pixel data, with empty Type 2 values highdicom needs.

    The caller's dataset is left untouched (elements are shared, not changed), and its pixel
    data is neither copied nor read (a deferred-read dataset keeps it on disk).
    """
    header = Dataset()
    for tag in ds.keys():  # noqa: SIM118 - iterating a Dataset would decode every element
        if tag not in _PIXEL_DATA_TAGS:
            # get_item keeps raw (not yet decoded) elements raw and never touches pixel data
            header[tag] = ds.get_item(tag)
    for keyword in _TYPE2_COPIED:
        if keyword not in header:
            setattr(header, keyword, "")
    return header


# ----------------------------------------------------------------------------- writing


def _laterality_code(ds: Dataset) -> Any:
    from pydicom.sr.codedict import codes

    side = str(ds.get("ImageLaterality", "") or ds.get("Laterality", "") or "").strip().upper()
    return {"L": codes.SCT.Left, "R": codes.SCT.Right}.get(side)


def _segment_descriptions(
    ds: Dataset,
    probabilities: list[float | None],
    with_probability_map: bool,
    algorithm_name: str,
    algorithm_version: str,
) -> list[Any]:
    import highdicom as hd
    from pydicom.sr.codedict import codes

    algorithm = hd.AlgorithmIdentificationSequence(
        name=algorithm_name,
        version=algorithm_version,
        family=codes.DCM.ArtificialIntelligence,
    )
    side = _laterality_code(ds)

    def breast_region() -> Any:
        region = hd.sr.CodedConcept.from_code(codes.SCT.Breast)
        if side is not None:
            region.AnatomicRegionModifierSequence = [hd.sr.CodedConcept.from_code(side)]
        return region

    def describe(number: int, label: str, category: Any, kind: Any, rgb: tuple[int, int, int],
                 in_breast: bool) -> Any:
        desc = hd.seg.SegmentDescription(
            segment_number=number,
            segment_label=label,
            segmented_property_category=category,
            segmented_property_type=kind,
            algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
            algorithm_identification=algorithm,
            display_color=hd.color.CIELabColor.from_rgb(*rgb),
        )
        if in_breast:
            desc.AnatomicRegionSequence = [breast_region()]
        return desc

    out = [
        describe(1, BREAST_LABEL, codes.SCT.AnatomicalStructure, codes.SCT.Breast,
                 (80, 200, 120), False)
    ]
    out[0].SegmentDescription = "breast (breastseg)"
    for i, p in enumerate(probabilities):
        desc = describe(i + 2, mass_label(i), codes.SCT.MorphologicallyAbnormalStructure,
                        codes.SCT.Mass, (230, 40, 40), True)
        text = "mass (massseg)"
        if p is not None:
            text += f"; malignancy probability {p:.4f} (massclass)"
        desc.SegmentDescription = text
        out.append(desc)
    if with_probability_map:
        desc = describe(len(out) + 1, MASS_PROBABILITY_LABEL,
                        codes.SCT.MorphologicallyAbnormalStructure, codes.SCT.Mass,
                        (250, 200, 30), True)
        desc.SegmentDescription = "mass probability map (massseg)"
        out.append(desc)
    return out


def write_seg(
    source: str | Path | Dataset,
    breast_mask: np.ndarray,
    mass_masks: Sequence[np.ndarray] = (),
    *,
    out: str | Path,
    probabilities: Sequence[float | None] | None = None,
    mass_probability_map: np.ndarray | None = None,
    fractional: bool = False,
    series_number: int = DEFAULT_SERIES_NUMBER,
    series_instance_uid: str | None = None,
    instance_number: int = 1,
    series_description: str = "mammo segmentation",
    algorithm_name: str = "mammo",
    algorithm_version: str = __version__,
    transfer_syntax_uid: str | None = None,
) -> Path:
    """Write a DICOM Segmentation of one mammogram (atomically) and return its path.

    Args:
        source: The mammogram's DICOM file, or its dataset (pixel data not needed).
        breast_mask: Breast mask at the source's native resolution (Rows x Columns), bool or
            0/1; must not be empty.
        mass_masks: One native-resolution mask per mass (none: a SEG with the breast only).
        out: Where to write the SEG (``.dcm``); an existing file is replaced.
        probabilities: Malignancy probability of each mass (or None), written in the mass
            segment's description.
        mass_probability_map: Native-resolution mass probability map (float in [0, 1]),
            written as the fractional segment "Mass probability"; needs ``fractional=True``.
        fractional: Write a FRACTIONAL SEG (8-bit probabilities) instead of BINARY; needs
            ``mass_probability_map``.
        series_number: Series Number of the SEG.
        series_instance_uid: Series Instance UID of the SEG (a new one if None); pass the same
            UID to put several SEGs in one series.
        instance_number: Instance Number of the SEG.
        series_description: Series Description of the SEG.
        algorithm_name: Name in each segment's Segmentation Algorithm Identification.
        algorithm_version: Version in each segment's Segmentation Algorithm Identification.
        transfer_syntax_uid: Transfer syntax of the SEG; Explicit VR Little Endian
            (uncompressed) if None. A FRACTIONAL SEG (1 byte per pixel and segment) may use
            RLE Lossless (``1.2.840.10008.1.2.5``), JPEG 2000 Lossless or JPEG-LS Lossless
            (these need an encoder: pydicom's own for RLE, the ``dicom`` extra for faster
            ones); a BINARY SEG (1 bit per pixel) stays uncompressed.

    Returns:
        The path of the SEG file.

    Raises:
        InputFileError: The source is not DICOM, not a single-frame MG image, or lacks a UID
            the SEG must reference.
        MammoError: A mask does not match the source's rows and columns, is not binary, or is
            empty; probabilities or the probability map are invalid or inconsistent with
            ``fractional``.

    Example:
        >>> write_seg("L_CC.dcm", breast, [mass], out="L_CC.seg.dcm",
        ...           probabilities=[0.87])  # doctest: +SKIP
    """
    ds, name = _load_source(source)
    shape = _check_source(ds, name)
    out = Path(out)
    if isinstance(source, str | Path) and out.resolve() == Path(source).resolve():
        raise MammoError(
            "the SEG would overwrite its source image",
            path=out,
            field="out",
            fix="write the SEG to another file (for example NAME.seg.dcm)",
        )
    breast = _mask(breast_mask, "breast_mask", shape, name)
    if not breast.any():
        raise MammoError(
            "is empty (no breast pixel); a SEG without a breast would hide a failed "
            "segmentation",
            path=name,
            field="breast_mask",
            fix="check the breast segmentation of this image (breastseg) before writing a SEG",
        )
    masses = [_mask(m, f"mass_masks[{i}]", shape, name) for i, m in enumerate(mass_masks)]
    for i, m in enumerate(masses):
        if not m.any():
            raise MammoError(
                "is empty (no pixel)",
                path=name,
                field=f"mass_masks[{i}]",
                fix="leave masses without any pixel out of mass_masks",
            )
    probs = _probabilities(probabilities, len(masses), name)
    prob_map = None
    if mass_probability_map is not None:
        if not fractional:
            raise MammoError(
                "was given for a BINARY SEG, which cannot hold probabilities",
                path=name,
                field="mass_probability_map",
                fix="pass fractional=True to store the map, or leave the map out",
            )
        prob_map = _probability_map(mass_probability_map, shape, name)
    elif fractional:
        raise MammoError(
            "is missing; a FRACTIONAL SEG is for the mass probability map",
            path=name,
            field="mass_probability_map",
            fix="pass the native-resolution mass probability map, or fractional=False",
        )

    syntax = _transfer_syntax(transfer_syntax_uid, fractional, name)

    import highdicom as hd

    header = _working_header(ds)
    descriptions = _segment_descriptions(
        header, probs, prob_map is not None, algorithm_name, algorithm_version
    )
    layers = [breast, *masses]
    if prob_map is None:
        pixels = np.stack(layers, axis=-1)[None]  # (1, rows, cols, segments), bool
        seg_type = hd.seg.SegmentationTypeValues.BINARY
    else:
        pixels = np.stack([*(m.astype(np.float32) for m in layers), prob_map], axis=-1)[None]
        seg_type = hd.seg.SegmentationTypeValues.FRACTIONAL
    del layers

    seg = hd.seg.Segmentation(
        source_images=[header],
        pixel_array=pixels,
        segmentation_type=seg_type,
        segment_descriptions=descriptions,
        series_instance_uid=series_instance_uid or hd.UID(),
        series_number=series_number,
        sop_instance_uid=hd.UID(),
        instance_number=instance_number,
        manufacturer=MANUFACTURER,
        manufacturer_model_name=MODEL_NAME,
        software_versions=__version__,
        device_serial_number=DEVICE_SERIAL_NUMBER,
        fractional_type=hd.seg.SegmentationFractionalTypeValues.PROBABILITY,
        max_fractional_value=MAX_FRACTIONAL_VALUE,
        content_label="MAMMO",
        content_description="breast and mass segmentation (mammo cascade)",
        transfer_syntax_uid=syntax,
    )
    del pixels
    # A projection image has no Slice Thickness; a spacing-only Pixel Measures is valid DICOM
    # but highdicom cannot read it back, so leave it out (see the module docstring).
    shared = seg.SharedFunctionalGroupsSequence[0]
    measures = shared.get("PixelMeasuresSequence")
    if measures is not None and "SliceThickness" not in measures[0]:
        del shared.PixelMeasuresSequence
    seg.SeriesDescription = series_description

    with atomic_path(out) as tmp:
        seg.save_as(tmp, enforce_file_format=True)
    return out


# ----------------------------------------------------------------------------- reading


def _code(seq: Any) -> tuple[str, str, str]:
    item = seq[0]
    return (str(item.CodingSchemeDesignator), str(item.CodeValue), str(item.CodeMeaning))


def read_seg(path: str | Path) -> SegContents:
    """Read a DICOM SEG of a single-frame image back into masks (with highdicom).

    Args:
        path: The SEG file (for example one written by :func:`write_seg`).

    Returns:
        The SEG's references and segments; :attr:`SegContents.breast`,
        :attr:`SegContents.masses`, :attr:`SegContents.malignancy` and
        :attr:`SegContents.mass_probability_map` give what :func:`write_seg` wrote.

    Raises:
        InputFileError: The file is not DICOM, not a Segmentation, or not the segmentation of
            one single-frame image.
    """
    import highdicom as hd

    from mammo_common.ingest.dicom import read_header

    path = Path(path)
    ds = read_header(path, with_pixels=True)
    if str(ds.get("Modality", "")).upper() != "SEG":
        raise InputFileError(
            f"is not a DICOM Segmentation (Modality {ds.get('Modality', 'missing')})",
            path=path,
            field="Modality",
            fix="pass a DICOM SEG file",
        )
    try:
        seg = hd.seg.Segmentation.from_dataset(ds, copy=False)
    except Exception as exc:
        raise InputFileError(
            f"cannot be read as a DICOM Segmentation ({type(exc).__name__}: {exc})",
            path=path,
            fix="check the file with a DICOM validator (dciodvfy)",
        ) from None
    refs = [
        (str(series.SeriesInstanceUID), str(inst.ReferencedSOPInstanceUID))
        for series in ds.get("ReferencedSeriesSequence", [])
        for inst in series.get("ReferencedInstanceSequence", [])
    ]
    if len(refs) != 1:
        raise InputFileError(
            f"references {len(refs)} source images; read_seg reads the SEG of one image",
            path=path,
            field="ReferencedSeriesSequence",
            fix="read multi-image SEGs with highdicom directly",
        )
    series_uid, sop_uid = refs[0]
    numbers = [int(d.SegmentNumber) for d in ds.SegmentSequence]
    arr = seg.get_pixels_by_source_instance(
        [sop_uid],
        segment_numbers=numbers,
        assert_missing_frames_are_empty=True,
        skip_overlap_checks=True,
    )[0]
    fractional = str(ds.SegmentationType).upper() == "FRACTIONAL"
    segments = []
    for k, item in enumerate(ds.SegmentSequence):
        layer = arr[..., k]
        segments.append(
            SegSegment(
                number=int(item.SegmentNumber),
                label=str(item.get("SegmentLabel", "")),
                description=str(item.SegmentDescription) if "SegmentDescription" in item
                else None,
                category=_code(item.SegmentedPropertyCategoryCodeSequence),
                property_type=_code(item.SegmentedPropertyTypeCodeSequence),
                pixels=layer.astype(np.float32) if fractional else layer.astype(bool),
            )
        )
    return SegContents(
        path=path,
        segmentation_type=str(ds.SegmentationType).upper(),
        study_instance_uid=str(ds.StudyInstanceUID),
        referenced_series_instance_uid=series_uid,
        referenced_sop_instance_uid=sop_uid,
        rows=int(ds.Rows),
        columns=int(ds.Columns),
        segments=segments,
    )
