"""Import a folder tree of unlabelled mammograms (DICOM, PNG, TIFF): one case per image.

Every file under the source folder, at any depth, is a candidate: DICOM (``.dcm``, ``.dicom``,
``.dic``, or any name with the ``DICM`` marker, e.g. the extension-less files of a PACS export)
and plain images (PNG, TIFF, JPEG, BMP). Hidden files and folders (``.name``, ``__MACOSX``) and
Zarr stores are not read. Cases carry no masks and no pathology.

From a DICOM header: patient (PatientID), laterality (ImageLaterality, then Laterality), view
(ViewPosition, then ViewCodeSequence), pixel spacing (PixelSpacing, then ImagerPixelSpacing),
photometric interpretation, bits stored, and the identifiers of :class:`~mammo_common.schema.
DicomRef` (SOP instance, study, series, modality, manufacturer, transfer syntax). What the
header lacks comes from the file name and its folders (CBIS-DDSM ``P_00001_LEFT_CC``, INbreast
``..._MG_R_CC_...``, ``LMLO``, ``left_mlo``), else stays unknown; each case's notes say where every
value came from. A ``patients.csv`` (``file,patient_id``) overrides the patient.

Skipped, each with its reason in the ingest report: other modalities (CT, SR, ...; CR/DX only
when BodyPartExamined is BREAST), FOR PROCESSING raw images (unless
``IngestConfig.for_processing``), tomosynthesis and other multi-frame images, DICOMDIR index
files, secondary captures recognisable as something else (colour screen captures, dose
reports), two-valued images (masks), copies of an image already read (same SOPInstanceUID),
and unreadable or undecodable files. Images are read one at a time.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import numpy as np
from pydicom.dataset import Dataset

from mammo_common.errors import InputFileError
from mammo_common.imageio import IMAGE_SUFFIXES, read_image, refuse_blank, to_uint16
from mammo_common.ingest.common import CaseItem, inside, outside_error
from mammo_common.ingest.config import IngestConfig
from mammo_common.ingest.dicom import (
    STRIPE_ROWS,
    image_from_dataset,
    read_header,
    syntax_label,
    transfer_syntax,
)
from mammo_common.ingest.folder import read_patients
from mammo_common.ingest.report import IngestReport, reason_of
from mammo_common.schema import CaseRecord, DicomRef, safe_case_id

SOURCE_DATASET = "images"
#: ``run_ingest`` leaves the progress bar to this module (it knows the number of files).
TRACKS_PROGRESS = True

#: File name endings read as DICOM without looking for the ``DICM`` marker.
DICOM_SUFFIXES = (".dcm", ".dicom", ".dic")

_SC_CLASSES = frozenset(
    {
        "1.2.840.10008.5.1.4.1.1.7",  # Secondary Capture
        "1.2.840.10008.5.1.4.1.1.7.1",  # Multi-frame Single Bit SC
        "1.2.840.10008.5.1.4.1.1.7.2",  # Multi-frame Grayscale Byte SC
        "1.2.840.10008.5.1.4.1.1.7.3",  # Multi-frame Grayscale Word SC
        "1.2.840.10008.5.1.4.1.1.7.4",  # Multi-frame True Color SC
    }
)
_FOR_PROCESSING_CLASSES = frozenset(
    {
        "1.2.840.10008.5.1.4.1.1.1.1.1",  # Digital X-Ray Image - For Processing
        "1.2.840.10008.5.1.4.1.1.1.2.1",  # Digital Mammography X-Ray Image - For Processing
        "1.2.840.10008.5.1.4.1.1.13.1.5",  # Breast Projection X-Ray Image - For Processing
    }
)
_TOMOSYNTHESIS_CLASS = "1.2.840.10008.5.1.4.1.1.13.1.3"  # Breast Tomosynthesis Image
_DICOMDIR_CLASS = "1.2.840.10008.1.3.10"  # Media Storage Directory Storage
#: Modalities kept when BodyPartExamined is BREAST (early digital mammography was stored so).
_BREAST_RADIOGRAPHY = frozenset({"CR", "DX"})
#: Secondary captures whose descriptions say they are something else than an image of a breast.
_NOT_AN_IMAGE = re.compile(
    r"\b(dose|report|screen ?(save|shot|capture)|summary|worklist|protocol|scanned document)\b",
    re.IGNORECASE,
)
#: ViewCodeSequence code values (SNOMED-RT and SNOMED CT) of the two standard views.
_VIEW_CODES = {
    "R-10242": "CC",
    "399162004": "CC",
    "R-10226": "MLO",
    "399368009": "MLO",
}
_VIEW_MEANINGS = {"craniocaudal": "CC", "mediolateraloblique": "MLO"}
_SIDES = {"L": "L", "R": "R", "LEFT": "L", "RIGHT": "R"}
_CBIS_PATIENT = re.compile(r"(?<![A-Za-z0-9])(P_\d{5})(?!\d)")
_TOKEN_SPLIT = re.compile(r"[^A-Za-z0-9]+")
_COMBINED = re.compile(r"^([LR])(CC|MLO)$")
_CBIS_IMAGE_NAME = re.compile(r"^(Mass|Calc)-(Training|Test)_P_\d{5}")


class NotAMammogram(InputFileError):
    """A readable file that is not a mammogram to import (another modality, raw data, ...)."""


# ------------------------------------------------------------------------------- finding files


def _is_hidden(name: str) -> bool:
    return name.startswith(".") or name == "__MACOSX"


def _has_dicm_marker(path: Path) -> bool:
    try:
        with path.open("rb") as fh:
            fh.seek(128)
            return fh.read(4) == b"DICM"
    except OSError:
        return False


def _kind(path: Path) -> str | None:
    """``"image"``, ``"dicom"`` or ``None`` (not a mammogram file) from the name and marker."""
    suffix = path.suffix.lower()
    if suffix in IMAGE_SUFFIXES:
        return "image"
    if suffix in DICOM_SUFFIXES or _has_dicm_marker(path):
        return "dicom"
    return None


def _walk(source: Path, report: IngestReport | None) -> Iterator[Path]:
    """Every non-hidden file under ``source`` (sorted, depth first), symbolic links checked.

    Folders that are symbolic links are not entered (reported when they lead outside
    ``source``); Zarr stores (``*.zarr``) and folders that cannot be listed are reported.
    """

    def unlisted(exc: OSError) -> None:
        if report is not None and exc.filename is not None:
            report.skip(exc.filename, f"folder cannot be listed ({type(exc).__name__}: "
                        f"{exc.strerror or exc}): not read")

    for folder, dirs, files in os.walk(source, onerror=unlisted, followlinks=False):
        here = Path(folder)
        keep = []
        for name in sorted(dirs):
            path = here / name
            if _is_hidden(name):
                continue
            if path.is_symlink():
                if report is not None and not inside(path, source):
                    report.skip(path, "folder not read: " + reason_of(outside_error(path, source)))
                continue
            if name.lower().endswith(".zarr"):
                if report is not None:
                    report.skip(path, "a Zarr store, not mammograms: not read")
                continue
            keep.append(name)
        dirs[:] = keep
        for name in sorted(files):
            if not _is_hidden(name):
                yield here / name


def has_images(source: Path) -> bool:
    """Whether ``source`` holds at least one DICOM or image file (for format detection)."""
    return any(inside(p, source) and _kind(p) is not None for p in _walk(source, None))


def find_files(source: Path, report: IngestReport, used: set[Path]) -> list[tuple[Path, str]]:
    """The candidate files with their kind, in path order; every other file is reported.

    Args:
        source: The source folder.
        report: Where skipped files go.
        used: Resolved paths of files used for something else (``patients.csv``): neither
            listed nor reported.
    """
    found = []
    for path in _walk(source, report):
        if used and path.resolve() in used:
            continue
        if not inside(path, source):
            report.skip(path, reason_of(outside_error(path, source)))
            continue
        kind = _kind(path)
        if kind is None:
            report.skip(
                path,
                "not a mammogram file: neither DICOM (no .dcm name, no DICM marker) nor an "
                "image (PNG, TIFF, JPEG, BMP)",
            )
            continue
        found.append((path, kind))
    return sorted(found, key=lambda pk: pk[0].relative_to(source).parts)


# ------------------------------------------------------------------------- where values come from


@dataclass
class Found:
    """Values found for one case, each with where it came from (turned into notes)."""

    values: dict[str, object] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def set(self, name: str, value: object, origin: str) -> None:
        """Record ``name = value`` from ``origin`` unless already known (first source wins)."""
        if name in self.values:
            if self.values[name] != value:
                self.notes.append(
                    f"{name} {value} from {origin} disagrees with {self.values[name]}: kept "
                    f"{self.values[name]}"
                )
            return
        self.values[name] = value
        self.notes.append(f"{name} {value} from {origin}")


def _parts(rel: PurePosixPath) -> list[str]:
    """The file's stem, then its folders from the nearest up (where names are looked at)."""
    return [rel.stem, *reversed(rel.parent.parts)]


def name_hints(rel: PurePosixPath) -> list[tuple[str, str, str]]:
    """Laterality, view and patient read from file and folder names.

    Recognised: ``LEFT``/``RIGHT`` anywhere in a name part, ``L``/``R`` next to ``CC``/``MLO``
    (``R_CC``, ``CC-L``), ``LCC``/``RMLO``, ``CC``/``MLO``, and CBIS-DDSM patient ids
    (``P_00001``). The file name is looked at first, then the folders from the nearest up.

    Returns:
        ``(field, value, name part)`` for each field found, the first find of a field only.
    """
    found: dict[str, tuple[str, str]] = {}
    for part in _parts(rel):
        tokens = [t.upper() for t in _TOKEN_SPLIT.split(part) if t]
        match = _CBIS_PATIENT.search(part)
        if match:
            found.setdefault("patient_id", (match.group(1), part))
        for i, token in enumerate(tokens):
            combined = _COMBINED.match(token)
            if combined:
                found.setdefault("laterality", (combined.group(1), part))
                found.setdefault("view", (combined.group(2), part))
            if token in ("CC", "MLO"):
                found.setdefault("view", (token, part))
            if token in ("LEFT", "RIGHT"):
                found.setdefault("laterality", (_SIDES[token], part))
            if token in ("L", "R"):
                near = tokens[max(0, i - 1) : i] + tokens[i + 1 : i + 2]
                if any(t in ("CC", "MLO") for t in near):
                    found.setdefault("laterality", (token, part))
    return [(name, value, part) for name, (value, part) in found.items()]


def _text(ds: Dataset, name: str) -> str | None:
    try:
        value = ds.get(name)
    except Exception:  # a damaged element fails on first use
        return None
    if value is None:
        return None
    if not isinstance(value, str | bytes) and hasattr(value, "__iter__"):
        value = "\\".join(str(v) for v in value)
    text = str(value).strip()
    return text or None


def _dicom_laterality(ds: Dataset, found: Found) -> None:
    for name in ("ImageLaterality", "Laterality"):
        raw = _text(ds, name)
        if raw is None:
            continue
        side = _SIDES.get(raw.upper())
        if side is None:
            found.notes.append(f"DICOM {name} is {raw!r} (not L or R): not used")
            continue
        found.set("laterality", side, f"DICOM {name}")
        return


def _view_from_code(ds: Dataset) -> tuple[str, str] | None:
    try:
        items = ds.get("ViewCodeSequence") or []
        item = items[0] if len(items) else None
    except Exception:  # a damaged sequence
        return None
    if item is None:
        return None
    code, meaning = _text(item, "CodeValue"), _text(item, "CodeMeaning") or ""
    view = _VIEW_CODES.get(code or "")
    if view is None:
        view = _VIEW_MEANINGS.get(re.sub(r"[^a-z]", "", meaning.lower()))
    label = f"{code or '?'} {meaning!r}".strip()
    return (view or "other"), label


def _dicom_view(ds: Dataset, found: Found) -> None:
    raw = _text(ds, "ViewPosition")
    if raw is not None:
        view = raw.upper() if raw.upper() in ("CC", "MLO") else "other"
        found.set("view", view, f"DICOM ViewPosition ({raw})" if view == "other" else
                  "DICOM ViewPosition")
        return
    coded = _view_from_code(ds)
    if coded is not None:
        view, label = coded
        found.set("view", view, f"DICOM ViewCodeSequence ({label})")


def _dicom_spacing(ds: Dataset, found: Found) -> None:
    for name in ("PixelSpacing", "ImagerPixelSpacing"):
        try:
            value = ds.get(name)
            if value is None or len(value) < 2:
                continue
            row, col = float(value[0]), float(value[1])
        except (TypeError, ValueError):
            found.notes.append(f"DICOM {name} cannot be read as two numbers: not used")
            continue
        if row > 0 and col > 0 and np.isfinite(row) and np.isfinite(col):
            found.set("pixel_spacing", (row, col), f"DICOM {name}")
            return
        found.notes.append(f"DICOM {name} {row:g}\\{col:g} is not positive: not used")


def _dicom_ref(ds: Dataset) -> DicomRef:
    uid = transfer_syntax(ds)
    return DicomRef(
        sop_instance_uid=_text(ds, "SOPInstanceUID"),
        sop_class_uid=_text(ds, "SOPClassUID"),
        study_instance_uid=_text(ds, "StudyInstanceUID"),
        series_instance_uid=_text(ds, "SeriesInstanceUID"),
        study_id=_text(ds, "StudyID"),
        modality=_text(ds, "Modality"),
        manufacturer=_text(ds, "Manufacturer"),
        transfer_syntax_uid=str(uid) if uid is not None else None,
    )


# ---------------------------------------------------------------------------- what is skipped


def _not_mammogram(path: Path, problem: str, field: str, fix: str | None = None) -> NotAMammogram:
    return NotAMammogram(problem, path=path, field=field, fix=fix)


def screen(ds: Dataset, path: Path, config: IngestConfig, notes: list[str]) -> None:
    """Refuse DICOM files that are not 2-D mammograms to import, from the header alone.

    Args:
        ds: The header (pixel data not decoded).
        path: The file.
        config: Whether FOR PROCESSING images are wanted.
        notes: Where remarks on what was accepted go (a missing Modality, CR/DX of a breast).

    Raises:
        NotAMammogram: With the reason (another modality, raw data, tomosynthesis, ...).
    """
    sop_class = _text(ds, "SOPClassUID") or ""
    modality = (_text(ds, "Modality") or "").upper()
    if sop_class == _DICOMDIR_CLASS or path.name.upper() == "DICOMDIR":
        raise _not_mammogram(path, "is a DICOMDIR (the index of a DICOM medium), not an image",
                             "SOPClassUID")
    is_sc = sop_class in _SC_CLASSES
    if modality and modality != "MG":
        body = (_text(ds, "BodyPartExamined") or "").upper()
        if modality in _BREAST_RADIOGRAPHY and body == "BREAST":
            notes.append(f"modality {modality} with BodyPartExamined BREAST: read as a mammogram")
        else:
            what = "a secondary capture of modality" if is_sc else "modality"
            raise _not_mammogram(
                path, f"is {what} {modality}, not MG (mammography)", "Modality"
            )
    elif not modality:
        notes.append("no Modality in the header: read as a mammogram")
    if sop_class == _TOMOSYNTHESIS_CLASS:
        raise _not_mammogram(path, "is a breast tomosynthesis image, not a 2-D mammogram",
                             "SOPClassUID")
    frames = _text(ds, "NumberOfFrames")
    try:
        n_frames = int(float(frames)) if frames else 1
    except ValueError:
        n_frames = 1
    if n_frames > 1:
        raise _not_mammogram(
            path,
            f"holds {n_frames} frames (tomosynthesis or another stack), not one 2-D mammogram",
            "NumberOfFrames",
        )
    intent = (_text(ds, "PresentationIntentType") or "").upper()
    if intent == "FOR PROCESSING" or sop_class in _FOR_PROCESSING_CLASSES:
        if not config.for_processing:
            raise _not_mammogram(
                path,
                "is a FOR PROCESSING (raw detector) image, not one processed for presentation",
                "PresentationIntentType",
                fix="pass --for-processing to import raw images too",
            )
        notes.append("FOR PROCESSING (raw detector) image, imported as asked; its grey levels "
                     "differ from those of presentation images")
    if is_sc:
        photometric = (_text(ds, "PhotometricInterpretation") or "").upper()
        samples = _text(ds, "SamplesPerPixel") or "1"
        if samples != "1" or not photometric.startswith("MONOCHROME"):
            raise _not_mammogram(
                path,
                f"is a colour secondary capture ({photometric or 'RGB'}): a screen capture or "
                "a report, not a mammogram",
                "PhotometricInterpretation",
            )
        for name in ("SeriesDescription", "ImageComments", "DerivationDescription", "ImageType"):
            text = _text(ds, name) or ""
            match = _NOT_AN_IMAGE.search(text)
            if match:
                raise _not_mammogram(
                    path,
                    f"is a secondary capture whose {name} ({text[:60]!r}) marks it as a "
                    f"{match.group(0).lower()}, not a mammogram",
                    name,
                )


def refuse_two_valued(image: np.ndarray, path: Path) -> None:
    """Refuse an image with only two grey levels (a mask or a graphic, not a mammogram)."""
    lo, hi = image.min(), image.max()
    for start in range(0, image.shape[0], STRIPE_ROWS):
        rows = image[start : start + STRIPE_ROWS]
        if np.any((rows != lo) & (rows != hi)):
            return
    raise _not_mammogram(
        path,
        f"holds only two grey levels ({lo} and {hi}): a mask or a graphic, not a mammogram",
        "PixelData",
    )


# ------------------------------------------------------------------------------- one case


@dataclass
class _Context:
    source: Path
    report: IngestReport
    config: IngestConfig
    patients: dict[str, str]
    case_ids: set[str] = field(default_factory=set)
    sop_instances: dict[str, str] = field(default_factory=dict)


def _case_id(rel: PurePosixPath, used: set[str]) -> str:
    """A case id from the relative path without its ending, unique within the store."""
    base = safe_case_id(str(rel.with_suffix("")).replace("/", "_"))[:190]
    case_id, n = base, 1
    while case_id in used:
        n += 1
        case_id = f"{base}_{n}"
    used.add(case_id)
    return case_id


def _patient_from_csv(ctx: _Context, rel: PurePosixPath, found: Found) -> None:
    for key in (str(rel), rel.name):
        if key in ctx.patients:
            found.set("patient_id", ctx.patients[key], "patients.csv")
            return


def _from_names(rel: PurePosixPath, found: Found) -> None:
    for name, value, part in name_hints(rel):
        found.set(name, value, f"the name {part!r}")


def _record(
    ctx: _Context,
    path: Path,
    rel: PurePosixPath,
    image: np.ndarray,
    found: Found,
    *,
    read_notes: list[str],
    photometric: str | None,
    bits_stored: int | None,
    dicom: DicomRef | None = None,
) -> CaseRecord:
    """The case record: found values (else unknown) and notes saying where each came from."""
    case_id = _case_id(rel, ctx.case_ids)
    values = found.values
    notes = [*read_notes, *found.notes]
    if "patient_id" not in values:
        notes.append("patient_id unknown: the case id is used (one patient per image)")
    for name in ("laterality", "view", "pixel_spacing"):
        if name not in values:
            where = "the header" if name == "pixel_spacing" else "the header nor the file name"
            notes.append(f"{name} unknown (not in {where})")
    return CaseRecord(
        case_id=case_id,
        patient_id=str(values.get("patient_id", case_id)),
        laterality=values.get("laterality", "unknown"),  # type: ignore[arg-type]
        view=values.get("view", "other"),  # type: ignore[arg-type]
        source_dataset=SOURCE_DATASET,
        source_path=ctx.report.rel(path),
        original_shape=(int(image.shape[0]), int(image.shape[1])),
        pixel_spacing=values.get("pixel_spacing"),  # type: ignore[arg-type]
        photometric_interpretation=photometric,
        bits_stored=bits_stored if bits_stored and 1 <= bits_stored <= 32 else None,
        notes=notes,
        dicom=dicom,
    )


def _dicom_patient(ds: Dataset, found: Found) -> None:
    patient = _text(ds, "PatientID")
    if not patient:
        return
    cbis = _CBIS_PATIENT.search(patient)
    if cbis and cbis.group(1) != patient and _CBIS_IMAGE_NAME.match(patient):
        # CBIS-DDSM writes the image folder name (Mass-Training_P_00001_LEFT_CC) as PatientID
        found.set("patient_id", cbis.group(1), f"DICOM PatientID {patient!r} (its patient part)")
        return
    found.set("patient_id", patient, "DICOM PatientID")


def _dicom_case(ctx: _Context, path: Path, rel: PurePosixPath) -> CaseItem:
    ds = read_header(path, with_pixels=True)
    screen_notes: list[str] = []
    screen(ds, path, ctx.config, screen_notes)
    ref = _dicom_ref(ds)
    if ref.sop_instance_uid and ref.sop_instance_uid in ctx.sop_instances:
        raise NotAMammogram(
            f"has the SOPInstanceUID of case {ctx.sop_instances[ref.sop_instance_uid]} (a copy "
            "of an image already read): left out",
            path=path,
            field="SOPInstanceUID",
        )
    found = Found()
    _patient_from_csv(ctx, rel, found)
    _dicom_patient(ds, found)
    _dicom_laterality(ds, found)
    _dicom_view(ds, found)
    _dicom_spacing(ds, found)
    _from_names(rel, found)
    image, info = image_from_dataset(ds, path, max_pixels=ctx.config.max_pixels)
    refuse_two_valued(image, path)
    uid = transfer_syntax(ds)
    decoded = [f"pixel data decoded from {syntax_label(uid)}"] if uid and uid.is_compressed else []
    record = _record(
        ctx, path, rel, image, found,
        read_notes=[*decoded, *screen_notes, *info.notes],
        photometric=info.photometric_interpretation,
        bits_stored=info.bits_stored,
        dicom=ref,
    )
    if ref.sop_instance_uid:
        ctx.sop_instances[ref.sop_instance_uid] = record.case_id
    return CaseItem(record=record, image=image)


def _image_case(ctx: _Context, path: Path, rel: PurePosixPath) -> CaseItem:
    raw, info = read_image(path, max_pixels=ctx.config.max_pixels)
    refuse_blank(raw, path)
    image, note = to_uint16(raw)
    del raw
    refuse_two_valued(image, path)
    found = Found()
    _patient_from_csv(ctx, rel, found)
    _from_names(rel, found)
    record = _record(
        ctx, path, rel, image, found,
        read_notes=[*info.notes, *([note] if note else [])],
        photometric=info.photometric,
        bits_stored=info.bits,
    )
    return CaseItem(record=record, image=image)


def _patients(
    source: Path, config: IngestConfig, report: IngestReport
) -> tuple[dict[str, str], set[Path]]:
    """The ``patients.csv`` mapping and the CSV's resolved path (not a mammogram to list)."""
    csv_path = config.patients_csv or (source / "patients.csv")
    if config.patients_csv is None and csv_path.is_file() and not inside(csv_path, source):
        raise outside_error(csv_path, source)
    if not csv_path.is_file():
        return {}, set()
    return read_patients(csv_path, report), {csv_path.resolve()}


def iter_cases(source: Path, report: IngestReport, config: IngestConfig) -> Iterator[CaseItem]:
    """Yield one case per readable mammogram under ``source``, any depth, in path order.

    Files that cannot be used are recorded in ``report`` with their reason. Only one image is
    held at a time.
    """
    patients, used = _patients(source, config, report)
    ctx = _Context(source=source, report=report, config=config, patients=patients)
    files: Iterable[tuple[Path, str]] = find_files(source, report, used)
    if config.progress:
        from mammo_common.cli_support import track

        files = track(files, f"ingest {SOURCE_DATASET}")
    for path, kind in files:
        rel = PurePosixPath(report.rel(path))
        try:
            item = (_dicom_case if kind == "dicom" else _image_case)(ctx, path, rel)
        except InputFileError as exc:
            report.skip(exc.path or path, reason_of(exc))
            continue
        report.use(path)
        yield item
        del item  # hold no image while the next one is read
