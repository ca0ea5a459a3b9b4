"""Settings and result of ``mammo ingest`` (pydantic, validated)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from mammo_common.imageio import DEFAULT_MAX_PIXELS
from mammo_common.schema import SkippedFile

Format = Literal["cbis-ddsm", "inbreast", "bcdr", "folder", "images"]
FORMATS: tuple[str, ...] = ("cbis-ddsm", "inbreast", "bcdr", "folder", "images")


class IngestConfig(BaseModel):
    """What ``mammo ingest`` reads and writes.

    Attributes:
        source: The dataset folder as unpacked (never modified).
        out: The ``mammograms`` store to write (``*.zarr``).
        format: Source format; ``None`` detects it from the folder's content.
        overwrite: Replace an existing store.
        max_pixels: Refuse images whose header claims more pixel values than this.
        folder_mask: For the ``folder`` format: whether ``mask/`` holds mass or breast masks.
        patients_csv: For the ``folder`` and ``images`` formats: a CSV with columns
            ``file,patient_id`` (default: ``patients.csv`` in the source folder, when present).
        for_processing: For the ``images`` format: also import DICOM images meant FOR
            PROCESSING (raw detector data); by default they are skipped.
        progress: Show a progress bar on a terminal.
    """

    model_config = ConfigDict(extra="forbid")

    source: Path
    out: Path
    format: Format | None = None
    overwrite: bool = False
    max_pixels: int = Field(default=DEFAULT_MAX_PIXELS, ge=1)
    folder_mask: Literal["mass", "breast"] = "mass"
    patients_csv: Path | None = None
    for_processing: bool = False
    progress: bool = True


class IngestResult(BaseModel):
    """What ``mammo ingest`` wrote.

    Attributes:
        out: The store written.
        format: The source format used.
        n_cases: Cases written.
        n_skipped: Files (or CSV rows) skipped.
        skipped: Each skipped file with its reason (also in the store's metadata).
        n_mass_cases: Cases with at least one mass.
        n_breast_mask_cases: Cases stored with a breast mask.
        breast_masks_from_truth_sidecar: Of those, how many were read from a synthetic truth
            sidecar (``mammo synth``'s ``truth/`` folder; recorded as a store parent of kind
            ``truth-sidecar`` and in each case's notes).
        source_digest: Digest of the source files used (names and sizes).
    """

    model_config = ConfigDict(extra="forbid")

    out: Path
    format: Format
    n_cases: int
    n_skipped: int
    skipped: list[SkippedFile] = Field(default_factory=list)
    n_mass_cases: int = 0
    n_breast_mask_cases: int = 0
    breast_masks_from_truth_sidecar: int = 0
    source_digest: str = ""
