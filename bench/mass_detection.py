"""Mass detection on the test images: which masses the cascade finds, and what else it marks.

``massseg evaluate`` scores pixels (Dice per image); this script scores objects, the way a
reader counts findings. On the test part of a ``masses`` store (``data/masses.zarr``, the
pipeline's output) with ground-truth ``mass_masks``:

* every true mass (a connected component of ``mass_masks``) is *found* when a predicted
  component (of ``mass_pred``, as predict wrote it, small objects already removed) overlaps
  it; its Dice is computed against the union of the predicted components that touch it, 0
  when missed; masses are grouped by area (``--large``, store pixels, default 1,500: about
  12 mm across at the demo's 0.25-0.3 mm per pixel);
* every predicted component that touches no true mass is a *false detection*, counted on the
  images with a mass and on the images without one; an image without a mass is *clean* when
  it has none;
* every true mass's **conspicuity**, measured on the image against the truth (no model):
  its contrast-to-noise ratio ``(mean inside - mean of its surround) / SD of the surround``,
  the surround being the breast pixels within one equivalent radius outside its outline.
  A mass inside dense tissue has a surround as bright as itself (CNR near 0); the found and
  missed masses' CNRs, and the ROC AUC of CNR for "found", say whether what is missed is what
  is hard to see; beside it ``p_max``, the highest final probability (``mass_probs``) inside
  the true outline (a missed mass at 0.3 was nearly found, one at 0.01 was not seen at all).

Writes ``bench/results/mass_detection.json`` (or ``<--name>.json``: the store, its producer's
model ids, the counts, per-size groups and the per-mass rows) and prints a table. Takes
seconds; no model is run.

Usage::

    .venv/bin/python bench/mass_detection.py                          # data/masses.zarr
    .venv/bin/python bench/mass_detection.py --data /tmp/masses.zarr --large 1000
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import numpy as np
from _common import write_results
from scipy import ndimage as ndi

from mammo_common.stage import split_cases
from mammo_common.store import open_store

ROOT = Path(__file__).resolve().parents[1]


def conspicuity(image: np.ndarray, mass: np.ndarray, breast: np.ndarray | None) -> float | None:
    """Contrast-to-noise ratio of ``mass`` against the breast within one equivalent radius."""
    radius = max(2, round(float(np.sqrt(mass.sum() / np.pi))))
    outside = ndi.distance_transform_edt(~mass)
    ring = (outside > 0) & (outside <= radius)
    if breast is not None:
        ring &= breast
    if ring.sum() < 10:
        return None
    values = image.astype(np.float64)
    spread = float(values[ring].std())
    if spread == 0:
        return None
    return (float(values[mass].mean()) - float(values[ring].mean())) / spread


def _masses(
    truth: np.ndarray,
    pred: np.ndarray,
    large: int,
    image: np.ndarray | None = None,
    breast: np.ndarray | None = None,
    probs: np.ndarray | None = None,
) -> tuple[list[dict[str, Any]], int]:
    """Per true mass: area, found, Dice, conspicuity; and the number of false detections."""
    plab, pn = ndi.label(pred)
    tlab, tn = ndi.label(truth)
    rows = []
    for k in range(1, tn + 1):
        mass = tlab == k
        touching = sorted(set(np.unique(plab[mass]).tolist()) - {0})
        drawn = np.isin(plab, touching) if touching else np.zeros_like(mass)
        area = int(mass.sum())
        dice = 2.0 * float((drawn & mass).sum()) / float(drawn.sum() + area)
        row = {"area": area, "large": area >= large, "found": bool(touching),
               "dice": round(dice, 4)}
        if image is not None:
            cnr = conspicuity(image, mass, breast)
            row["cnr"] = None if cnr is None else round(cnr, 3)
        if probs is not None:
            row["p_max"] = round(float(probs[mass].max()), 3)
        rows.append(row)
    false = sum(1 for k in range(1, pn + 1) if not truth[plab == k].any())
    return rows, false


def measure(data: Path, splits: Path, part: str, large: int) -> dict[str, Any]:
    """Object-level detection counts of ``data``'s ``part`` cases."""
    store = open_store(data, "masses")
    wanted = set(split_cases(splits, part))
    truth_arr, pred_arr = store.array("mass_masks"), store.array("mass_pred")
    image_arr = store.array("images")
    probs_arr = store.array("mass_probs") if store.has("mass_probs") else None
    breast_arr = store.array("breast_masks") if store.has("breast_masks") else None
    masses: list[dict[str, Any]] = []
    false_on_mass = false_on_normal = clean = normals = 0
    for i, case in enumerate(store.case_ids):
        if case not in wanted:
            continue
        truth = np.asarray(truth_arr[i]) > 0
        pred = np.asarray(pred_arr[i]) > 0
        image = np.asarray(image_arr[i]).squeeze()
        if image.ndim == 3:  # channels last
            image = image[..., 0]
        breast = np.asarray(breast_arr[i]).squeeze() > 0 if breast_arr is not None else None
        probs = (np.asarray(probs_arr[i], np.float32).squeeze()
                 if probs_arr is not None else None)
        rows, false = _masses(truth, pred, large, image, breast, probs)
        masses += [{"case_id": case, **r} for r in rows]
        if truth.any():
            false_on_mass += false
        else:
            normals += 1
            false_on_normal += false
            clean += int(not pred.any())

    def group(rows: list[dict[str, Any]]) -> dict[str, Any]:
        found = [r for r in rows if r["found"]]
        missed = [r for r in rows if not r["found"]]

        def median_cnr(group_rows: list[dict[str, Any]]) -> float | None:
            values = [r["cnr"] for r in group_rows if r.get("cnr") is not None]
            return float(np.median(values)) if values else None

        return {
            "n": len(rows),
            "found": len(found),
            "missed": len(rows) - len(found),
            "dice_mean": float(np.mean([r["dice"] for r in rows])) if rows else None,
            "dice_mean_found": float(np.mean([r["dice"] for r in found])) if found else None,
            "cnr_median_found": median_cnr(found),
            "cnr_median_missed": median_cnr(missed),
        }

    producer = getattr(store.meta, "producer", None)
    return {
        "store": str(data),
        "model_ids": list(getattr(producer, "model_ids", []) or []),
        "part": part,
        "large_pixels": large,
        "masses": group(masses),
        "masses_large": group([r for r in masses if r["large"]]),
        "masses_small": group([r for r in masses if not r["large"]]),
        "false_detections": false_on_mass + false_on_normal,
        "false_detections_on_images_with_mass": false_on_mass,
        "false_detections_on_images_without_mass": false_on_normal,
        "images_without_mass": normals,
        "images_without_mass_clean": clean,
        "cnr_auc_for_found": _cnr_auc(masses),
        "per_mass": masses,
    }


def _cnr_auc(rows: list[dict[str, Any]]) -> float | None:
    """ROC AUC of conspicuity as a score for "found" (0.5: unrelated; 1: the found masses
    are all more conspicuous than the missed ones)."""
    scored = [r for r in rows if r.get("cnr") is not None]
    if len({r["found"] for r in scored}) < 2:
        return None
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score([r["found"] for r in scored], [r["cnr"] for r in scored]))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=ROOT / "data" / "masses.zarr")
    parser.add_argument("--splits", type=Path, default=ROOT / "data" / "splits.json")
    parser.add_argument("--part", default="test")
    parser.add_argument("--large", type=int, default=1500, help="area (px) of a large mass")
    parser.add_argument("--name", default="mass_detection",
                        help="results file bench/results/<name>.json")
    args = parser.parse_args(argv)
    result = measure(args.data, args.splits, args.part, args.large)
    print(f"{'group':<22}{'masses':>8}{'found':>8}{'missed':>8}{'Dice (all)':>12}"
          f"{'Dice (found)':>14}{'CNR found':>11}{'CNR missed':>12}")

    def fmt(value: float | None) -> str:
        return "-" if value is None else f"{value:.3f}"

    for name in ("masses", "masses_large", "masses_small"):
        g = result[name]
        print(f"{name:<22}{g['n']:>8}{g['found']:>8}{g['missed']:>8}"
              f"{fmt(g['dice_mean']):>12}{fmt(g['dice_mean_found']):>14}"
              f"{fmt(g['cnr_median_found']):>11}{fmt(g['cnr_median_missed']):>12}")
    print(f"false detections: {result['false_detections']} "
          f"({result['false_detections_on_images_with_mass']} on images with a mass, "
          f"{result['false_detections_on_images_without_mass']} on the "
          f"{result['images_without_mass']} without); images without a mass left clean: "
          f"{result['images_without_mass_clean']} of {result['images_without_mass']}")
    print(f"conspicuity (CNR) as a score for found: ROC AUC {fmt(result['cnr_auc_for_found'])}")
    path = write_results(args.name, {
        "command": " ".join(["python bench/mass_detection.py", *(argv or sys.argv[1:])]),
        **result,
    })
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
