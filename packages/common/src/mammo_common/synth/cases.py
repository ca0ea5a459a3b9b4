"""What the synthetic dataset holds: patients, breasts, views and lesions, drawn from a seed.

Each patient draws from its own random stream (``seed``, patient index), so patient ``k`` is the
same whatever the number of patients asked for.

Lesion descriptors follow BI-RADS and are correlated with pathology, with deliberate overlap:
about 87% of benign masses are ROUND/OVAL/LOBULATED with CIRCUMSCRIBED/OBSCURED/MICROLOBULATED
margins, about 87% of malignant masses are IRREGULAR/LOBULATED with SPICULATED/ILL_DEFINED
margins, and the rest take the other group's descriptors.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mammo_common.synth.config import DEFAULT_STYLE

BENIGN_SHAPES = (("ROUND", 0.35), ("OVAL", 0.45), ("LOBULATED", 0.20))
MALIGNANT_SHAPES = (("IRREGULAR", 0.80), ("LOBULATED", 0.20))
BENIGN_MARGINS = (("CIRCUMSCRIBED", 0.70), ("OBSCURED", 0.15), ("MICROLOBULATED", 0.15))
MALIGNANT_MARGINS = (("SPICULATED", 0.50), ("ILL_DEFINED", 0.40), ("MICROLOBULATED", 0.10))

#: Probability that a lesion takes the descriptors typical of the *other* pathology.
OVERLAP = 0.13
#: Share of malignant lesions.
P_MALIGNANT = 0.45
#: Share of breasts (per imaged breast) that hold at least one mass.
P_MASS_BREAST = 0.62
#: Share of test-set patients (every 4th patient).
TEST_EVERY = 4


@dataclass(frozen=True)
class LesionSpec:
    """One mass as the radiologist would describe it.

    Attributes:
        pathology: BENIGN, BENIGN_WITHOUT_CALLBACK or MALIGNANT.
        shape: BI-RADS shape (ROUND, OVAL, LOBULATED, IRREGULAR).
        margins: BI-RADS margins (CIRCUMSCRIBED, OBSCURED, MICROLOBULATED, ILL_DEFINED,
            SPICULATED).
        assessment: BI-RADS assessment 2-5, correlated with pathology.
        subtlety: 1 (subtle) to 5 (obvious), as a reader would rate the mass.
        diameter_mm: Mean diameter of the mass body in millimetres.
    """

    pathology: str
    shape: str
    margins: str
    assessment: int
    subtlety: int
    diameter_mm: float


@dataclass(frozen=True)
class ImageSpec:
    """One synthetic mammogram to render.

    Attributes:
        patient_index: 0-based patient number.
        patient_id: CBIS-style id, ``P_00001``.
        side: LEFT or RIGHT.
        view: CC or MLO.
        split: Training or Test.
        density: Breast density 1-4.
        lesions: The masses in this breast (the same masses appear in both views).
        style: Imaging style, ``film`` (digitised screen-film) or ``digital``.
    """

    patient_index: int
    patient_id: str
    side: str
    view: str
    split: str
    density: int
    lesions: tuple[LesionSpec, ...]
    style: str = "film"

    @property
    def name(self) -> str:
        """CBIS image folder name, e.g. ``Mass-Training_P_00001_LEFT_CC``."""
        return f"Mass-{self.split}_{self.patient_id}_{self.side}_{self.view}"

    @property
    def key(self) -> tuple[int, int, int]:
        """Numbers that seed this image's random stream."""
        return (self.patient_index, 0 if self.side == "LEFT" else 1, 0 if self.view == "CC" else 1)


def _pick(rng: np.random.Generator, table: tuple[tuple[str, float], ...]) -> str:
    names = [n for n, _ in table]
    probs = np.array([p for _, p in table], dtype=float)
    return str(names[int(rng.choice(len(names), p=probs / probs.sum()))])


def sample_lesion(rng: np.random.Generator, pathology: str | None = None) -> LesionSpec:
    """Draw one lesion: pathology, then BI-RADS descriptors correlated with it."""
    if pathology is None:
        if rng.random() < P_MALIGNANT:
            pathology = "MALIGNANT"
        else:
            pathology = "BENIGN" if rng.random() < 0.75 else "BENIGN_WITHOUT_CALLBACK"
    malignant = pathology == "MALIGNANT"
    typical_shape = rng.random() >= OVERLAP
    typical_margin = rng.random() >= OVERLAP
    shape_table = MALIGNANT_SHAPES if malignant == typical_shape else BENIGN_SHAPES
    margin_table = MALIGNANT_MARGINS if malignant == typical_margin else BENIGN_MARGINS
    shape = _pick(rng, shape_table)
    margins = _pick(rng, margin_table)
    if malignant:
        assessment = int(rng.choice([3, 4, 5], p=[0.05, 0.55, 0.40]))
        subtlety = int(rng.choice([2, 3, 4, 5], p=[0.1, 0.25, 0.35, 0.3]))
    elif pathology == "BENIGN":
        assessment = int(rng.choice([2, 3, 4], p=[0.3, 0.35, 0.35]))
        subtlety = int(rng.choice([1, 2, 3, 4, 5], p=[0.1, 0.2, 0.3, 0.25, 0.15]))
    else:
        assessment = int(rng.choice([2, 3], p=[0.6, 0.4]))
        subtlety = int(rng.choice([1, 2, 3, 4, 5], p=[0.15, 0.25, 0.3, 0.2, 0.1]))
    # CBIS-DDSM masses are mostly 5-30 mm: log-normal around 13 mm, malignant a little larger
    diameter = float(np.clip(np.exp(rng.normal(np.log(13.0), 0.42)), 4.0, 45.0))
    diameter *= 1.12 if malignant else 1.0
    return LesionSpec(pathology, shape, margins, assessment, subtlety, diameter)


def sample_patient(seed: int, index: int, style: str = DEFAULT_STYLE) -> list[ImageSpec]:
    """The images of patient ``index`` (0-based): one or two breasts, CC and/or MLO each.

    The first three patients are pinned so that even a tiny dataset has a malignant mass, a
    benign mass and an image without a mass. ``style`` ``mixed`` draws ``film`` or
    ``digital`` per patient (all of a patient's images come from one system).
    """
    rng = np.random.default_rng([seed, index, 0])
    if style == "mixed":
        style = "film" if np.random.default_rng([seed, index, 7]).random() < 0.5 else "digital"
    patient_id = f"P_{index + 1:05d}"
    split = "Test" if index % TEST_EVERY == TEST_EVERY - 1 else "Training"
    density = int(rng.choice([1, 2, 3, 4], p=[0.15, 0.4, 0.35, 0.1]))
    n_breasts = 2 if (index == 2 or rng.random() < 0.45) else 1
    sides = ["LEFT", "RIGHT"] if n_breasts == 2 else [str(rng.choice(["LEFT", "RIGHT"]))]
    images: list[ImageSpec] = []
    for b, side in enumerate(sides):
        pinned = {0: "MALIGNANT", 1: "BENIGN"}.get(index) if b == 0 else None
        normal_pin = index == 2 and b == 0
        has_mass = pinned is not None or (rng.random() < P_MASS_BREAST and not normal_pin)
        lesions: tuple[LesionSpec, ...] = ()
        if has_mass:
            n = 2 if rng.random() < 0.12 else 1
            lesions = tuple(sample_lesion(rng, pinned) for _ in range(n))
        both = index < 3 or rng.random() < 0.85
        views = ["CC", "MLO"] if both else [str(rng.choice(["CC", "MLO"]))]
        for view in views:
            images.append(
                ImageSpec(index, patient_id, side, view, split, density, lesions, style)
            )
    return images


def sample_dataset(n_patients: int, seed: int, style: str = DEFAULT_STYLE) -> list[ImageSpec]:
    """All images of ``n_patients`` patients, sorted by folder name."""
    images = [img for i in range(n_patients) for img in sample_patient(seed, i, style)]
    return sorted(images, key=lambda s: s.name)
