"""Import real (or synthetic) mammogram datasets into a ``mammograms`` store.

``run_ingest(IngestConfig(source=..., out=...))`` detects the format (CBIS-DDSM, INbreast, BCDR,
the reference code's PNG folders, or any folder of unlabelled DICOM/PNG/TIFF mammograms), streams
the cases one by one into a
:class:`~mammo_common.store.MammogramsWriter`, and reports every skipped file with its reason.
The source is only read; nothing is written outside the output store, and a source without any
usable case fails with a clear message and writes nothing.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from pathlib import Path

from mammo_common.errors import InputFileError
from mammo_common.ingest.common import CaseItem, safe_glob, truth_parents
from mammo_common.ingest.config import FORMATS, Format, IngestConfig, IngestResult
from mammo_common.ingest.report import IngestReport, format_skipped

__all__ = [
    "FORMATS",
    "IngestConfig",
    "IngestResult",
    "detect_format",
    "ingest",
    "iter_source_cases",
    "run_ingest",
]

_MODULES = {
    "cbis-ddsm": "mammo_common.ingest.cbis_ddsm",
    "inbreast": "mammo_common.ingest.inbreast",
    "bcdr": "mammo_common.ingest.bcdr",
    "folder": "mammo_common.ingest.folder",
    "images": "mammo_common.ingest.images",
}

_SIGNS = {
    "cbis-ddsm": "mass_case_description_*.csv or calc_case_description_*.csv",
    "inbreast": "an AllDICOMs/ folder (with AllXML/ and INbreast.csv)",
    "bcdr": "bcdr_*_outlines.csv files",
    "folder": "mg/ and mask/ folders of PNG files (e.g. train01/mg, train01/mask)",
    "images": "any DICOM, PNG or TIFF files at any depth (unlabelled mammograms)",
}


def _has(root: Path, patterns: tuple[str, ...]) -> bool:
    return any(safe_glob(root, p) for p in patterns)


def detect_format(source: str | Path) -> Format:
    """Guess the dataset format from a folder's content.

    Raises:
        InputFileError: No known format matches; the message lists what each format looks like.
    """
    root = Path(source)
    if _has(root, ("*case_description*.csv", "*/*case_description*.csv")):
        return "cbis-ddsm"
    if _has(root, ("AllDICOMs", "*/AllDICOMs")):
        return "inbreast"
    if _has(root, ("*_outlines.csv", "*/*_outlines.csv", "*/*/*_outlines.csv")):
        return "bcdr"
    if _has(root, ("mg", "*/mg", "*/*/mg")) and _has(root, ("mask", "*/mask", "*/*/mask")):
        return "folder"
    from mammo_common.ingest.images import has_images

    if has_images(root):
        return "images"
    signs = "; ".join(f"{fmt}: {sign}" for fmt, sign in _SIGNS.items())
    raise InputFileError(
        f"the dataset format cannot be recognised (looked for {signs})",
        path=root,
        fix="point at the unpacked dataset folder, or pass --format "
        f"({', '.join(FORMATS)})",
    )


def iter_source_cases(
    source: Path, fmt: Format, report: IngestReport, config: IngestConfig
) -> Iterator[CaseItem]:
    """Stream the cases of ``source`` in format ``fmt`` (used by :func:`run_ingest`)."""
    module = importlib.import_module(_MODULES[fmt])
    return module.iter_cases(source, report, config)


def _tracks_progress(fmt: Format) -> bool:
    """Whether the format's importer shows its own progress bar (over files, with a total)."""
    return bool(getattr(importlib.import_module(_MODULES[fmt]), "TRACKS_PROGRESS", False))


def _missing_parents(path: Path) -> list[Path]:
    missing = []
    for parent in path.parents:
        if parent.exists():
            break
        missing.append(parent)
    return missing


def _remove_created(dirs: list[Path]) -> None:
    for d in dirs:  # deepest first
        try:
            d.rmdir()
        except OSError:
            return


def run_ingest(config: IngestConfig) -> IngestResult:
    """Import a dataset folder into a ``mammograms`` store.

    Args:
        config: Source folder, output store, format (or ``None`` to detect), overwrite, limits.

    Returns:
        The number of cases written and every skipped file with its reason.

    Raises:
        InputFileError: The source is missing, of unknown format, or holds no usable case
            (then nothing is written).
        MammoError: The output exists (without ``overwrite``) or would overwrite the source.
    """
    from mammo_common import __version__
    from mammo_common.cli_support import track
    from mammo_common.schema import ParentRef, Producer
    from mammo_common.store import MammogramsWriter

    source = Path(config.source)
    if not source.is_dir():
        raise InputFileError(
            "is not a folder", path=source, fix="point at the unpacked dataset folder"
        )
    fmt: Format = config.format or detect_format(source)
    report = IngestReport(source)
    producer = Producer(
        package="mammo-common",
        version=__version__,
        command="ingest",
        # what shapes the content; not how it is written (overwrite, progress bar), so that
        # rerunning with --overwrite gives the same bytes
        params=config.model_dump(mode="json", exclude={"overwrite", "progress"}),
    )
    out = Path(config.out)
    created = _missing_parents(out)
    n_mass = n_breast = 0
    truth_used: dict[Path, list[Path]] = {}
    try:
        with MammogramsWriter(
            out, source_format=fmt, producer=producer, overwrite=config.overwrite, inputs=(source,)
        ) as writer:
            items = iter_source_cases(source, fmt, report, config)
            if config.progress and not _tracks_progress(fmt):
                items = track(items, f"ingest {fmt}")
            for item in items:
                writer.add_case(
                    item.record,
                    item.image,
                    breast_mask=item.breast_mask,
                    mass_mask=item.mass_mask,
                    mass_labels=item.mass_labels,
                )
                n_mass += item.record.abnormality == "mass"
                n_breast += item.breast_mask is not None
                if item.breast_mask_from is not None:
                    truth_used.setdefault(item.breast_mask_from.sidecar, []).append(
                        item.breast_mask_from.path
                    )
                del item  # hold no image while the next one is read
            if not writer.case_ids:
                detail = format_skipped(report.skipped, limit=10) or "  (no image files found)"
                raise InputFileError(
                    f"no usable case was found in this {fmt} source, so nothing was written; "
                    f"skipped:\n{detail}",
                    path=source,
                    fix="check the folder and the reasons above, or pass the right --format",
                )
            writer.skipped = list(report.skipped)
            writer.parents = [
                ParentRef(path=str(source), kind=f"raw-{fmt}", digest=report.digest()),
                *truth_parents(truth_used, source),
            ]
    except BaseException:
        if not out.exists():
            _remove_created(created)
        raise
    return IngestResult(
        out=out,
        format=fmt,
        n_cases=len(writer.case_ids),
        n_skipped=len(report.skipped),
        skipped=list(report.skipped),
        n_mass_cases=n_mass,
        n_breast_mask_cases=n_breast,
        breast_masks_from_truth_sidecar=sum(len(v) for v in truth_used.values()),
        source_digest=report.digest(),
    )


def ingest(
    source: str | Path, out: str | Path, format: Format | None = None, *, overwrite: bool = False
) -> IngestResult:
    """Import ``source`` into the store ``out`` (see :func:`run_ingest`)."""
    return run_ingest(
        IngestConfig(source=Path(source), out=Path(out), format=format, overwrite=overwrite)
    )
