"""Synthetic mammograms in the CBIS-DDSM layout, bit-for-bit deterministic from a seed.

``synth(out)`` writes ``out/CBIS-DDSM/...`` DICOM files and the two mass case-description CSVs,
so the default pipeline runs the same importer as real CBIS-DDSM data, and the exact truth masks
of every image to the sidecar ``out/truth/`` (see :mod:`mammo_common.synth.truth`). See
:mod:`mammo_common.synth.cbis_layout` for the layout, the "no mass" convention and the defects
reproduced, :mod:`mammo_common.synth.phantom` for the image model and
:mod:`mammo_common.synth.cases` for the lesion statistics.
"""

from __future__ import annotations

from pathlib import Path

from mammo_common.cli_support import track
from mammo_common.errors import MammoError
from mammo_common.store.atomic import atomic_path, check_output_path
from mammo_common.synth.cases import ImageSpec, LesionSpec, sample_dataset
from mammo_common.synth.cbis_layout import Counters, write_csv, write_image
from mammo_common.synth.config import (
    DEFAULT_CASES,
    DEFAULT_SEED,
    DEFAULT_SIZE,
    DEFAULT_STYLE,
    SynthConfig,
    SynthResult,
)
from mammo_common.synth.phantom import Phantom, render
from mammo_common.synth.truth import TRUTH_DIR, write_truth, write_truth_index

__all__ = [
    "DEFAULT_CASES",
    "DEFAULT_SEED",
    "DEFAULT_SIZE",
    "ImageSpec",
    "LesionSpec",
    "Phantom",
    "SynthConfig",
    "SynthResult",
    "render",
    "run_synth",
    "sample_dataset",
    "synth",
]


def _write_all(root: Path, specs: list[ImageSpec], config: SynthConfig) -> int:
    cbis = root / "CBIS-DDSM"
    cbis.mkdir(parents=True)
    counters = Counters()
    rows: dict[str, list[dict[str, str]]] = {"Training": [], "Test": []}
    truth: dict[str, list[str]] = {}
    for spec in track(specs, "mammo synth"):
        phantom = render(spec, config.size, config.seed)
        rows[spec.split].extend(
            write_image(cbis, spec, phantom, seed=config.seed, defects=config.defects,
                        counters=counters)
        )
        truth[spec.name] = write_truth(root / TRUTH_DIR, spec, phantom)
    write_csv(root / "mass_case_description_train_set.csv", rows["Training"])
    write_csv(root / "mass_case_description_test_set.csv", rows["Test"])
    write_truth_index(root / TRUTH_DIR, truth, seed=config.seed, size=config.size)
    return sum(1 for p in root.rglob("*") if p.is_file())


def run_synth(config: SynthConfig) -> SynthResult:
    """Write a synthetic CBIS-DDSM-like dataset (atomically: whole or not at all).

    Args:
        config: Output folder, patient count, seed, image size, defects, overwrite.

    Returns:
        Counts of what was written.

    Raises:
        MammoError: The output exists (without ``overwrite``) or cannot be written.
    """
    out = Path(config.out)
    check_output_path(out, overwrite=config.overwrite)
    if out.exists() and not out.is_dir():
        raise MammoError("exists and is not a folder", path=out, fix="choose a folder path")
    specs = sample_dataset(config.cases, config.seed, config.style)
    with atomic_path(out) as tmp:
        n_files = _write_all(tmp, specs, config)
    lesions = [lesion for s in specs for lesion in s.lesions]
    n_mass_images = sum(1 for s in specs if s.lesions)
    return SynthResult(
        out=out,
        n_patients=config.cases,
        n_images=len(specs),
        n_mass_images=n_mass_images,
        n_normal_images=len(specs) - n_mass_images,
        n_masses=len(lesions),
        n_malignant=sum(1 for x in lesions if x.pathology == "MALIGNANT"),
        n_benign=sum(1 for x in lesions if x.pathology != "MALIGNANT"),
        n_files=n_files,
        size=config.size,
        seed=config.seed,
        style=config.style,
    )


def synth(
    out_dir: str | Path,
    cases: int = DEFAULT_CASES,
    seed: int = DEFAULT_SEED,
    size: tuple[int, int] = DEFAULT_SIZE,
    *,
    defects: bool = True,
    style: str = DEFAULT_STYLE,
    overwrite: bool = False,
) -> SynthResult:
    """Write synthetic mammograms in the CBIS-DDSM layout (see :func:`run_synth`).

    Example:
        >>> synth("data/raw", cases=4, seed=1, size=(128, 96))  # doctest: +SKIP
    """
    return run_synth(
        SynthConfig(
            out=Path(out_dir), cases=cases, seed=seed, size=size, defects=defects,
            style=style, overwrite=overwrite,
        )
    )
