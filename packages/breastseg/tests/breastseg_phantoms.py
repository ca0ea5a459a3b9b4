"""Phantom mammograms for the breastseg tests (a module of its own: importable by name).

Phantoms: a bright, textured half-ellipse breast against the chest-wall edge (left or right),
on a dark noisy film background with a bright label rectangle and a scanner mark on the other
side, and one bright mass inside the breast. Breast and mass masks are exact.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mammo_common.schema import CaseRecord, Producer
from mammo_common.splits import make_splits
from mammo_common.store import MammogramsWriter

#: Settings of the tiny model trained once per session.
TINY_INPUT = (64, 48)
TINY_FILTERS = 4
TINY_EPOCHS = 10
TINY_STEPS_FACTOR = 5
#: The session model's training is interrupted after this many epochs, then resumed.
INTERRUPT_AFTER = 3


@dataclass
class Phantom:
    """One synthetic mammogram with exact masks."""

    image: np.ndarray
    breast: np.ndarray
    mass: np.ndarray
    laterality: str


def make_phantom(seed: int, shape: tuple[int, int] | None = None) -> Phantom:
    """A deterministic phantom mammogram (uint16) with its breast and mass masks (uint8)."""
    rng = np.random.default_rng(seed)
    if shape is None:
        shape = (int(rng.integers(140, 190)), int(rng.integers(104, 140)))
    h, w = shape
    yy, xx = np.mgrid[:h, :w].astype(np.float32)
    left = bool(rng.integers(0, 2))
    cy = h * rng.uniform(0.42, 0.58)
    ry = h * rng.uniform(0.33, 0.45)
    rx = w * rng.uniform(0.55, 0.8)
    cx = 0.0 if left else w - 1.0
    r2 = ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2
    breast = r2 <= 1.0
    background = 0.06 + 0.03 * rng.standard_normal((h, w))
    texture = 0.06 * rng.standard_normal((h, w))
    tissue = 0.55 + 0.2 * (1.0 - r2) + texture  # brighter towards the chest wall
    image = np.where(breast, tissue, background)
    # label rectangle and a scanner mark on the side away from the chest wall
    lh, lw = int(h * 0.12), int(w * 0.18)
    ly = int(rng.integers(2, h // 6))
    lx = w - lw - 3 if left else 3
    label_box = np.zeros((h, w), bool)
    label_box[ly : ly + lh, lx : lx + lw] = True
    mark_y = int(h * 0.85)
    mark_x = w - 10 if left else 6
    label_box[mark_y : mark_y + 4, mark_x : mark_x + 4] = True
    label_box &= ~breast
    image = np.where(label_box, 0.92, image)
    # one mass inside the breast
    my = cy + rng.uniform(-0.4, 0.4) * ry
    mx = (rx * rng.uniform(0.25, 0.5)) if left else (w - 1 - rx * rng.uniform(0.25, 0.5))
    mr = min(h, w) * rng.uniform(0.05, 0.08)
    mass = (((yy - my) / mr) ** 2 + ((xx - mx) / (mr * 1.2)) ** 2 <= 1.0) & breast
    image = np.where(mass, image + 0.15, image)
    image = (np.clip(image, 0, 1) * 65535).astype(np.uint16)
    return Phantom(image, breast.astype(np.uint8), mass.astype(np.uint8), "L" if left else "R")


def write_phantom_store(
    path: Path,
    n_cases: int,
    *,
    seed: int = 0,
    with_breast_masks: bool = True,
    with_mass_masks: bool = True,
) -> Path:
    """Write a ``mammograms`` store of ``n_cases`` phantoms (two views per patient)."""
    producer = Producer(package="tests", version="0", command="write_phantom_store")
    with MammogramsWriter(path, source_format="phantom", producer=producer) as writer:
        for k in range(n_cases):
            ph = make_phantom(seed * 1000 + k)
            patient = f"P{k // 2:03d}"
            record = CaseRecord(
                case_id=f"{patient}_{ph.laterality}_{'CC' if k % 2 == 0 else 'MLO'}_{k}",
                patient_id=patient,
                laterality=ph.laterality,
                view="CC" if k % 2 == 0 else "MLO",
                abnormality="mass",
                pathology="BENIGN" if k % 3 else "MALIGNANT",
                source_dataset="phantom",
                original_shape=ph.image.shape,
            )
            writer.add_case(
                record,
                ph.image,
                breast_mask=ph.breast if with_breast_masks else None,
                mass_mask=ph.mass if with_mass_masks else None,
            )
    return path


def write_splits(store_path: Path, out: Path, *, n_folds: int = 3, test_fraction: float = 0.2):
    """Write ``splits.json`` for a store with ``mammo_common.splits.make_splits``."""
    from mammo_common.store import open_store

    store = open_store(store_path, "mammograms")
    records = store.records()
    splits = make_splits(
        [r.case_id for r in records],
        [r.patient_id for r in records],
        [r.pathology for r in records],
        n_folds=n_folds,
        test_fraction=test_fraction,
        seed=0,
    )
    splits.save(out)
    return out
