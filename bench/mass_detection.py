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
  it has none.

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


def _masses(truth: np.ndarray, pred: np.ndarray, large: int) -> tuple[list[dict[str, Any]], int]:
    """Per true mass: area, found, Dice; and the number of false detections."""
    plab, pn = ndi.label(pred)
    tlab, tn = ndi.label(truth)
    rows = []
    for k in range(1, tn + 1):
        mass = tlab == k
        touching = sorted(set(np.unique(plab[mass]).tolist()) - {0})
        drawn = np.isin(plab, touching) if touching else np.zeros_like(mass)
        area = int(mass.sum())
        dice = 2.0 * float((drawn & mass).sum()) / float(drawn.sum() + area)
        rows.append({"area": area, "large": area >= large, "found": bool(touching),
                     "dice": round(dice, 4)})
    false = sum(1 for k in range(1, pn + 1) if not truth[plab == k].any())
    return rows, false


def measure(data: Path, splits: Path, part: str, large: int) -> dict[str, Any]:
    """Object-level detection counts of ``data``'s ``part`` cases."""
    store = open_store(data, "masses")
    wanted = set(split_cases(splits, part))
    truth_arr, pred_arr = store.array("mass_masks"), store.array("mass_pred")
    masses: list[dict[str, Any]] = []
    false_on_mass = false_on_normal = clean = normals = 0
    for i, case in enumerate(store.case_ids):
        if case not in wanted:
            continue
        truth = np.asarray(truth_arr[i]) > 0
        pred = np.asarray(pred_arr[i]) > 0
        rows, false = _masses(truth, pred, large)
        masses += [{"case_id": case, **r} for r in rows]
        if truth.any():
            false_on_mass += false
        else:
            normals += 1
            false_on_normal += false
            clean += int(not pred.any())

    def group(rows: list[dict[str, Any]]) -> dict[str, Any]:
        found = [r for r in rows if r["found"]]
        return {
            "n": len(rows),
            "found": len(found),
            "missed": len(rows) - len(found),
            "dice_mean": float(np.mean([r["dice"] for r in rows])) if rows else None,
            "dice_mean_found": float(np.mean([r["dice"] for r in found])) if found else None,
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
        "per_mass": masses,
    }


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
          f"{'Dice (found)':>14}")

    def fmt(value: float | None) -> str:
        return "-" if value is None else f"{value:.3f}"

    for name in ("masses", "masses_large", "masses_small"):
        g = result[name]
        print(f"{name:<22}{g['n']:>8}{g['found']:>8}{g['missed']:>8}"
              f"{fmt(g['dice_mean']):>12}{fmt(g['dice_mean_found']):>14}")
    print(f"false detections: {result['false_detections']} "
          f"({result['false_detections_on_images_with_mass']} on images with a mass, "
          f"{result['false_detections_on_images_without_mass']} on the "
          f"{result['images_without_mass']} without); images without a mass left clean: "
          f"{result['images_without_mass_clean']} of {result['images_without_mass']}")
    path = write_results(args.name, {
        "command": " ".join(["python bench/mass_detection.py", *(argv or sys.argv[1:])]),
        **result,
    })
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
