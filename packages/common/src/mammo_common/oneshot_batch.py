"""Batch ``mammo run``: files, folders and globs through one cascade, models loaded once.

``mammo run PATH... --models DIR --out-dir OUT [--seg]`` calls :func:`run_batch`:

1. **Find the inputs** (:func:`find_inputs`): a file is used as given, a folder is searched at
   any depth and a pattern (``scans/*.dcm``, ``export/**/*.dcm``) is expanded with
   :func:`glob.glob` (``**`` recursive). Which files are mammograms and which are skipped follows
   ``mammo ingest --format images`` exactly (:mod:`mammo_common.ingest.images`): DICOM by name
   or ``DICM`` marker, PNG/TIFF/JPEG/BMP; hidden files, Zarr stores and links out of a folder
   are not read; a folder's ``patients.csv`` names patients.
2. **Read one image at a time** with the same rules as that ingest: DICOM of any transfer
   syntax the project decodes, other modalities, FOR PROCESSING images (unless
   ``for_processing``), multi-frame images, DICOMDIR, non-image secondary captures, masks and
   copies of an image already read (same SOPInstanceUID) refused with their reason; header
   values (patient, laterality, view, pixel spacing, UIDs) and file-name fallbacks go into the
   case record, so the rows carry them.
3. **Run the cascade** (:func:`mammo_common.oneshot.load_cascade`, loaded once) on the image.
4. **Write, per image**: ``OUT/overlays/<case_id>.png`` (:func:`~mammo_common.oneshot.
   render_overlay`) and, with ``seg`` and a DICOM input, ``OUT/seg/<case_id>.seg.dcm``
   (:func:`mammo_common.dicom_seg.write_seg`: the breast and each mass at native resolution,
   each mass's malignancy probability in its segment description). Each file is written
   atomically.
5. **At the end** (also after Ctrl-C): ``OUT/results.csv`` and ``OUT/results.json`` with the
   columns of ``mammo results`` (:func:`mammo_common.results.case_rows`), one case row per
   finished image followed by its mass rows; the JSON's metadata adds the inputs, the models,
   the files that failed with their reasons and the outputs of each image.

A file that cannot be read or processed is recorded with its reason and the batch goes on.
:func:`run_batch` raises (exit code 2, nothing written) only when no image could be read at
all; when images were read but none could be processed it raises with exit code 1. Ctrl-C
stops after the image being processed (whose outputs are removed), writes the table of the
finished images and returns with ``interrupted`` set.
"""

from __future__ import annotations

import glob
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from mammo_common import __version__
from mammo_common.errors import (
    EXIT_FAILURE,
    ConfigError,
    InputFileError,
    MammoError,
    ModelFolderError,
)
from mammo_common.imageio import DEFAULT_MAX_PIXELS
from mammo_common.ingest.report import IngestReport, reason_of
from mammo_common.schema import SkippedFile

__all__ = [
    "OVERLAY_DIR",
    "SEG_DIR",
    "BatchImage",
    "BatchRunConfig",
    "BatchRunResult",
    "InputFile",
    "find_inputs",
    "run_batch",
]

#: Sub-folders of the output folder for the per-image files.
OVERLAY_DIR = "overlays"
SEG_DIR = "seg"
_GLOB_CHARS = frozenset("*?[")
_NO_FILE = "not a mammogram file: neither DICOM (no .dcm name, no DICM marker) nor an image " \
    "(PNG, TIFF, JPEG, BMP)"


class BatchRunConfig(BaseModel):
    """Settings of :func:`run_batch` (``mammo run PATH... --out-dir OUT``).

    Attributes:
        inputs: Files, folders (searched at any depth) and glob patterns.
        models: The models folder (``<models>/<stage>/<arch>/fold_<k>/``).
        out_dir: Output folder (created): ``overlays/``, ``seg/``, ``results.csv``,
            ``results.json``.
        seg: Also write a DICOM SEG per DICOM input.
        work_size: Size of the breast crop the mass stages see.
        overwrite: Replace an existing ``results.csv`` / ``results.json``.
        for_processing: Also read DICOM images meant FOR PROCESSING (raw detector data).
        max_pixels: Refuse images whose header claims more pixel values than this.
        progress: Show a progress bar on a terminal.
    """

    model_config = ConfigDict(extra="forbid")

    inputs: list[str] = Field(min_length=1)
    models: Path
    out_dir: Path
    seg: bool = False
    work_size: tuple[int, int] = (640, 640)
    overwrite: bool = False
    for_processing: bool = False
    max_pixels: int = Field(default=DEFAULT_MAX_PIXELS, ge=1)
    progress: bool = True

    @field_validator("work_size")
    @classmethod
    def _positive(cls, value: tuple[int, int]) -> tuple[int, int]:
        if min(value) < 8:
            raise ValueError(f"work_size {value} is too small (at least 8x8)")
        return value

    @property
    def csv_path(self) -> Path:
        """``OUT/results.csv``."""
        return self.out_dir / "results.csv"

    @property
    def json_path(self) -> Path:
        """``OUT/results.json``."""
        return self.out_dir / "results.json"


class BatchImage(BaseModel):
    """One image that went through the cascade, and what was written for it.

    Attributes:
        source_path: The file as found (the argument, or a folder argument joined with the
            file's path inside it).
        case_id: Its case id (also the name of its output files).
        kind: ``dicom`` or ``image``.
        overlay: The overlay PNG.
        seg: The DICOM SEG, if one was written.
        n_masses: Masses found.
        label: The case label (``malignant``, ``benign``, ``no_mass_found``, ...).
        probability: Its most malignant mass's malignancy probability.
        seconds: Wall time of this image: reading, cascade, outputs.
        notes: What was unusual for this image (besides the cascade's notes).
    """

    model_config = ConfigDict(extra="forbid")

    source_path: str
    case_id: str
    kind: str
    overlay: Path
    seg: Path | None = None
    n_masses: int
    label: str
    probability: float | None = None
    seconds: float
    notes: list[str] = Field(default_factory=list)


class BatchRunResult(BaseModel):
    """What :func:`run_batch` did.

    Attributes:
        out_dir: The output folder.
        csv: ``results.csv`` (None when no image finished).
        json_out: ``results.json`` (None when no image finished).
        n_found: Candidate files found.
        images: The images that went through, in input order.
        failed: Every file or argument that could not be used, with its reason.
        notes: The cascade's notes (stages skipped for every image) and batch-wide remarks.
        stages_run: Stages that have a model (they run on every image whose inputs they get).
        n_masses: Masses over all images.
        n_malignant_cases: Images whose most malignant mass is malignant.
        n_seg: SEG files written.
        model_loads: Model folders loaded (each once, however many images).
        interrupted: Whether Ctrl-C stopped the batch early.
        seconds: Wall time of the whole batch.
    """

    model_config = ConfigDict(extra="forbid")

    out_dir: Path
    csv: Path | None = None
    json_out: Path | None = None
    n_found: int
    images: list[BatchImage]
    failed: list[SkippedFile]
    notes: list[str]
    stages_run: list[str]
    n_masses: int
    n_malignant_cases: int
    n_seg: int
    model_loads: int
    interrupted: bool = False
    seconds: float


# --------------------------------------------------------------------------- finding inputs


@dataclass
class _Root:
    """A folder the inputs' relative names and case ids come from (an argument's folder)."""

    folder: Path
    shown: str
    report: IngestReport
    patients: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class InputFile:
    """One candidate mammogram.

    Attributes:
        path: The file.
        kind: ``dicom`` or ``image`` (as ``mammo ingest --format images`` decides).
        shown: The path as the user would write it (the argument, or a folder argument joined
            with the file's path inside it); the ``source_path`` column.
        root: Index of the folder its relative name comes from (internal).
    """

    path: Path
    kind: str
    shown: str
    root: int = 0


def _join(shown: str, rel: str) -> str:
    return rel if shown in ("", ".") else f"{shown.rstrip('/')}/{rel}"


def find_inputs(
    inputs: Sequence[str | Path],
) -> tuple[list[InputFile], list[SkippedFile], list[_Root]]:
    """The mammogram files named by ``inputs`` (files, folders, glob patterns), in order.

    Args:
        inputs: As given on the command line.

    Returns:
        ``(files, skipped, roots)``: the candidates (each file once, in argument order, a
        folder's files in path order), every argument or file that is not used with its reason,
        and the folders the files' relative names come from.
    """
    from mammo_common.ingest import images
    from mammo_common.ingest.folder import read_patients

    files: list[InputFile] = []
    skipped: list[SkippedFile] = []
    roots: list[_Root] = []
    seen: set[Path] = set()

    def add(path: Path, kind: str, shown: str, root: int) -> None:
        key = path.resolve()
        if key in seen:
            return
        seen.add(key)
        files.append(InputFile(path=path, kind=kind, shown=shown, root=root))

    for arg in inputs:
        text = str(arg)
        path = Path(text)
        if path.exists():
            targets = [text]
        elif _GLOB_CHARS & set(text):
            targets = sorted(glob.glob(text, recursive=True))
            if not targets:
                skipped.append(SkippedFile(path=text, reason="matches no file or folder"))
        else:
            skipped.append(SkippedFile(path=text, reason="no such file or folder"))
            targets = []
        for target in targets:
            tpath = Path(target)
            if tpath.is_dir():
                report = IngestReport(tpath)
                used: set[Path] = set()
                patients: dict[str, str] = {}
                csv_path = tpath / "patients.csv"
                if csv_path.is_file():
                    patients = read_patients(csv_path, report)
                    used.add(csv_path.resolve())
                roots.append(_Root(tpath, target, report, patients))
                n_skipped = len(report.skipped)
                found = images.find_files(tpath, report, used)
                for entry in report.skipped[n_skipped:]:
                    skipped.append(SkippedFile(path=_join(target, entry.path),
                                               reason=entry.reason))
                for fpath, kind in found:
                    add(fpath, kind, _join(target, report.rel(fpath)), len(roots) - 1)
            elif tpath.is_file():
                kind = images._kind(tpath)
                if kind is None:
                    skipped.append(SkippedFile(path=target, reason=_NO_FILE))
                    continue
                if tpath.resolve() in seen:
                    continue
                roots.append(_Root(tpath.parent, str(tpath.parent), IngestReport(tpath.parent)))
                add(tpath, kind, target, len(roots) - 1)
            else:
                skipped.append(SkippedFile(path=target, reason="neither a file nor a folder"))
    return files, skipped, roots


# --------------------------------------------------------------------------- one image


class _Reader:
    """Reads inputs into case records and images with the ``images`` ingest's rules."""

    def __init__(self, roots: Sequence[_Root], config: BatchRunConfig) -> None:
        from mammo_common.ingest import images
        from mammo_common.ingest.config import IngestConfig

        case_ids: set[str] = set()
        sop_instances: dict[str, str] = {}  # shared: a copy is found across arguments too
        self._contexts = []
        for root in roots:
            ingest = IngestConfig(source=root.folder, out=config.out_dir / "unused.zarr",
                                  format="images", max_pixels=config.max_pixels,
                                  for_processing=config.for_processing, progress=False)
            self._contexts.append(images._Context(
                source=root.folder, report=root.report, config=ingest, patients=root.patients,
                case_ids=case_ids, sop_instances=sop_instances,
            ))

    def read(self, item: InputFile) -> Any:
        """The :class:`~mammo_common.ingest.common.CaseItem` (record with ``source_path`` set
        to ``item.shown``, and the native uint16 image).

        Raises:
            InputFileError: The file is unreadable or not a mammogram to run (with the reason).
        """
        from mammo_common.ingest import images

        ctx = self._contexts[item.root]
        rel = PurePosixPath(ctx.report.rel(item.path))
        reader = images._dicom_case if item.kind == "dicom" else images._image_case
        found = reader(ctx, item.path, rel)
        found.record = found.record.model_copy(update={"source_path": item.shown})
        return found


def _seg_masks(case: Any) -> list[Any]:
    """Each mass's native mask as bool; a mass smaller than a native pixel gets its box."""
    import numpy as np

    masks = []
    for mass in case.masses:
        native = np.asarray(case.native_mask(mass)) > 0
        if not native.any():  # the crop was enlarged: nearest mapping left no pixel
            y0, x0, y1, x1 = case.native_bbox(mass.bbox)
            native = np.zeros(np.shape(case.image), bool)
            native[y0:max(y1, y0 + 1), x0:max(x1, x0 + 1)] = True
        masks.append(native)
    return masks


def _rows(case: Any, record: Any) -> list[dict[str, Any]]:
    from mammo_common.results import FoundMass, case_rows

    diag = case.diagnosis
    masses = [FoundMass(m.index, case.work_mask(m), m.label, m.probability) for m in case.masses]
    return case_rows(
        record, masses, transform=case.transform, mass_probs=case.mass_probs,
        label=diag["label"], probability=diag["probability"], truth="unknown",
    )


# --------------------------------------------------------------------------- the batch


def _check_outputs(config: BatchRunConfig) -> None:
    from mammo_common.store.atomic import check_output_path

    out = config.out_dir
    if out.exists() and not out.is_dir():
        raise ConfigError("exists and is not a folder", path=out, field="--out-dir",
                          fix="give a folder for the overlays, SEG files and results")
    for path in (config.csv_path, config.json_path):
        check_output_path(path, overwrite=config.overwrite)
        if path.is_dir():
            raise ConfigError("is a folder", path=path, field="--out-dir",
                              fix="choose another output folder")


def _nothing_read(failed: Sequence[SkippedFile], n_found: int) -> InputFileError:
    from mammo_common.ingest.report import format_skipped

    what = (f"none of the {n_found} candidate file(s) could be read" if n_found
            else "no mammogram file was found")
    listing = format_skipped(list(failed), limit=10)
    return InputFileError(
        f"{what}; nothing was written" + (f":\n{listing}" if listing else ""),
        field="PATH",
        fix="pass DICOM, PNG or TIFF mammograms, folders holding them, or glob patterns "
        "(quote them so the shell leaves ** alone)",
    )


def _metadata(
    config: BatchRunConfig,
    cascade: Any,
    images: Sequence[BatchImage],
    failed: Sequence[SkippedFile],
    rows: Sequence[dict[str, Any]],
    *,
    n_found: int,
    last_case: Any,
    interrupted: bool,
    notes: Sequence[str],
) -> dict[str, Any]:
    from mammo_common.results import COLUMN_HELP, COLUMNS

    cases = [r for r in rows if r["row_type"] == "case"]
    columns = {c: COLUMN_HELP[c] for c in COLUMNS}
    columns["source_path"] = ("image file as found from the command's arguments (the argument, "
                              "or a folder argument joined with the file's path inside it)")
    columns["case_id"] = "case id: the file's path inside its folder argument (or its name), " \
        "made safe and unique; also the name of its overlay and SEG"
    columns["truth"] = "case rows: unknown (mammo run has no ground truth)"
    return {
        "generated_by": {"package": "mammo-common", "version": __version__,
                         "command": "mammo run"},
        "inputs": list(config.inputs),
        "models": str(config.models),
        "work_size": list(config.work_size),
        "stages_run": cascade.stage_names,
        "model_ids": {} if last_case is None else {k: list(v) for k, v in
                                                  last_case.model_ids.items()},
        "threshold": None if last_case is None else last_case.threshold,
        "min_object_pixels": None if last_case is None else last_case.min_object_pixels,
        "mass_probability": "mean and max of the segmentation's mass probability map over the "
        "mass's own pixels on the breast crop (work image)",
        "coordinates": "native image pixels; origin at the image's top-left corner, pixel (r, c) "
        "spans [r, r+1) x [c, c+1) (DICOM SCOORD convention); mm = pixels x pixel spacing",
        "notes": list(notes),
        "interrupted": interrupted,
        "n_found": n_found,
        "n_cases": len(cases),
        "n_masses": len(rows) - len(cases),
        "n_no_mass_found": sum(r["label"] == "no_mass_found" for r in cases),
        "n_malignant_cases": sum(r["label"] == "malignant" for r in cases),
        "n_failed": len(failed),
        "failed": [f.model_dump() for f in failed],
        "images": [img.model_dump(mode="json") for img in images],
        "columns": columns,
    }


def run_batch(
    config: BatchRunConfig,
    *,
    plugins: Sequence[Any] | None = None,
    on_image: Callable[[BatchImage], None] | None = None,
) -> BatchRunResult:
    """Run the cascade over files, folders and globs; write overlays, SEGs and the table.

    Args:
        config: Inputs, models, output folder and options.
        plugins: Stage plugins (default: the installed ones, :func:`~mammo_common.oneshot.
            discover_stages`).
        on_image: Called after each finished image (progress, timing).

    Returns:
        What was done (see :class:`BatchRunResult`); ``interrupted`` after Ctrl-C.

    Raises:
        InputFileError: No image could be read (every reason listed), the models folder is
            missing; nothing is written.
        ConfigError: No stage installed; existing results without ``overwrite``.
        ModelFolderError: A chosen model folder cannot be loaded (stops the batch).
        MammoError: Images were read but none could be processed (exit code 1).
    """
    from mammo_common.cli_support import track
    from mammo_common.dicom_seg import write_seg
    from mammo_common.oneshot import load_cascade, render_overlay
    from mammo_common.results import ResultsTable, write_table
    from mammo_common.store.atomic import discard

    t_start = time.perf_counter()
    _check_outputs(config)
    files, failed, roots = find_inputs(config.inputs)
    if not files:
        raise _nothing_read(failed, 0)
    cascade = load_cascade(config.models, plugins=plugins, work_size=config.work_size)
    reader = _Reader(roots, config)
    overlay_dir, seg_dir = config.out_dir / OVERLAY_DIR, config.out_dir / SEG_DIR
    images: list[BatchImage] = []
    rows: list[dict[str, Any]] = []
    n_read = n_not_dicom = 0
    last_case = None
    interrupted = False
    iterator = track(files, "mammo run", total=len(files)) if config.progress else files
    with cascade:
        try:
            for item in iterator:
                t0 = time.perf_counter()
                written: list[Path] = []
                try:
                    try:
                        found = reader.read(item)
                    except InputFileError as exc:
                        failed.append(SkippedFile(path=item.shown, reason=reason_of(exc)))
                        continue
                    n_read += 1
                    record = found.record
                    try:
                        case = cascade.run(found.image, source=item.shown,
                                           laterality=record.laterality)
                    except (ModelFolderError, ConfigError):
                        raise
                    except MammoError as exc:
                        failed.append(SkippedFile(path=item.shown, reason=reason_of(exc)))
                        continue
                    except (MemoryError, RecursionError):
                        raise
                    except Exception as exc:  # one odd image must not stop the batch
                        failed.append(SkippedFile(
                            path=item.shown,
                            reason=f"the cascade failed on this image ({type(exc).__name__}: "
                            f"{str(exc)[:300]})",
                        ))
                        continue
                    del found
                    notes = [n for n in case.notes if n not in cascade.notes]
                    overlay = overlay_dir / f"{record.case_id}.png"
                    written.append(overlay)
                    render_overlay(case, overlay)
                    seg_path = None
                    if config.seg and item.kind != "dicom":
                        n_not_dicom += 1
                    elif config.seg and case.breast_mask is None:
                        notes.append("no SEG: no breast mask (breastseg did not run or found "
                                     "no breast)")
                    elif config.seg:
                        target = seg_dir / f"{record.case_id}.seg.dcm"
                        written.append(target)
                        try:
                            seg_path = write_seg(
                                item.path, case.breast_mask > 0, _seg_masks(case), out=target,
                                probabilities=[m.probability for m in case.masses],
                            )
                        except MammoError as exc:
                            notes.append(f"no SEG: {reason_of(exc)}")
                    case_rows = _rows(case, record)
                    diag = case.diagnosis
                    image = BatchImage(
                        source_path=item.shown, case_id=record.case_id, kind=item.kind,
                        overlay=overlay, seg=seg_path, n_masses=len(case.masses),
                        label=diag["label"], probability=diag["probability"],
                        seconds=time.perf_counter() - t0, notes=notes,
                    )
                    rows.extend(case_rows)
                    images.append(image)
                    written = []
                    last_case = case
                    if on_image is not None:
                        on_image(image)
                except KeyboardInterrupt:
                    for path in written:  # the unfinished image leaves nothing behind
                        discard(path)
                    raise
        except KeyboardInterrupt:
            interrupted = True
        model_loads = cascade.cache.builds_by_kind["load_model_folder"]
    notes = list(cascade.notes)
    if config.seg and n_not_dicom:
        notes.append(f"{n_not_dicom} input(s) are not DICOM (PNG/TIFF/JPEG): no SEG for them "
                     "(a SEG references a DICOM image)")
    if not images and not interrupted:
        if n_read == 0:
            raise _nothing_read(failed, len(files))
        raise MammoError(
            f"{n_read} image(s) were read but none went through the cascade; no results were "
            "written:\n" + "\n".join(f"  {f.path}: {f.reason}" for f in failed[-10:]),
            field="PATH", fix="see the reasons above", exit_code=EXIT_FAILURE,
        )
    csv_path = json_path = None
    if images:
        metadata = _metadata(config, cascade, images, failed, rows, n_found=len(files),
                             last_case=last_case, interrupted=interrupted, notes=notes)
        from mammo_common.results import COLUMNS

        table = ResultsTable(columns=list(COLUMNS), rows=rows, metadata=metadata)
        write_table(table, config.csv_path, config.json_path)
        csv_path, json_path = config.csv_path, config.json_path
    return BatchRunResult(
        out_dir=config.out_dir, csv=csv_path, json_out=json_path, n_found=len(files),
        images=images, failed=failed, notes=notes, stages_run=cascade.stage_names,
        n_masses=sum(img.n_masses for img in images),
        n_malignant_cases=sum(img.label == "malignant" for img in images),
        n_seg=sum(img.seg is not None for img in images), model_loads=model_loads,
        interrupted=interrupted, seconds=time.perf_counter() - t_start,
    )
