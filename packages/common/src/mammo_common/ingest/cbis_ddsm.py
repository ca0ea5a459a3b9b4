"""Import CBIS-DDSM: case-description CSVs plus the DICOM tree, surviving its known defects.

One case per image (patient + side + view), id ``P_00001_LEFT_CC``. Defects handled:

* paths with surrounding whitespace or a trailing newline are stripped; ``\\`` becomes ``/``;
* paths that are absolute or climb out with ``..`` are refused (reported, case skipped);
* a file name that differs from the disk (``1-1.dcm`` vs ``000000.dcm``) or study/series
  folders that differ: the DICOM files under the listed folder are searched;
* ROI-mask and cropped-image columns swapped: the mask is told apart by its content (two
  values) and size (the mammogram's), and the swap is noted;
* a mask whose size differs from its mammogram is resized (nearest neighbour) and noted;
* several abnormalities per image: union in ``mass_mask`` (masses only), each kept in
  ``mass_labels`` (value = abnormality number) and in ``masses``.

If any abnormality of an image cannot be used (missing or unreadable file, no mask found), the
whole image is skipped and reported: a mass image with an incomplete mask would teach the
segmentation model to miss masses.

Full-mammogram folders (``Mass-Training_P_00001_LEFT_CC``) that no CSV lists are imported as
images without abnormality ("none"); this is how ``mammo synth`` represents normal images.

Truth sidecar (synthetic data only): when a ``truth/`` folder holding a ``truth.json`` index of
format ``mammo-synth-truth`` lies at the dataset root or beside a CSV (``mammo synth`` writes
one; see :mod:`mammo_common.synth.truth`), each image's ``truth/<full-mammogram folder
name>/breast.png`` becomes the case's ``breast_mask``. The mask must have the full mammogram's
size and only the values 0/255 (or 0/1) and hold some breast; otherwise (or when the file is
missing or unreadable) the case is imported without a breast mask and the reason is reported.
Cases that got one say so in their notes, and the store lists the sidecar as a parent of kind
``truth-sidecar``. Real CBIS-DDSM downloads have no sidecar and are imported as before.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import numpy as np

from mammo_common.errors import InputFileError
from mammo_common.imageio import binarize_mask, read_image
from mammo_common.ingest.common import (
    CaseItem,
    SidecarFile,
    clean_relative,
    fit_mask,
    inside,
    mass_record,
    outside_error,
    parse_int,
    require_inside,
    safe_glob,
    safe_rglob,
    worst_pathology,
)
from mammo_common.ingest.config import IngestConfig
from mammo_common.ingest.dicom import DicomInfo, header_info, read_dicom, read_header
from mammo_common.ingest.report import IngestReport, reason_of
from mammo_common.schema import CaseRecord, safe_case_id
from mammo_common.synth.truth import (
    BREAST_FILE,
    FORMAT_NAME,
    FORMAT_VERSION,
    INDEX_FILE,
    TRUTH_DIR,
)

SOURCE_DATASET = "CBIS-DDSM"
SYNTH_MANUFACTURER = "mammo synth"

FULL_FOLDER = re.compile(
    r"^(?P<kind>Mass|Calc)-(?P<split>Training|Test)_(?P<pid>P_\d+)_(?P<side>LEFT|RIGHT)_"
    r"(?P<view>CC|MLO)$",
    re.IGNORECASE,
)
REQUIRED = (
    "patient_id",
    "left or right breast",
    "image view",
    "abnormality id",
    "abnormality type",
    "pathology",
    "image file path",
    "cropped image file path",
    "roi mask file path",
)
PATHOLOGIES = {"BENIGN", "BENIGN_WITHOUT_CALLBACK", "MALIGNANT"}


def find_csvs(root: Path) -> list[Path]:
    """Case-description CSVs in ``root`` or one level below; mass CSVs first."""
    found = {
        p
        for pattern in ("*.csv", "*/*.csv")
        for p in safe_glob(root, pattern)
        if p.is_file() and ("case_description" in p.name.lower())
    }
    return sorted(found, key=lambda p: ("calc" in p.name.lower(), p.as_posix()))


@dataclass
class Row:
    """One abnormality row of a case-description CSV."""

    where: str
    csv_dir: Path
    patient_id: str
    side: str
    view: str
    abnormality_id: int
    abnormality: str
    pathology: str
    density: int | None
    shape: str | None
    margins: str | None
    assessment: int | None
    subtlety: int | None
    image: str
    crop: str
    roi: str

    @property
    def case_id(self) -> str:
        return safe_case_id(f"{self.patient_id}_{self.side}_{self.view}")


def _descriptor(value: str | None) -> str | None:
    text = (value or "").strip()
    return None if text.upper() in ("", "N/A", "NA", "NONE", "NAN") else text


def read_rows(path: Path, report: IngestReport) -> list[Row] | None:
    """Parse one case-description CSV; bad rows are reported and left out.

    Returns:
        The usable rows, or ``None`` when the whole file is unusable (reported).
    """
    rel = report.rel(path)
    if not inside(path, report.root):
        report.skip(path, reason_of(outside_error(path, report.root)))
        return None
    try:
        with path.open(newline="", encoding="utf-8-sig") as fh:
            reader = csv.reader(fh)
            header = [h.strip().lower() for h in next(reader, [])]
            missing = [c for c in REQUIRED if c not in header]
            if not any(header):
                report.skip(path, "the CSV is empty (no header row). Fix: re-copy it from the "
                            "CBIS-DDSM download, or remove it")
                return None
            if missing:
                report.skip(path, f"not a CBIS-DDSM case-description CSV: no column(s) {missing}")
                return None
            rows: list[Row] = []
            for values in reader:
                line = reader.line_num
                if not any(v.strip() for v in values):
                    continue
                rec = dict(zip(header, values, strict=False))
                row = _row(rec, f"{rel}:{line}", path.parent, report)
                if row is not None:
                    rows.append(row)
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        report.skip(path, f"cannot be read as CSV ({type(exc).__name__}: {exc})")
        return None
    report.use(path)
    return rows


def _row(rec: dict[str, str], where: str, csv_dir: Path, report: IngestReport) -> Row | None:
    pid = (rec.get("patient_id") or "").strip()
    side = (rec.get("left or right breast") or "").strip().upper()
    view = (rec.get("image view") or "").strip().upper()
    abn_id = parse_int(rec.get("abnormality id"), 1, 255)
    problems = []
    if not pid:
        problems.append("empty patient_id")
    if side not in ("LEFT", "RIGHT"):
        problems.append(f"'left or right breast' is {side!r}, not LEFT or RIGHT")
    if view not in ("CC", "MLO"):
        problems.append(f"'image view' is {view!r}, not CC or MLO")
    if abn_id is None:
        problems.append(f"'abnormality id' is {rec.get('abnormality id')!r}")
    if problems:
        report.skip(where, "row skipped: " + "; ".join(problems))
        return None
    kind = (rec.get("abnormality type") or "").strip().lower()
    pathology = (rec.get("pathology") or "").strip().upper()
    density = rec.get("breast_density", rec.get("breast density"))
    return Row(
        where=where,
        csv_dir=csv_dir,
        patient_id=pid,
        side=side,
        view=view,
        abnormality_id=int(abn_id),  # type: ignore[arg-type]
        abnormality="calcification" if kind.startswith("calc") else "mass",
        pathology=pathology if pathology in PATHOLOGIES else "unknown",
        density=parse_int(density, 1, 4),
        shape=_descriptor(rec.get("mass shape") or rec.get("calc type")),
        margins=_descriptor(rec.get("mass margins") or rec.get("calc distribution")),
        assessment=parse_int(rec.get("assessment"), 0, 6),
        subtlety=parse_int(rec.get("subtlety"), 0, 5),
        image=rec.get("image file path") or "",
        crop=rec.get("cropped image file path") or "",
        roi=rec.get("roi mask file path") or "",
    )


@dataclass
class Resolver:
    """Finds the files CSV paths point to, tolerant of CBIS-DDSM naming differences."""

    root: Path
    bases: list[Path] = field(default_factory=list)
    refused: list[Path] = field(default_factory=list)
    #: Truth sidecar folders found (see :func:`find_truth_sidecars`); empty for real CBIS-DDSM.
    truth: list[Path] = field(default_factory=list)

    @classmethod
    def for_root(cls, root: Path, csv_dirs: list[Path]) -> Resolver:
        """Search ``CBIS-DDSM`` folders (up to 3 levels deep), the CSV folders and the root.

        Folders that resolve outside ``root`` (symbolic links) are not searched; they are
        listed in :attr:`refused` for the report.
        """
        trees = [
            root / "CBIS-DDSM",
            *safe_glob(root, "*/CBIS-DDSM"),
            *safe_glob(root, "*/*/CBIS-DDSM"),
        ]
        bases: list[Path] = []
        refused: list[Path] = []
        for base in [*trees, *(d / "CBIS-DDSM" for d in csv_dirs), *csv_dirs, root]:
            if not base.is_dir() or base in bases or base in refused:
                continue
            (bases if inside(base, root) else refused).append(base)
        return cls(root=root, bases=bases, refused=refused)

    def candidates(self, text: str, where: str) -> tuple[list[Path], str | None]:
        """DICOM files a CSV path may mean: the exact file, else those in its folders.

        Returns:
            The candidate files (empty when none) and a note when the exact file was missing.

        Raises:
            PathEscapeError: The path is absolute or contains ``..``, or the only files found
                lie outside the source folder (symbolic links).
        """
        rel = clean_relative(text, where=where)
        escaped: Path | None = None
        for base in self.bases:
            p = base / rel
            if p.is_file():
                if not inside(p, self.root):
                    raise outside_error(p, self.root)
                return [p], None
        for parent in _parents(rel):
            for base in self.bases:
                folder = base / parent
                if not folder.is_dir():
                    continue
                if not inside(folder, self.root):
                    escaped = escaped or folder
                    continue
                every = safe_rglob(folder, self.root, "*.dcm")
                found = [f for f in every if inside(f, self.root)]
                if found:
                    return found, f"CSV names {rel.as_posix()!r}, which is not on disk"
                if every:
                    escaped = escaped or every[0]
        if escaped is not None:
            raise outside_error(escaped, self.root)
        return [], None


def _parents(rel: PurePosixPath) -> list[PurePosixPath]:
    """The listed folder, then each folder above it, down to the top CBIS folder."""
    parts = rel.parts[:-1]
    return [PurePosixPath(*parts[:n]) for n in range(len(parts), 0, -1)]


def _pick_full(cands: list[Path]) -> Path:
    if len(cands) == 1:
        return cands[0]

    def size(p: Path) -> int:
        try:
            r, c = header_info(read_header(p), p).shape
            return r * c
        except InputFileError:
            return -1

    return max(cands, key=lambda p: (size(p), p.as_posix()))


def report_name(path: Path) -> str:
    """The last three parts of a path, for short messages."""
    return "/".join(path.parts[-3:])


def _is_two_valued(arr: np.ndarray) -> bool:
    lo, hi = arr.min(), arr.max()
    return bool(hi > lo and np.all((arr == lo) | (arr == hi)))


@dataclass
class _Mask:
    mask: np.ndarray
    path: Path
    notes: list[str]


def _find_mask(
    row: Row, resolver: Resolver, shape: tuple[int, int], config: IngestConfig
) -> _Mask:
    """The ROI mask of a row, whichever column it is in, resized to ``shape`` if needed."""
    notes: list[str] = []
    roi, roi_note = resolver.candidates(row.roi, row.where)
    crop, crop_note = resolver.candidates(row.crop, row.where) if row.crop.strip() else ([], None)
    ordered = list(dict.fromkeys([*roi, *crop]))
    if not ordered:
        raise InputFileError(
            f"no DICOM file found for the ROI mask {row.roi.strip()!r} "
            f"or the cropped image {row.crop.strip()!r}",
            path=row.where,
            fix="check that the abnormality folders were downloaded completely",
        )

    def rank(p: Path) -> tuple[int, int]:
        try:
            dims = header_info(read_header(p), p).shape
        except InputFileError:
            return (2, 0)
        return (0 if dims == shape else 1, ordered.index(p))

    errors: list[str] = []
    for path in sorted(ordered, key=rank):
        try:
            arr, _ = read_dicom(path, max_pixels=config.max_pixels, apply_luts=False)
        except InputFileError as exc:
            errors.append(f"{report_name(path)}: {reason_of(exc)}")
            continue
        if not _is_two_valued(arr):
            continue
        mask = binarize_mask(arr)
        if path not in roi:
            notes.append(
                f"abnormality {row.abnormality_id}: the ROI-mask and cropped-image columns are "
                "swapped in the CSV; the mask was told apart by its size and two values"
            )
        if roi_note and path in roi:
            notes.append(f"abnormality {row.abnormality_id}: {roi_note}; used {path.name}")
        if crop_note and path in crop and path not in roi:
            notes.append(f"abnormality {row.abnormality_id}: {crop_note}; used {path.name}")
        try:
            mask, resized = fit_mask(mask, shape, path=path)
        except InputFileError as exc:
            errors.append(f"{report_name(path)}: {reason_of(exc)}")
            continue
        if resized:
            notes.append(f"abnormality {row.abnormality_id}: {resized}")
        if not mask.any():
            continue
        return _Mask(mask=mask, path=path, notes=notes)
    detail = f" ({'; '.join(errors)})" if errors else ""
    raise InputFileError(
        f"no ROI mask (a two-valued image) among {len(ordered)} file(s) found for abnormality "
        f"{row.abnormality_id}{detail}",
        path=row.where,
        fix="check the abnormality folder holds the ROI mask DICOM",
    )


def _read_full(
    rows: list[Row], resolver: Resolver, config: IngestConfig
) -> tuple[Path, np.ndarray, DicomInfo, list[str]]:
    errors: list[str] = []
    for text in dict.fromkeys(r.image for r in rows):
        where = rows[0].where
        cands, note = resolver.candidates(text, where)
        if not cands:
            errors.append(f"{text.strip()!r} not found")
            continue
        path = _pick_full(cands)
        image, info = read_dicom(path, max_pixels=config.max_pixels)
        notes = [f"{note}; used {resolver_rel(resolver, path)}"] if note else []
        return path, image, info, notes
    raise InputFileError(
        "the full mammogram is missing: " + "; ".join(errors),
        path=rows[0].where,
        fix="check that the image folders were downloaded completely",
    )


def resolver_rel(resolver: Resolver, path: Path) -> str:
    """``path`` relative to the source root."""
    try:
        return path.resolve().relative_to(resolver.root.resolve()).as_posix()
    except ValueError:
        return str(path)


def _record(
    case_id: str,
    patient_id: str,
    side: str,
    view: str,
    path: Path,
    info: DicomInfo,
    resolver: Resolver,
    **fields: object,
) -> CaseRecord:
    synthetic = (info.manufacturer or "").lower() == SYNTH_MANUFACTURER
    notes = list(fields.pop("notes", []))  # type: ignore[call-overload]
    if synthetic:
        notes.append("synthetic mammogram written by mammo synth")
    if fields.get("pathology_source") == "biopsy" and synthetic:
        fields["pathology_source"] = "synthetic"
    return CaseRecord(
        case_id=case_id,
        patient_id=patient_id,
        laterality="L" if side == "LEFT" else "R",
        view=view,  # type: ignore[arg-type]
        source_dataset=SOURCE_DATASET,
        source_path=resolver_rel(resolver, path),
        original_shape=info.shape,
        pixel_spacing=info.pixel_spacing,
        photometric_interpretation=info.photometric_interpretation,
        bits_stored=info.bits_stored,
        notes=[*info.notes, *notes],
        **fields,  # type: ignore[arg-type]
    )


#: Largest accepted truth index (``truth.json``); the one ``mammo synth`` writes is far smaller.
MAX_INDEX_BYTES = 64 * 1024 * 1024
_SIDECAR_FIX = "re-run `mammo synth` to rewrite the dataset, or remove the truth/ folder"


def _check_index(folder: Path, root: Path) -> Path:
    """The sidecar's index file, checked to be a supported ``mammo-synth-truth`` index.

    Raises:
        InputFileError: No index, unreadable, another format or an unsupported version.
    """
    index = folder / INDEX_FILE
    if not index.is_file():
        raise InputFileError(
            f"the folder holds no {INDEX_FILE}, so it is not a mammo synth truth sidecar",
            path=folder,
            fix=f"rename or remove the folder if it is not one; else {_SIDECAR_FIX}",
        )
    require_inside(index, root)
    try:
        if index.stat().st_size > MAX_INDEX_BYTES:
            raise InputFileError(
                f"is larger than {MAX_INDEX_BYTES:,} bytes, far more than a truth index",
                path=index,
                fix=_SIDECAR_FIX,
            )
        data = json.loads(index.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise InputFileError(
            f"cannot be read as JSON ({type(exc).__name__}: {exc})", path=index, fix=_SIDECAR_FIX
        ) from None
    kind = data.get("format") if isinstance(data, dict) else None
    if kind != FORMAT_NAME:
        raise InputFileError(
            f"is not a truth index: 'format' is {kind!r}, not {FORMAT_NAME!r}",
            path=index,
            field="format",
            fix=_SIDECAR_FIX,
        )
    version = data.get("format_version")
    if version != FORMAT_VERSION or isinstance(version, bool):
        raise InputFileError(
            f"format_version {version!r} is not supported (this mammo-common reads version "
            f"{FORMAT_VERSION})",
            path=index,
            field="format_version",
            fix="upgrade mammo-common, or re-run `mammo synth` with this version",
        )
    return index


def find_truth_sidecars(source: Path, csv_dirs: list[Path], report: IngestReport) -> list[Path]:
    """The truth sidecars of a CBIS-DDSM folder: ``truth/`` at the root or beside a CSV.

    A ``truth/`` folder without a valid index, or lying outside ``source`` (a symbolic link),
    is reported and not used; the images are then imported without breast masks.

    Args:
        source: The dataset folder.
        csv_dirs: Folders holding the case-description CSVs.
        report: Receives the index files used and the sidecars refused.

    Returns:
        The usable sidecar folders, the root's first (empty for real CBIS-DDSM).
    """
    found: list[Path] = []
    for folder in dict.fromkeys([source / TRUTH_DIR, *(d / TRUTH_DIR for d in csv_dirs)]):
        if not folder.is_dir():
            continue
        try:
            require_inside(folder, source)
            index = _check_index(folder, source)
        except InputFileError as exc:
            report.skip(
                exc.path or folder,
                "truth sidecar not used (no breast mask is imported from it): " + reason_of(exc),
            )
            continue
        report.use(index)
        found.append(folder)
    return found


def read_truth_mask(
    path: Path, shape: tuple[int, int], *, root: Path, max_pixels: int
) -> np.ndarray:
    """Read and check one truth-sidecar mask.

    Args:
        path: The PNG (``truth/<image folder>/breast.png``).
        shape: The full mammogram's (rows, cols); the mask must have exactly this size.
        root: The source folder; the file must lie inside it.
        max_pixels: Largest accepted image (checked from the header).

    Returns:
        The mask as uint8 0/1.

    Raises:
        InputFileError: Outside the source, unreadable, of another size, not binary (0/255 or
            0/1) or empty.
    """
    require_inside(path, root)
    arr, _ = read_image(path, max_pixels=max_pixels)
    if tuple(arr.shape) != tuple(shape):
        raise InputFileError(
            f"the truth mask is {arr.shape[0]}x{arr.shape[1]} pixels but its full mammogram is "
            f"{shape[0]}x{shape[1]}; a truth mask has the mammogram's native size",
            path=path,
            fix=_SIDECAR_FIX,
        )
    hi = int(arr.max())
    if hi not in (0, 1, 255) or not np.all((arr == 0) | (arr == hi)):
        odd = np.unique(arr[(arr != 0) & (arr != 255) & (arr != 1)])[:5].tolist()
        odd = odd or sorted({int(v) for v in np.unique(arr)} - {0})[:5]
        raise InputFileError(
            f"the truth mask holds values other than 0/255 or 0/1 (e.g. {odd}); a truth mask "
            "is binary",
            path=path,
            fix=_SIDECAR_FIX,
        )
    if hi == 0:
        raise InputFileError(
            "the truth mask is empty (every pixel 0): no breast", path=path, fix=_SIDECAR_FIX
        )
    return (arr > 0).astype(np.uint8)


def image_folder(path: Path, root: Path) -> str | None:
    """The CBIS full-mammogram folder (``Mass-Training_P_00001_LEFT_CC``) holding a DICOM file."""
    try:
        parts = path.relative_to(root).parts[:-1]
    except ValueError:
        parts = path.parts[:-1]
    return next((p for p in reversed(parts) if FULL_FOLDER.match(p)), None)


def _truth_breast(
    path: Path,
    case_id: str,
    shape: tuple[int, int],
    resolver: Resolver,
    config: IngestConfig,
    report: IngestReport,
) -> tuple[np.ndarray, SidecarFile, str] | None:
    """The breast mask of an image from the truth sidecar, or ``None`` (reason reported)."""
    if not resolver.truth:
        return None
    lead = f"truth sidecar not used for image {case_id} (imported without breast_mask): "
    folder = image_folder(path, resolver.root)
    if folder is None:
        report.skip(
            path,
            lead + "its DICOM file is not inside a CBIS full-mammogram folder "
            "(Mass-Training_P_00001_LEFT_CC), the name a sidecar is matched by",
        )
        return None
    for sidecar in resolver.truth:
        file = sidecar / folder / BREAST_FILE
        if not (file.exists() or file.is_symlink()):
            continue
        try:
            mask = read_truth_mask(file, shape, root=resolver.root, max_pixels=config.max_pixels)
        except InputFileError as exc:
            report.skip(file, lead + reason_of(exc))
            return None
        report.use(file)
        note = (
            f"breast_mask: exact truth read from the synthetic truth sidecar {report.rel(file)} "
            "(written by mammo synth), not a labeller's mask"
        )
        return mask, SidecarFile(sidecar=sidecar, path=file), note
    missing = resolver.truth[0] / folder / BREAST_FILE
    report.skip(
        missing,
        lead + reason_of(
            InputFileError(f"the sidecar has no {folder}/{BREAST_FILE}", fix=_SIDECAR_FIX)
        ),
    )
    return None


def _case(
    rows: list[Row], resolver: Resolver, config: IngestConfig, report: IngestReport
) -> CaseItem:
    rows = sorted(rows, key=lambda r: (r.abnormality != "mass", r.abnormality_id, r.where))
    first = rows[0]
    path, image, info, notes = _read_full(rows, resolver, config)
    shape = info.shape
    used = [path]
    mass_mask = np.zeros(shape, np.uint8)
    labels = np.zeros(shape, np.uint8)
    masses = []
    for k, row in enumerate(rows, 1):
        found = _find_mask(row, resolver, shape, config)
        notes.extend(found.notes)
        used.append(found.path)
        labels[found.mask > 0] = k
        if row.abnormality == "mass":
            mass_mask |= found.mask
        masses.append(
            mass_record(
                k,
                found.mask,
                abnormality=row.abnormality,
                pathology=row.pathology,
                shape=row.shape,
                margins=row.margins,
                birads=row.assessment,
                subtlety=row.subtlety,
            )
        )
        if row.abnormality_id != k:
            notes.append(f"CSV abnormality id {row.abnormality_id} stored as mass_id {k}")
    mass_rows = [r for r in rows if r.abnormality == "mass"]
    pathology = worst_pathology([r.pathology for r in (mass_rows or rows)])
    birads = [r.assessment for r in rows if r.assessment is not None]
    density = next((r.density for r in rows if r.density is not None), None)
    truth = _truth_breast(path, first.case_id, shape, resolver, config, report)
    if truth is not None:
        notes.append(truth[2])
    record = _record(
        first.case_id,
        first.patient_id,
        first.side,
        first.view,
        path,
        info,
        resolver,
        abnormality="mass" if mass_rows else "calcification",
        pathology=pathology,
        pathology_source="biopsy" if pathology != "unknown" else "unknown",
        birads=max(birads) if birads else None,
        density=density,
        masses=masses,
        notes=notes,
    )
    for p in used:
        report.use(p)
    return CaseItem(
        record=record,
        image=image,
        mass_mask=mass_mask,
        mass_labels=labels,
        breast_mask=None if truth is None else truth[0],
        breast_mask_from=None if truth is None else truth[1],
    )


def _unlisted(resolver: Resolver, listed: set[str]) -> dict[str, tuple[re.Match, Path]]:
    found: dict[str, tuple[re.Match, Path]] = {}
    for base in resolver.bases:
        for folder in sorted(base.iterdir()):
            m = FULL_FOLDER.match(folder.name)
            if not m or not folder.is_dir():
                continue
            case_id = safe_case_id(f"{m['pid']}_{m['side'].upper()}_{m['view'].upper()}")
            if case_id not in listed and case_id not in found:
                found[case_id] = (m, folder)
    return found


def _normal_case(
    case_id: str, match: re.Match, folder: Path, resolver: Resolver, config: IngestConfig,
    report: IngestReport,
) -> CaseItem:
    if not inside(folder, resolver.root):
        raise outside_error(folder, resolver.root)
    every = safe_rglob(folder, resolver.root, "*.dcm")
    cands = [f for f in every if inside(f, resolver.root)]
    if every and not cands:
        raise outside_error(every[0], resolver.root)
    if not cands:
        raise InputFileError("holds no DICOM file", path=folder, fix="remove the empty folder")
    path = _pick_full(cands)
    image, info = read_dicom(path, max_pixels=config.max_pixels)
    notes = ["not listed in any case-description CSV: imported as an image without abnormality"]
    truth = _truth_breast(path, case_id, info.shape, resolver, config, report)
    if truth is not None:
        notes.append(truth[2])
    record = _record(
        case_id,
        match["pid"],
        match["side"].upper(),
        match["view"].upper(),
        path,
        info,
        resolver,
        abnormality="none",
        notes=notes,
    )
    report.use(path)
    zeros = np.zeros(image.shape, np.uint8)
    return CaseItem(
        record=record,
        image=image,
        mass_mask=zeros,
        mass_labels=zeros,
        breast_mask=None if truth is None else truth[0],
        breast_mask_from=None if truth is None else truth[1],
    )


@dataclass
class Plan:
    """What the CSVs say: the rows of each case, and the CSVs that could not be used."""

    resolver: Resolver
    cases: dict[str, list[Row]]
    unusable_csvs: list[Path]


def plan(source: Path, report: IngestReport) -> Plan:
    """Read every CSV and group the rows by case id (nothing is decoded yet)."""
    csvs = find_csvs(source)
    rows: list[Row] = []
    unusable: list[Path] = []
    for path in csvs:
        found = read_rows(path, report)
        if found is None:
            unusable.append(path)
        else:
            rows.extend(found)
    csv_dirs = sorted({p.parent for p in csvs})
    resolver = Resolver.for_root(source, csv_dirs)
    for folder in resolver.refused:
        report.skip(folder, "folder not searched: " + reason_of(outside_error(folder, source)))
    resolver.truth = find_truth_sidecars(source, csv_dirs, report)
    cases: dict[str, list[Row]] = {}
    for row in rows:
        cases.setdefault(row.case_id, []).append(row)
    return Plan(resolver=resolver, cases=cases, unusable_csvs=unusable)


def iter_cases(source: Path, report: IngestReport, config: IngestConfig) -> Iterator[CaseItem]:
    """Yield the cases of a CBIS-DDSM folder one at a time, in case-id order.

    Args:
        source: Folder holding the case-description CSVs and the ``CBIS-DDSM`` tree.
        report: Receives every skipped file or row and every file used.
        config: Ingest settings (``max_pixels``).
    """
    planned = plan(source, report)
    resolver, cases = planned.resolver, planned.cases
    unlisted = _unlisted(resolver, set(cases))
    if planned.unusable_csvs and unlisted:
        # an unlisted image may be listed in the CSV that could not be read: importing it as
        # an image without abnormality would mislabel it
        names = ", ".join(report.rel(p) for p in planned.unusable_csvs)
        for case_id in sorted(unlisted):
            report.skip(
                unlisted[case_id][1],
                f"image {case_id} skipped: no readable CSV lists it, and it may be listed in "
                f"the unusable {names}, so it is not imported as an image without abnormality. "
                "Fix: repair or re-copy the CSV (see its own entry)",
            )
        unlisted = {}
    for case_id in sorted(set(cases) | set(unlisted)):
        try:
            if case_id in cases:
                yield _case(cases[case_id], resolver, config, report)
            else:
                yield _normal_case(case_id, *unlisted[case_id], resolver, config, report)
        except InputFileError as exc:
            report.skip(exc.path or case_id, f"image {case_id} skipped: {reason_of(exc)}")
