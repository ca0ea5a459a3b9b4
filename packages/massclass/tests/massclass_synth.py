"""Synthetic masses for the massclass tests (made here: massclass must test without other stages).

Benign: round or oval blobs with smooth, circumscribed margins. Malignant: irregular outlines
(several random harmonics) with thin spicules radiating out. A share of each class borrows the
other's look (overlap), so the task is learnable but not trivial.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw
from scipy import ndimage

from mammo_common.schema import CaseRecord, CaseTransform, Producer
from mammo_common.splits import make_splits
from mammo_common.store import StackedStoreWriter

PRODUCER = Producer(package="massclass-tests", version="0", command="fixture")


def blob_mask(
    rng: np.random.Generator, shape: tuple[int, int], center: tuple[float, float], radius: float,
    malignant: bool, overlap: float = 0.15,
) -> np.ndarray:
    """A benign-looking or malignant-looking mass mask (bool) of ``shape``."""
    looks_malignant = malignant if rng.random() >= overlap else not malignant
    theta = np.linspace(0, 2 * np.pi, 721)
    if looks_malignant:
        r = np.ones_like(theta)
        for k in rng.choice(np.arange(3, 10), size=4, replace=False):
            r += rng.uniform(0.06, 0.16) * np.cos(k * theta + rng.uniform(0, 2 * np.pi))
    else:
        ecc = rng.uniform(0.0, 0.25)
        r = 1 + ecc * np.cos(2 * (theta - rng.uniform(0, np.pi)))
        r += 0.02 * np.cos(3 * theta + rng.uniform(0, 2 * np.pi))
    r = r * radius
    yy, xx = np.mgrid[0 : shape[0], 0 : shape[1]]
    dy, dx = yy - center[0], xx - center[1]
    ang = np.mod(np.arctan2(dy, dx), 2 * np.pi)
    mask = np.hypot(dy, dx) <= np.interp(ang, theta, r)
    if looks_malignant:
        img = Image.fromarray(mask.astype(np.uint8) * 255)
        draw = ImageDraw.Draw(img)
        for _ in range(int(rng.integers(6, 13))):
            a = rng.uniform(0, 2 * np.pi)
            length = radius * rng.uniform(1.4, 2.1)
            end = (center[1] + length * np.cos(a), center[0] + length * np.sin(a))
            draw.line([(center[1], center[0]), end], fill=255, width=int(rng.integers(1, 3)))
        mask = np.asarray(img) > 0
    return mask


def render(rng: np.random.Generator, mask: np.ndarray) -> np.ndarray:
    """Gray image in [0, 1]: smooth fibroglandular-like texture plus a bright mass."""
    texture = ndimage.gaussian_filter(rng.normal(size=mask.shape), 3.0)
    texture = 0.35 + 0.08 * texture / (texture.std() + 1e-6)
    mass = ndimage.gaussian_filter(mask.astype(np.float32), 0.8)
    image = texture + 0.35 * mass + 0.02 * rng.normal(size=mask.shape)
    return np.clip(image, 0, 1).astype(np.float32)


def make_case(
    rng: np.random.Generator, shape: tuple[int, int], malignant: bool, overlap: float = 0.15
) -> tuple[np.ndarray, np.ndarray]:
    """One (image, mask) pair with a single mass somewhere inside."""
    radius = rng.uniform(0.08, 0.13) * min(shape)
    margin = 2.3 * radius
    center = (rng.uniform(margin, shape[0] - margin), rng.uniform(margin, shape[1] - margin))
    mask = blob_mask(rng, shape, center, radius, malignant, overlap)
    return render(rng, mask), mask


def write_masses_store(
    path: Path,
    *,
    n_cases: int = 24,
    size: int = 96,
    seed: int = 0,
    missed: tuple[int, ...] = (3, 8),
    extra_blob: tuple[int, ...] = (5,),
    pathologies: tuple[str, ...] = ("MALIGNANT", "BENIGN", "MALIGNANT", "BENIGN_WITHOUT_CALLBACK"),
) -> dict:
    """Write a ``masses`` store of phantom cases; returns what was made.

    Cases listed in ``missed`` get an empty ``mass_pred`` (segmentation missed them); cases in
    ``extra_blob`` get a second, false-positive predicted object.
    """
    rng = np.random.default_rng(seed)
    shape = (size, size)
    info = {"case_ids": [], "patients": [], "pathology": [], "missed": []}
    with StackedStoreWriter(
        path, kind="masses", n_cases=n_cases, image_size=shape, producer=PRODUCER,
        with_mass_masks=True, meta_fields={"min_object_pixels": 10},
    ) as writer:
        for i in range(n_cases):
            pathology = pathologies[i % len(pathologies)]
            image, mask = make_case(rng, shape, pathology == "MALIGNANT")
            pred = ndimage.binary_opening(mask, iterations=1) if i % 3 else mask.copy()
            if i in missed:
                pred = np.zeros_like(mask)
            if i in extra_blob:
                pred = pred.copy()
                pred[2:8, 2:8] = True
            case_id = f"case{i:03d}"
            patient = f"p{i // 2:03d}"
            record = CaseRecord(
                case_id=case_id, patient_id=patient, pathology=pathology, abnormality="mass",
                original_shape=shape, pathology_source="synthetic",
            )
            writer.write_case(
                i,
                record,
                CaseTransform(original_shape=shape, crop_box=(0, 0, *shape), output_shape=shape),
                images=(image * 4000).astype(np.uint16),
                breast_masks=np.ones(shape, np.uint8),
                mass_masks=mask.astype(np.uint8),
                mass_probs=pred.astype(np.float16),
                mass_pred=pred.astype(np.uint8),
            )
            info["case_ids"].append(case_id)
            info["patients"].append(patient)
            info["pathology"].append(pathology)
            if i in missed:
                info["missed"].append(case_id)
    return info


def write_splits(path: Path, info: dict, n_folds: int = 2, test_fraction: float = 0.25) -> Path:
    """A splits file over the fixture's cases."""
    splits = make_splits(
        info["case_ids"], info["patients"], info["pathology"], n_folds=n_folds,
        test_fraction=test_fraction, seed=0,
    )
    return splits.save(path)


def roi_dataset(
    n: int, seed: int, *, size: int, image_shape: tuple[int, int] = (64, 64),
    margin: float = 0.25, representation: str = "image", overlap: float = 0.1,
) -> tuple[np.ndarray, np.ndarray]:
    """``n`` ROIs (alternately malignant and benign) cut around each case's mass, and labels."""
    from mammo_common.postprocess import components
    from massclass.rois import crop_roi

    rng = np.random.default_rng(seed)
    xs, ys = [], []
    for i in range(n):
        malignant = i % 2 == 0
        image, mask = make_case(rng, image_shape, malignant, overlap=overlap)
        comp = max(components(mask), key=lambda c: c.area)
        xs.append(crop_roi(image, comp, size=size, margin=margin, min_side=16,
                           representation=representation))
        ys.append(float(malignant))
    return np.stack(xs), np.asarray(ys, np.float32)
