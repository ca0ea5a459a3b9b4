"""Regions of interest: one square crop per mass of a ``masses`` store, ready for a classifier.

For every case (in store order, or the ids asked for):

1. The mass mask is ``mass_pred`` (``source="pred"``) or the ground truth ``mass_masks``
   (``source="truth"``, for training on annotated masses); ``source="pred_matched"`` keeps
   only the predicted components that overlap a ground-truth mass (training on the outlines
   segmentation draws, without its false detections). Connected components (8-connected)
   smaller than ``min_pixels`` are dropped (the store's ``min_object_pixels`` by default, the
   reference's 30); each remaining component is one mass, numbered 1..n in raster order
   (``mass_index``; the same numbering ``massclass predict`` writes).
2. The crop is a square centred on the component's bounding box, of side
   ``max(h, w) * (1 + 2 * margin)`` (at least ``min_side``), zero-padded where it leaves the
   image, then resized (bilinear) to ``size`` x ``size``.
3. Intensities are the case's image divided by its maximum (so [0, 1], relative to the whole
   breast image, not stretched per crop).
4. Channels: ``image`` representation -> the gray crop three times; ``image+mask`` ->
   (image, image, this mass's own mask, 0/1). The model maps [0, 1] to its backbone's range.
   With ``outline="image"`` the mask channel is the crop's own outline of the mass, seeded by
   the mask (:mod:`massclass.outline`), so a ground-truth outline at training and a
   network's outline at prediction are redrawn alike.

Labels come from the case pathology: ``MALIGNANT`` -> 1, ``BENIGN`` -> 0,
``BENIGN_WITHOUT_CALLBACK`` -> 0 by default (configurable: malignant or excluded), unknown ->
NaN. Cases whose mask holds no mass are listed in :attr:`RoiSet.missed`, never dropped silently.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import numpy as np

from mammo_common.cli_support import track
from mammo_common.crops import padded_crop, resize_bilinear
from mammo_common.errors import StoreError
from mammo_common.postprocess import Component, components
from mammo_common.schema import CaseRecord
from mammo_common.store import MassesStore
from massclass.config import RoiConfig
from massclass.outline import image_outline, outline_settings

__all__ = ["RoiSet", "case_label", "crop_box", "crop_roi", "extract_rois"]


def case_label(record: CaseRecord, benign_without_callback: str = "benign") -> float:
    """1.0 malignant, 0.0 benign, NaN unknown or excluded, from the case pathology."""
    pathology = record.pathology
    if pathology == "MALIGNANT":
        return 1.0
    if pathology == "BENIGN":
        return 0.0
    if pathology == "BENIGN_WITHOUT_CALLBACK":
        return {"benign": 0.0, "malignant": 1.0}.get(benign_without_callback, float("nan"))
    return float("nan")


def crop_box(
    bbox: tuple[int, int, int, int], margin: float, min_side: int = 1
) -> tuple[int, int, int, int]:
    """Square crop ``(y0, x0, y1, x1)`` around ``bbox`` (may extend outside the image)."""
    y0, x0, y1, x1 = bbox
    side = max(y1 - y0, x1 - x0) * (1.0 + 2.0 * margin)
    side = max(round(side), int(min_side), 1)
    cy, cx = (y0 + y1) / 2.0, (x0 + x1) / 2.0
    top = int(np.floor(cy - side / 2.0))
    left = int(np.floor(cx - side / 2.0))
    return top, left, top + side, left + side


def _padded_crop(array: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
    """The ``box`` of ``array`` as float32, zero where it leaves the image."""
    return padded_crop(array, box).astype(np.float32, copy=False)


def crop_roi(
    image: np.ndarray,
    component: Component,
    *,
    size: int,
    margin: float = 0.25,
    min_side: int = 32,
    representation: str = "image",
    outline: str = "mask",
) -> np.ndarray:
    """One ROI ``(size, size, 3)`` float32 in [0, 1] from an image already scaled to [0, 1].

    ``outline="image"`` (with ``image+mask``) replaces the component's mask by the crop's own
    outline of the mass, seeded by it (:func:`massclass.outline.image_outline`).
    """
    box = crop_box(component.bbox, margin, min_side)
    gray = np.clip(resize_bilinear(_padded_crop(image, box), size), 0.0, 1.0)
    if representation == "image":
        return np.stack([gray, gray, gray], axis=-1)
    if representation != "image+mask":
        raise ValueError(f"representation must be 'image' or 'image+mask', not {representation!r}")
    full = np.zeros(image.shape, dtype=np.float32)
    full[component.slices] = component.mask
    mask = (resize_bilinear(_padded_crop(full, box), size) >= 0.5).astype(np.float32)
    if outline == "image":
        mask = image_outline(gray, mask, **outline_settings(size))
    elif outline != "mask":
        raise ValueError(f"outline must be 'mask' or 'image', not {outline!r}")
    return np.stack([gray, gray, mask], axis=-1)


def _scaled(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image, dtype=np.float32)
    top = float(image.max()) if image.size else 0.0
    return image / top if top > 0 else np.zeros_like(image)


@dataclasses.dataclass
class RoiSet:
    """The regions of interest of some cases.

    Attributes:
        images: ``(n_rois, size, size, 3)`` float32 in [0, 1].
        labels: ``(n_rois,)`` float32: 1 malignant, 0 benign, NaN unknown/excluded.
        case_ids: The case of each ROI.
        mass_index: 1-based index of each ROI's mass within its case.
        bboxes: Bounding box ``(y0, x0, y1, x1)`` of each mass in store pixels.
        areas: Pixel count of each mass.
        overlaps_truth: Whether each predicted mass touches a ground-truth mass (``None`` when
            the store has no ground truth or the ROIs are ground-truth masses themselves).
        cases: Case ids considered, in order.
        case_labels: Label of each considered case (same coding as ``labels``).
        missed: Cases whose mask held no mass (no ROI; reported, never dropped).
        records: Case record of each considered case.
    """

    images: np.ndarray
    labels: np.ndarray
    case_ids: list[str]
    mass_index: list[int]
    bboxes: list[tuple[int, int, int, int]]
    areas: list[int]
    overlaps_truth: list[bool | None]
    cases: list[str]
    case_labels: list[float]
    missed: list[str]
    records: dict[str, CaseRecord] = dataclasses.field(default_factory=dict, repr=False)

    def __len__(self) -> int:
        return int(self.images.shape[0])

    @property
    def labeled(self) -> np.ndarray:
        """Boolean mask of the ROIs with a known label."""
        return np.isfinite(self.labels)

    def subset(self, keep: np.ndarray) -> RoiSet:
        """The ROIs where ``keep`` is true (case-level lists unchanged)."""
        keep = np.asarray(keep, dtype=bool)
        pick = [i for i, k in enumerate(keep) if k]
        return dataclasses.replace(
            self,
            images=self.images[keep],
            labels=self.labels[keep],
            case_ids=[self.case_ids[i] for i in pick],
            mass_index=[self.mass_index[i] for i in pick],
            bboxes=[self.bboxes[i] for i in pick],
            areas=[self.areas[i] for i in pick],
            overlaps_truth=[self.overlaps_truth[i] for i in pick],
        )

    def summary(self) -> dict[str, Any]:
        """Counts for logs and model cards."""
        lab = self.labels[self.labeled]
        case_lab = np.asarray(self.case_labels, dtype=np.float64)
        return {
            "n_cases": len(self.cases),
            "n_rois": len(self),
            "n_malignant_rois": int((lab == 1).sum()),
            "n_benign_rois": int((lab == 0).sum()),
            "n_unlabeled_rois": int((~self.labeled).sum()),
            "n_missed_cases": len(self.missed),
            "n_missed_malignant": int(
                sum(case_lab[self.cases.index(c)] == 1 for c in self.missed)
            ),
            "missed_cases": list(self.missed),
        }


def extract_rois(
    store: MassesStore,
    config: RoiConfig | None = None,
    *,
    size: int = 224,
    case_ids: Sequence[str] | None = None,
) -> RoiSet:
    """Cut the ROIs of ``case_ids`` (all cases by default) out of a ``masses`` store.

    Args:
        store: An open ``masses`` store (``open_store(path, "masses")``).
        config: ROI settings (defaults: predicted masses, image representation, margin 0.25).
        size: Output side (the model input size).
        case_ids: Cases to use, in this order.

    Returns:
        A :class:`RoiSet`; cases without any mass are in ``missed``.

    Raises:
        StoreError: Unknown case id, or ``source="truth"`` on a store without ground truth.
    """
    config = config or RoiConfig()
    if config.source in ("truth", "pred_matched") and not store.meta.has_mass_masks:
        raise StoreError(
            f"has no ground-truth mass_masks, so ROIs cannot come from source "
            f"{config.source!r}",
            path=store.path,
            field="mass_masks",
            fix="use roi.source: pred, or a masses store made from annotated images",
        )
    min_pixels = (
        int(getattr(store.meta, "min_object_pixels", 0))
        if config.min_pixels is None
        else config.min_pixels
    )
    ids = list(store.case_ids if case_ids is None else case_ids)
    records = {c.case_id: c for c in store.cases}
    position = {c: k for k, c in enumerate(store.case_ids)}
    unknown = [c for c in ids if c not in position]
    if unknown:
        raise StoreError(
            f"has no case {unknown[0]!r} ({len(unknown)} unknown case id(s) in all)",
            path=store.path,
            field="cases",
            fix="use a splits file made for this store's cases",
        )
    images_arr = store.array("images")
    predicted = config.source in ("pred", "pred_matched")
    source_arr = store.array("mass_pred" if predicted else "mass_masks")
    truth_arr = store.array("mass_masks") if store.meta.has_mass_masks else None

    rois: list[np.ndarray] = []
    labels: list[float] = []
    roi_cases: list[str] = []
    mass_index: list[int] = []
    bboxes: list[tuple[int, int, int, int]] = []
    areas: list[int] = []
    overlaps: list[bool | None] = []
    case_labels: list[float] = []
    missed: list[str] = []
    for case_id in track(ids, f"regions of interest ({config.source})"):
        i = position[case_id]
        record = records[case_id]
        label = case_label(record, config.benign_without_callback)
        case_labels.append(label)
        comps = components(np.asarray(source_arr[i]) > 0, min_pixels=min_pixels)
        if not comps:
            missed.append(case_id)
            continue
        image = _scaled(np.asarray(images_arr[i]))
        truth = (
            np.asarray(truth_arr[i]) > 0
            if truth_arr is not None and predicted
            else None
        )
        if config.source == "pred_matched":
            comps = [c for c in comps if truth is not None and (truth[c.slices] & c.mask).any()]
            if not comps:
                missed.append(case_id)
                continue
        for comp in comps:
            rois.append(
                crop_roi(
                    image,
                    comp,
                    size=size,
                    margin=config.margin,
                    min_side=config.min_side,
                    representation=config.representation,
                    outline=config.outline,
                )
            )
            labels.append(label)
            roi_cases.append(case_id)
            mass_index.append(comp.label)
            bboxes.append(comp.bbox)
            areas.append(comp.area)
            overlaps.append(None if truth is None else bool((truth[comp.slices] & comp.mask).any()))
    images = (
        np.stack(rois).astype(np.float32)
        if rois
        else np.zeros((0, size, size, 3), dtype=np.float32)
    )
    return RoiSet(
        images=images,
        labels=np.asarray(labels, dtype=np.float32),
        case_ids=roi_cases,
        mass_index=mass_index,
        bboxes=bboxes,
        areas=areas,
        overlaps_truth=overlaps,
        cases=ids,
        case_labels=case_labels,
        missed=missed,
        records={c: records[c] for c in ids},
    )
