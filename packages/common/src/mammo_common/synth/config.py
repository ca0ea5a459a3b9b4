"""Settings and result of ``mammo synth`` (pydantic, validated)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

#: Default image size (rows, cols): 4:3 like the reference's 1024x768, small enough for a CPU.
DEFAULT_SIZE = (512, 384)
#: Default number of patients: 300 (the demo's data; with seed 0 about 800 images, 160 of them in
#: the test split). Three times the earlier 100 raised the demo model's test mass Dice
#: 0.527 -> 0.586 at the same training compute (bench/results/dataset_size.json).
DEFAULT_CASES = 300
DEFAULT_SEED = 0
#: Default imaging style: half the patients film, half digital.
DEFAULT_STYLE = "mixed"


class SynthConfig(BaseModel):
    """What ``mammo synth`` writes.

    Attributes:
        out: Output folder (receives the CSVs and the ``CBIS-DDSM`` tree).
        cases: Number of patients (each has 1-2 breasts imaged in CC and/or MLO).
        seed: Random seed; the same arguments give bit-identical files.
        size: (rows, cols) of the full mammograms.
        defects: Reproduce known CBIS-DDSM defects (swapped columns, renamed files, ...).
        style: ``film`` (digitised screen-film: non-zero grainy background, film edges, labels,
            rulers, digitiser streaks), ``digital`` (DR for presentation: quantum noise, black
            background, burned-in text) or ``mixed`` (one of the two per patient).
        overwrite: Replace an existing output folder.
    """

    model_config = ConfigDict(extra="forbid")

    out: Path
    cases: int = Field(default=DEFAULT_CASES, ge=1, le=100_000)
    seed: int = Field(default=DEFAULT_SEED, ge=0, lt=2**63)
    size: tuple[int, int] = DEFAULT_SIZE
    defects: bool = True
    style: Literal["film", "digital", "mixed"] = DEFAULT_STYLE
    overwrite: bool = False

    @field_validator("size")
    @classmethod
    def _size_ok(cls, value: tuple[int, int]) -> tuple[int, int]:
        rows, cols = value
        if rows < 32 or cols < 24:
            raise ValueError(f"size {value} is too small; use at least (32, 24)")
        if rows * cols > 40_000_000:
            raise ValueError(f"size {value} is too large; use at most 40 megapixels")
        return value


class SynthResult(BaseModel):
    """What ``mammo synth`` wrote.

    Attributes:
        out: The output folder.
        n_patients: Patients written.
        n_images: Full mammograms written.
        n_mass_images: Mammograms with at least one mass (listed in the CSVs).
        n_normal_images: Mammograms without a mass (in the tree, not in the CSVs).
        n_masses: Abnormality rows (masses) written.
        n_malignant: Malignant masses.
        n_benign: Benign masses (BENIGN and BENIGN_WITHOUT_CALLBACK).
        n_files: Files written (DICOM and CSV).
        size: (rows, cols) of the full mammograms.
        seed: The seed used.
        style: The imaging style asked for.
    """

    model_config = ConfigDict(extra="forbid")

    out: Path
    n_patients: int
    n_images: int
    n_mass_images: int
    n_normal_images: int
    n_masses: int
    n_malignant: int
    n_benign: int
    n_files: int
    size: tuple[int, int]
    seed: int
    style: str = DEFAULT_STYLE
