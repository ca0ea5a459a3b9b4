"""Import BCDR (film F0x and digital D0x subsets): outlines CSVs, image-info CSVs, 8-bit TIFFs.

* ``bcdr_*_outlines.csv``: one row per lesion outline (``lw_x_points``/``lw_y_points``,
  space-separated with a leading space; the polygon is closed); ``mammography_nodule = 1``
  marks a mass (in ``mass_mask``); other lesions (calcifications, distortions) are kept in
  ``mass_labels``/``masses`` but not in the mass mask. ``classification`` is " Benign" or
  " Malign" (biopsy-proven).
* image-info CSVs (any CSV next to an outlines CSV with ``image_filename`` and
  ``image_type_id`` columns): images without outlines become cases without abnormality.
* ``image_view`` / ``image_type_id``: 1 RCC, 2 LCC, 3 RMLO, 4 LMLO. ``density`` may be blank or
  "N"; file names may carry a leading space. Images (8-bit) are scaled to 16 bits (x257).

Case id: ``<patient>_<study>_<series>_<view>`` (e.g. ``3_5_1_LCC``).
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mammo_common.errors import InputFileError
from mammo_common.imageio import read_image, refuse_blank, to_uint16
from mammo_common.ingest.common import (
    CaseItem,
    clean_relative,
    fill_polygon,
    inside,
    mass_record,
    outside_error,
    parse_int,
    safe_glob,
    worst_pathology,
)
from mammo_common.ingest.config import IngestConfig
from mammo_common.ingest.report import IngestReport, reason_of
from mammo_common.schema import CaseRecord, safe_case_id

SOURCE_DATASET = "BCDR"
VIEWS = {1: ("R", "CC"), 2: ("L", "CC"), 3: ("R", "MLO"), 4: ("L", "MLO")}
OUTLINE_COLUMNS = ("patient_id", "image_filename", "lw_x_points", "lw_y_points")
INFO_COLUMNS = ("patient_id", "image_filename", "image_type_id")


@dataclass
class Lesion:
    """One outline row."""

    where: str
    xs: np.ndarray
    ys: np.ndarray
    kind: str
    pathology: str


@dataclass
class Image:
    """One image with what the CSVs say about it."""

    csv_dir: Path
    filename: str
    where: str
    patient: str
    study: str
    series: str
    view_code: int | None
    density: int | None
    lesions: list[Lesion] = field(default_factory=list)


def _read(path: Path, report: IngestReport) -> tuple[list[str], list[tuple[int, dict[str, str]]]]:
    if not inside(path, report.root):
        report.skip(path, reason_of(outside_error(path, report.root)))
        return [], []
    try:
        with path.open(newline="", encoding="utf-8-sig", errors="replace") as fh:
            reader = csv.reader(fh)
            header = [h.strip().lower() for h in next(reader, [])]
            rows = [
                (reader.line_num, dict(zip(header, values, strict=False)))
                for values in reader
                if any(v.strip() for v in values)
            ]
    except (OSError, csv.Error) as exc:
        report.skip(path, f"cannot be read as CSV ({type(exc).__name__}: {exc})")
        return [], []
    return header, rows


def _points(text: str) -> np.ndarray | None:
    """Space-separated coordinates; ``None`` when any is not a finite, plausible number."""
    try:
        values = np.asarray([float(v) for v in str(text).replace(",", " ").split()], dtype=float)
    except (ValueError, OverflowError):
        return None
    if not np.all(np.isfinite(values)) or np.any(np.abs(values) > 1e7):
        return None
    return values


def _pathology(text: str | None) -> str:
    value = (text or "").strip().lower()
    if value.startswith("malign"):
        return "MALIGNANT"
    if value.startswith("benign"):
        return "BENIGN"
    return "unknown"


def _image(rec: dict[str, str], csv_dir: Path, where: str, view_key: str) -> Image:
    return Image(
        csv_dir=csv_dir,
        filename=rec.get("image_filename", ""),
        where=where,
        patient=rec.get("patient_id", "").strip(),
        study=rec.get("study_id", "").strip(),
        series=rec.get("series", "").strip(),
        view_code=parse_int(rec.get(view_key), 1, 9),
        density=parse_int(rec.get("density"), 1, 4),
    )


def plan(source: Path, report: IngestReport) -> dict[tuple[Path, str], Image]:
    """Read every outlines and image-info CSV; images keyed by (CSV folder, file name)."""
    images: dict[tuple[Path, str], Image] = {}
    outlines = sorted({*safe_glob(source, "*_outlines.csv"),
                       *safe_glob(source, "*/*_outlines.csv"),
                       *safe_glob(source, "*/*/*_outlines.csv")})
    for path in outlines:
        header, rows = _read(path, report)
        if not all(c in header for c in OUTLINE_COLUMNS):
            report.skip(path, f"not a BCDR outlines CSV: needs columns {list(OUTLINE_COLUMNS)}")
            continue
        report.use(path)
        for line, rec in rows:
            where = f"{report.rel(path)}:{line}"
            key = (path.parent, rec.get("image_filename", "").strip())
            img = images.setdefault(key, _image(rec, path.parent, where, "image_view"))
            xs, ys = _points(rec.get("lw_x_points", "")), _points(rec.get("lw_y_points", ""))
            if xs is None or ys is None:
                report.skip(where, "outline coordinates are not all finite numbers: left out")
                continue
            if len(xs) != len(ys) or len(xs) < 3:
                report.skip(where, f"outline has {len(xs)} x and {len(ys)} y points: left out")
                continue
            if parse_int(rec.get("mammography_nodule"), 0, 1) == 1:
                kind = "mass"
            elif parse_int(rec.get("mammography_calcification"), 0, 1) == 1 or parse_int(
                rec.get("mammography_microcalcification"), 0, 1
            ) == 1:
                kind = "calcification"
            else:
                kind = "unknown"
            img.lesions.append(Lesion(where, xs, ys, kind, _pathology(rec.get("classification"))))
    for folder in sorted({p.parent for p in outlines}):
        for path in safe_glob(folder, "*.csv"):
            if path in outlines:
                continue
            header, rows = _read(path, report)
            if not all(c in header for c in INFO_COLUMNS) or "lw_x_points" in header:
                continue
            report.use(path)
            for line, rec in rows:
                key = (folder, rec.get("image_filename", "").strip())
                if key[1] and key not in images:
                    images[key] = _image(rec, folder, f"{report.rel(path)}:{line}", "image_type_id")
    return images


def _case(img: Image, report: IngestReport, config: IngestConfig) -> CaseItem:
    rel = clean_relative(img.filename, where=img.where)
    path = img.csv_dir / rel
    if not path.is_file():
        raise InputFileError(
            f"the image {rel.as_posix()!r} is missing", path=img.where,
            fix="check that the subset's image folders were unpacked next to its CSVs",
        )
    if not inside(path, report.root):
        raise outside_error(path, report.root)
    raw, info = read_image(path, max_pixels=config.max_pixels)
    refuse_blank(raw, path)
    image, note = to_uint16(raw)
    notes = list(info.notes) + ([note] if note else [])
    shape = info.shape
    mass_mask = np.zeros(shape, np.uint8)
    labels = np.zeros(shape, np.uint8)
    masses = []
    for k, lesion in enumerate(img.lesions[:255], 1):
        mask = fill_polygon(lesion.xs, lesion.ys, shape)
        if not mask.any():
            notes.append(f"outline {lesion.where} lies outside the image: left out")
            continue
        labels[mask] = k
        if lesion.kind == "mass":
            mass_mask[mask] = 1
        masses.append(mass_record(k, mask, abnormality=lesion.kind, pathology=lesion.pathology))
    kinds = [m.abnormality for m in masses]
    abnormality = (
        "mass" if "mass" in kinds else "calcification" if "calcification" in kinds
        else "unknown" if kinds else "none"
    )
    pathology = worst_pathology([m.pathology for m in masses if m.abnormality == abnormality])
    side, view = VIEWS.get(img.view_code or 0, ("unknown", "other"))
    view_name = f"{side}{view}" if img.view_code in VIEWS else Path(rel).stem
    record = CaseRecord(
        case_id=safe_case_id(f"{img.patient}_{img.study}_{img.series}_{view_name}"),
        patient_id=img.patient or "unknown",
        laterality=side,  # type: ignore[arg-type]
        view=view,  # type: ignore[arg-type]
        abnormality=abnormality,  # type: ignore[arg-type]
        pathology=pathology,  # type: ignore[arg-type]
        pathology_source="biopsy" if pathology != "unknown" else "unknown",
        density=img.density,
        source_dataset=SOURCE_DATASET,
        source_path=report.rel(path),
        original_shape=shape,
        photometric_interpretation="MONOCHROME2",
        bits_stored=info.bits,
        masses=masses,
        notes=notes,
    )
    report.use(path)
    return CaseItem(record=record, image=image, mass_mask=mass_mask, mass_labels=labels)


def iter_cases(source: Path, report: IngestReport, config: IngestConfig) -> Iterator[CaseItem]:
    """Yield the BCDR cases one at a time, in (folder, file name) order."""
    images = plan(source, report)
    seen: set[str] = set()
    for key in sorted(images, key=lambda k: (k[0].as_posix(), k[1])):
        img = images[key]
        try:
            item = _case(img, report, config)
        except InputFileError as exc:
            report.skip(exc.path or img.where,
                        f"image {img.filename.strip()!r} skipped: {reason_of(exc)}")
            continue
        if item.record.case_id in seen:
            item.record.case_id = safe_case_id(f"{item.record.case_id}_{Path(key[1]).stem}")
        if item.record.case_id in seen:
            report.skip(img.where, f"image {img.filename.strip()!r} listed twice: left out")
            continue
        seen.add(item.record.case_id)
        yield item
