"""Import the reference code's PNG folders: ``{train01..05,valid01..05,test}/{mg,mask}/N.png``.

Any folder holding both ``mg/`` and ``mask/`` is a subset (the source itself for a flat pair).
Images and masks pair by file stem. One patient per image unless ``patients.csv`` (columns
``file,patient_id``; ``file`` as ``train01/mg/0.png``, ``train01/0.png`` or a unique ``0.png``)
says otherwise. The reference layout repeats images across the fold folders, so an image whose
pixels equal an earlier one is skipped and reported as a duplicate.
"""

from __future__ import annotations

import csv
import hashlib
from collections.abc import Iterator
from pathlib import Path

from mammo_common.errors import InputFileError
from mammo_common.imageio import (
    IMAGE_SUFFIXES,
    binarize_mask,
    read_image,
    refuse_blank,
    to_uint16,
)
from mammo_common.ingest.common import (
    CaseItem,
    fit_mask,
    inside,
    mass_record,
    outside_error,
    safe_glob,
)
from mammo_common.ingest.config import IngestConfig
from mammo_common.ingest.report import IngestReport, reason_of
from mammo_common.schema import CaseRecord, safe_case_id

SOURCE_DATASET = "folder"


def find_subsets(source: Path, report: IngestReport | None = None) -> list[Path]:
    """Folders (the source or up to 3 levels below) holding both ``mg/`` and ``mask/``.

    An ``mg/`` or ``mask/`` folder that resolves outside ``source`` (a symbolic link) is not
    read; it is reported when ``report`` is given.
    """
    found = set()
    for pattern in ("mg", "*/mg", "*/*/mg", "*/*/*/mg"):
        for mg in safe_glob(source, pattern):
            mask = mg.parent / "mask"
            if not (mg.is_dir() and mask.is_dir()):
                continue
            outside = [d for d in (mg, mask) if not inside(d, source)]
            if outside:
                if report is not None:
                    for d in outside:
                        report.skip(d, "folder not read: " + reason_of(outside_error(d, source)))
                continue
            found.add(mg.parent)
    return sorted(found, key=lambda p: p.as_posix())


def _images(folder: Path) -> dict[str, Path]:
    return {
        p.stem: p
        for p in sorted(folder.iterdir())
        if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
    }


def read_patients(path: Path | None, report: IngestReport) -> dict[str, str]:
    """The ``file -> patient_id`` mapping (keys normalised to POSIX relative paths)."""
    if path is None or not path.is_file():
        return {}
    mapping: dict[str, str] = {}
    try:
        with path.open(newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            cols = {c.strip().lower(): c for c in reader.fieldnames or []}
            if "file" not in cols or "patient_id" not in cols:
                raise InputFileError(
                    "needs the columns file,patient_id", path=path, fix="rename the columns"
                )
            for row in reader:
                key = (row.get(cols["file"]) or "").strip().replace("\\", "/").lstrip("./")
                pid = (row.get(cols["patient_id"]) or "").strip()
                if key and pid:
                    mapping[key] = pid
    except (OSError, csv.Error, UnicodeDecodeError) as exc:
        raise InputFileError(
            f"cannot be read ({type(exc).__name__}: {exc})", path=path, fix="check the CSV"
        ) from None
    report.use(path)
    return mapping


def _patient(mapping: dict[str, str], subset: str, mg: Path, source: Path, default: str) -> str:
    rel = mg.resolve().relative_to(source.resolve()).as_posix()
    last = Path(subset).name
    for key in (rel, f"{subset}/{mg.name}".lstrip("/"), f"{last}/{mg.name}".lstrip("/"), mg.name):
        if key in mapping:
            return mapping[key]
    return default


def _case(
    mg: Path, mask_path: Path, subset: str, report: IngestReport, config: IngestConfig,
    mapping: dict[str, str], source: Path,
) -> tuple[CaseItem, str]:
    raw, info = read_image(mg, max_pixels=config.max_pixels)
    refuse_blank(raw, mg)
    image, note = to_uint16(raw)
    notes = list(info.notes) + ([note] if note else [])
    digest = hashlib.sha256(image.tobytes()).hexdigest()
    mask = binarize_mask(read_image(mask_path, max_pixels=config.max_pixels)[0])
    mask, resized = fit_mask(mask, image.shape, path=mask_path)
    if resized:
        notes.append(resized)
    if subset:
        notes.append(f"subset {subset}")
    case_id = safe_case_id(f"{subset}_{mg.stem}" if subset else mg.stem)
    breast = config.folder_mask == "breast"
    has_mass = bool(mask.any()) and not breast
    record = CaseRecord(
        case_id=case_id,
        patient_id=_patient(mapping, subset, mg, source, case_id),
        abnormality="mass" if has_mass else ("none" if not breast else "unknown"),
        source_dataset=SOURCE_DATASET,
        source_path=report.rel(mg),
        original_shape=image.shape,
        photometric_interpretation="MONOCHROME2",
        bits_stored=info.bits,
        masses=[mass_record(1, mask, abnormality="mass")] if has_mass else [],
        notes=notes,
    )
    item = CaseItem(record=record, image=image)
    if breast:
        item.breast_mask = mask
    else:
        item.mass_mask = mask
        item.mass_labels = mask.copy()
    return item, digest


def iter_cases(source: Path, report: IngestReport, config: IngestConfig) -> Iterator[CaseItem]:
    """Yield the cases of every ``mg``/``mask`` pair folder under ``source``."""
    patients_csv = config.patients_csv or (source / "patients.csv")
    if config.patients_csv is None and patients_csv.is_file() and not inside(patients_csv, source):
        raise outside_error(patients_csv, source)
    mapping = read_patients(patients_csv if patients_csv.is_file() else None, report)
    seen: dict[str, str] = {}
    for folder in find_subsets(source, report):
        subset = "" if folder == source else folder.relative_to(source).as_posix()
        images, masks = _images(folder / "mg"), _images(folder / "mask")
        for files in (images, masks):
            for stem, path in list(files.items()):
                if not inside(path, source):
                    report.skip(path, reason_of(outside_error(path, source)))
                    del files[stem]
        for stem in sorted(set(masks) - set(images)):
            report.skip(masks[stem], "mask without an image of the same name in mg/")
        for stem, mg in sorted(images.items(), key=lambda kv: (len(kv[0]), kv[0])):
            if stem not in masks:
                report.skip(mg, "image without a mask of the same name in mask/")
                continue
            try:
                item, digest = _case(mg, masks[stem], subset, report, config, mapping, source)
            except InputFileError as exc:
                report.skip(exc.path or mg, reason_of(exc))
                continue
            if digest in seen:
                report.skip(mg, f"same pixels as {seen[digest]} (folds repeat images): left out")
                continue
            seen[digest] = item.record.case_id
            report.use(mg)
            report.use(masks[stem])
            yield item
