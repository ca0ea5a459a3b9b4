"""Synthetic ``breast`` stores and splits for the massseg tests (no TensorFlow needed).

Phantoms are small (default 64x64) uint16 images: a smooth textured background inside an
elliptic "breast", with one or two bright blob masses (soft-edged ellipses) whose union is
the ground-truth mask. They are deterministic for a seed.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy import ndimage

from mammo_common.schema import CaseRecord, CaseTransform, Producer
from mammo_common.schema.splits import Fold, Splits
from mammo_common.store import StackedStoreWriter

PRODUCER = Producer(package="massseg-tests", version="0", command="fixtures_stores")


def phantom(
    rng: np.random.Generator, size: int = 64, *, n_masses: int | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One phantom: ``(image uint16, breast_mask uint8, mass_mask uint8)``.

    ``n_masses`` defaults to one or two (random); 0 makes a phantom without mass.
    """
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    # breast: a large ellipse touching one side
    cy, cx = size / 2 + rng.uniform(-3, 3), rng.uniform(0.0, 0.15) * size
    breast = ((yy - cy) / (0.48 * size)) ** 2 + ((xx - cx) / (0.9 * size)) ** 2 <= 1.0
    texture = ndimage.gaussian_filter(rng.normal(size=(size, size)), sigma=2.0)
    texture = (texture - texture.min()) / (np.ptp(texture) + 1e-6)
    image = 0.25 + 0.25 * texture
    mass = np.zeros((size, size), dtype=bool)
    count = int(rng.integers(1, 3))
    for _ in range(count if n_masses is None else n_masses):
        for _attempt in range(20):
            ry, rx = rng.uniform(0.07, 0.15, size=2) * size
            my, mx = rng.uniform(0.25, 0.75) * size, rng.uniform(0.2, 0.7) * size
            inside = ((yy - my) / ry) ** 2 + ((xx - mx) / rx) ** 2
            blob = inside <= 1.0
            if np.all(breast[blob]):
                break
        mass |= blob
        image = image + 0.4 * np.clip(1.2 - inside, 0.0, 1.0) ** 0.5
    image = image + rng.normal(scale=0.02, size=image.shape)
    image = np.where(breast, image, 0.0)
    image16 = np.clip(image / 1.2, 0.0, 1.0) * 60000
    mass &= breast
    return image16.astype(np.uint16), breast.astype(np.uint8), mass.astype(np.uint8)


def write_breast_store(
    path: str | Path,
    n_cases: int,
    *,
    size: int = 64,
    seed: int = 0,
    with_mass_masks: bool = True,
    prefix: str = "case",
    empty_cases: int = 0,
) -> list[str]:
    """Write a ``breast`` store of ``n_cases`` phantoms; returns the case ids.

    The first ``empty_cases`` phantoms have no mass.
    """
    rng = np.random.default_rng(seed)
    ids = [f"{prefix}{i:03d}" for i in range(n_cases)]
    with StackedStoreWriter(
        path,
        kind="breast",
        n_cases=n_cases,
        image_size=(size, size),
        producer=PRODUCER,
        with_mass_masks=with_mass_masks,
        meta_fields={"method": "synthetic"},
    ) as writer:
        for i, case_id in enumerate(ids):
            image, breast, mass = phantom(rng, size, n_masses=0 if i < empty_cases else None)
            record = CaseRecord(
                case_id=case_id,
                patient_id=f"p{case_id}",
                abnormality="mass",
                pathology="MALIGNANT" if i % 2 else "BENIGN",
                original_shape=(size, size),
                source_dataset="synthetic",
            )
            transform = CaseTransform(
                original_shape=(size, size), crop_box=(0, 0, size, size), output_shape=(size, size)
            )
            arrays = {"images": image, "breast_masks": breast}
            if with_mass_masks:
                arrays["mass_masks"] = mass
            writer.write_case(i, record, transform, **arrays)
    return ids


def make_splits_for(ids: list[str], *, n_test: int, n_folds: int) -> Splits:
    """Splits: the last ``n_test`` ids are the test set, the rest dealt round-robin to folds."""
    test = ids[len(ids) - n_test:]
    rest = ids[: len(ids) - n_test]
    shares = [rest[k::n_folds] for k in range(n_folds)]
    folds = [
        Fold(index=k + 1, train=[c for c in rest if c not in set(share)], valid=share)
        for k, share in enumerate(shares)
    ]
    return Splits(
        seed=0,
        n_folds=n_folds,
        test_fraction=n_test / len(ids),
        test=test,
        folds=folds,
        patients={c: f"p{c}" for c in ids},
        labels=dict.fromkeys(ids, "BENIGN"),
    )


def write_masses_like(path: str | Path, breast_path: str | Path, *, perfect: bool = True) -> None:
    """Write a ``masses`` store from a breast store whose prediction is the truth itself.

    With ``perfect=False`` the prediction is the truth shifted by 3 pixels (imperfect).
    """
    from mammo_common.store import open_store

    src = open_store(breast_path, "breast")
    n = len(src)
    with StackedStoreWriter(
        path,
        kind="masses",
        n_cases=n,
        image_size=src.image_size,
        producer=PRODUCER,
        parents=[src.as_parent()],
        with_mass_masks=True,
    ) as writer:
        for i, (record, transform) in enumerate(zip(src.cases, src.transforms, strict=True)):
            truth = np.asarray(src.array("mass_masks")[i])
            pred = truth if perfect else np.roll(truth, 3 * (i % 3), axis=1)
            writer.write_case(
                i,
                record,
                transform,
                images=np.asarray(src.array("images")[i]),
                breast_masks=np.asarray(src.array("breast_masks")[i]),
                mass_masks=truth,
                mass_probs=pred.astype(np.float16) * np.float16(0.9) + np.float16(0.05),
                mass_pred=pred,
            )
