"""Import INbreast: ``AllDICOMs/*.dcm``, ``AllXML/<imageID>.xml`` (OsiriX plist), ``INbreast.csv``.

* File names ``<imageID>_<patientHash>_MG_<R|L>_<CC|ML>_ANON.dcm`` give the image id (the case
  id), the patient (the hash, unless the CSV's ``Patient ID`` holds a real id), side and view.
* Lesions come from ``Images[0].ROIs[]``: ROIs named Mass / Spiculated Region (3+ points) are
  filled polygons in ``mass_mask`` and ``mass_labels``; 1-2 point ROIs and ROIs named
  Calcification / Cluster are calcifications (counted in the notes, not in the mass mask); other
  ROIs (Distortion, Asymmetry, ...) are noted and left out.
* INbreast has no biopsy label per lesion: the pathology is the BI-RADS proxy (<= 3 benign,
  >= 4 malignant; ``4a``/``4b``/``4c`` read as 4), ``pathology_source="birads_proxy"``.
"""

from __future__ import annotations

import csv
import plistlib
import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from mammo_common.errors import InputFileError
from mammo_common.ingest.common import (
    CaseItem,
    fill_polygon,
    inside,
    mass_record,
    outside_error,
    parse_int,
    require_inside,
    safe_glob,
)
from mammo_common.ingest.config import IngestConfig
from mammo_common.ingest.dicom import read_dicom
from mammo_common.ingest.report import IngestReport, reason_of
from mammo_common.schema import CaseRecord, safe_case_id

SOURCE_DATASET = "INbreast"
NAME = re.compile(
    r"^(?P<id>\d+)_(?P<hash>[0-9A-Za-z]+)_MG_(?P<side>[RL])_(?P<view>CC|ML|MLO)(?:_ANON)?$",
    re.IGNORECASE,
)
MASS_NAMES = {"mass", "spiculated region", "spiculated mass", "espiculated region"}
CALC_NAMES = {"calcification", "calcifications", "cluster", "calcification cluster"}
PROXY_NOTE = (
    "pathology is a BI-RADS proxy (<=3 benign, >=4 malignant): INbreast has no biopsy label "
    "per lesion"
)
_POINT = re.compile(r"\(\s*([-+0-9.eE]+)\s*,\s*([-+0-9.eE]+)\s*(?:,[^)]*)?\)")


def _find_root(source: Path) -> Path:
    if (source / "AllDICOMs").is_dir():
        require_inside(source / "AllDICOMs", source)
        return source
    for sub in safe_glob(source, "*/AllDICOMs"):
        if sub.is_dir():
            require_inside(sub, source)
            return sub.parent
    raise InputFileError(
        "has no AllDICOMs folder", path=source, fix="point at the unpacked INbreast folder"
    )


def read_csv(root: Path, report: IngestReport) -> dict[str, dict[str, str]]:
    """``INbreast.csv`` rows keyed by file name (image id); empty when the CSV is absent."""
    paths = [p for p in safe_glob(root, "*.csv") if p.name.lower().startswith("inbreast")]
    rows: dict[str, dict[str, str]] = {}
    for path in paths:
        if not inside(path, report.root):
            report.skip(path, reason_of(outside_error(path, report.root)))
            continue
        try:
            with path.open(newline="", encoding="utf-8-sig", errors="replace") as fh:
                reader = csv.reader(fh, delimiter=";")
                header = [h.strip().lower() for h in next(reader, [])]
                if "file name" not in header:
                    report.skip(path, "no 'File Name' column: not the INbreast.csv table")
                    continue
                for values in reader:
                    rec = {k: v.strip() for k, v in zip(header, values, strict=False)}
                    key = rec.get("file name", "")
                    key = key.split(".")[0]
                    if key:
                        rows[key] = rec
        except (OSError, csv.Error) as exc:
            report.skip(path, f"cannot be read as CSV ({type(exc).__name__}: {exc})")
            continue
        report.use(path)
    return rows


def _number(value: object) -> float | None:
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError, OverflowError):
        return None
    return number if np.isfinite(number) and abs(number) < 1e7 else None


def parse_points(points: object) -> np.ndarray:
    """``["(x, y)", ...]`` strings (or pairs) to an (N, 2) float array of x, y.

    Items that are not a point with two finite coordinates (junk text, NaN, absurdly large
    values) are left out; anything that is not a list gives no point.
    """
    if not isinstance(points, (list, tuple)):
        return np.zeros((0, 2))
    out = []
    for item in points:
        if isinstance(item, (list, tuple)) and len(item) >= 2:
            pair = (_number(item[0]), _number(item[1]))
        else:
            m = _POINT.search(str(item))
            pair = (_number(m.group(1)), _number(m.group(2))) if m else (None, None)
        if pair[0] is not None and pair[1] is not None:
            out.append(pair)
    return np.asarray(out, dtype=float).reshape(-1, 2)


def read_rois(path: Path) -> list[dict]:  # type: ignore[type-arg]
    """The ROIs of ``Images[0]`` in an OsiriX plist XML file.

    Raises:
        InputFileError: The file is not a readable plist with ``Images``.
    """
    try:
        with path.open("rb") as fh:
            data = plistlib.load(fh)
    except Exception as exc:  # plistlib raises several types for bad XML
        raise InputFileError(
            f"cannot be read as an OsiriX plist ({type(exc).__name__}: {exc})",
            path=path,
            fix="re-copy the XML file from the INbreast download",
        ) from None
    images = data.get("Images") if isinstance(data, dict) else None
    if not isinstance(images, list) or not images:
        raise InputFileError("has no Images list", path=path, field="Images", fix="re-copy it")
    rois = images[0].get("ROIs", []) if isinstance(images[0], dict) else []
    if not isinstance(rois, list):
        raise InputFileError(
            f"Images[0].ROIs is a {type(rois).__name__}, not a list",
            path=path,
            field="Images[0].ROIs",
            fix="re-copy the XML file from the INbreast download",
        )
    return [r for r in rois if isinstance(r, dict)]


def _lesions(
    rois: list[dict], shape: tuple[int, int]  # type: ignore[type-arg]
) -> tuple[list[np.ndarray], int, list[str]]:
    masses: list[np.ndarray] = []
    n_calc = 0
    notes: list[str] = []
    for roi in rois:
        name = str(roi.get("Name", "")).strip()
        pts = parse_points(roi.get("Point_px", []))
        if len(pts) <= 2 or name.lower() in CALC_NAMES:
            n_calc += 1
            continue
        if name.lower() not in MASS_NAMES:
            notes.append(f"ROI {name!r} ({len(pts)} points) is not a mass: left out")
            continue
        mask = fill_polygon(pts[:, 0], pts[:, 1], shape)
        if mask.any():
            masses.append(mask)
        else:
            notes.append(f"ROI {name!r} lies outside the image: left out")
    return masses, n_calc, notes


def _case(
    dcm: Path, match: re.Match, xml_dir: Path, rows: dict, report: IngestReport,  # type: ignore[type-arg]
    config: IngestConfig,
) -> CaseItem:
    image, info = read_dicom(dcm, max_pixels=config.max_pixels)
    shape = info.shape
    image_id = match["id"]
    row = rows.get(image_id, {})
    notes = list(info.notes)
    if not row:
        notes.append("not listed in INbreast.csv: no BI-RADS or density")
    birads = parse_int(row.get("bi-rads"), 0, 6)
    pathology = "unknown" if birads in (None, 0) else ("MALIGNANT" if birads >= 4 else "BENIGN")
    xml = xml_dir / f"{image_id}.xml"
    rois: list[dict] = []  # type: ignore[type-arg]
    if xml.is_file():
        try:
            require_inside(xml, report.root)
            rois = read_rois(xml)
            report.use(xml)
        except InputFileError as exc:
            report.skip(xml, f"annotations unreadable, image {image_id} skipped: {reason_of(exc)}")
            raise
    masks, n_calc, roi_notes = _lesions(rois, shape)
    notes.extend(roi_notes)
    if n_calc:
        notes.append(f"{n_calc} calcification ROI(s) not in the mass mask")
    mass_mask = np.zeros(shape, np.uint8)
    labels = np.zeros(shape, np.uint8)
    records = []
    for k, m in enumerate(masks[:255], 1):
        mass_mask[m] = 1
        labels[m] = k
        records.append(
            mass_record(k, m, abnormality="mass", pathology=pathology, birads=birads)
        )
    abnormality = "mass" if masks else ("calcification" if n_calc else "none")
    if abnormality != "none" and pathology != "unknown":
        notes.append(PROXY_NOTE)
    patient = row.get("patient id", "")
    if not patient or patient.lower() in ("removed", "nan", "none"):
        patient = match["hash"]
    record = CaseRecord(
        case_id=safe_case_id(image_id),
        patient_id=patient,
        laterality=match["side"].upper(),  # type: ignore[arg-type]
        view="CC" if match["view"].upper() == "CC" else "MLO",
        abnormality=abnormality,  # type: ignore[arg-type]
        pathology=pathology if abnormality != "none" else "unknown",  # type: ignore[arg-type]
        pathology_source="birads_proxy" if abnormality != "none" and birads else "unknown",
        birads=birads,
        density=parse_int(row.get("acr"), 1, 4),
        source_dataset=SOURCE_DATASET,
        source_path=report.rel(dcm),
        original_shape=shape,
        pixel_spacing=info.pixel_spacing,
        photometric_interpretation=info.photometric_interpretation,
        bits_stored=info.bits_stored,
        masses=records,
        notes=notes,
    )
    report.use(dcm)
    return CaseItem(record=record, image=image, mass_mask=mass_mask, mass_labels=labels)


def iter_cases(source: Path, report: IngestReport, config: IngestConfig) -> Iterator[CaseItem]:
    """Yield the INbreast cases one at a time, in file-name order."""
    root = _find_root(source)
    rows = read_csv(root, report)
    xml_dir = root / "AllXML"
    seen: set[str] = set()
    for dcm in sorted((root / "AllDICOMs").iterdir()):
        if not dcm.is_file() or dcm.suffix.lower() != ".dcm":
            if dcm.is_file() and not dcm.name.startswith("."):
                report.skip(dcm, "not a .dcm file")
            continue
        if not inside(dcm, report.root):
            report.skip(dcm, reason_of(outside_error(dcm, report.root)))
            continue
        match = NAME.match(dcm.stem)
        if match is None:
            report.skip(
                dcm, "file name does not follow <imageID>_<patientHash>_MG_<R|L>_<CC|ML>_ANON.dcm"
            )
            continue
        if match["id"] in seen:
            report.skip(dcm, f"image id {match['id']} appears twice; the first file was used")
            continue
        try:
            item = _case(dcm, match, xml_dir, rows, report, config)
        except InputFileError as exc:
            if (exc.path or "").endswith(".xml"):
                continue
            report.skip(dcm, reason_of(exc))
            continue
        seen.add(match["id"])
        yield item
