"""The segmentation threshold that defines mass objects: what a lower one finds and costs.

massseg marks a mass where the (refined) probability reaches ``predict.threshold`` (0.5); the
demo misses masses whose whole-image probability peaks just under it, and the false-positive
scorer (:mod:`massseg.fp_reduction`) was built to weed out what a more sensitive first step
finds. This script asks whether a lower object threshold, with the scorer refitted for it,
finds more masses without losing Dice. For one trained model folder it runs the network once
on the fold's training and validation images and on the test images, and for each threshold of
``--thresholds``:

* runs the refiner (as ``massseg predict`` does) with that threshold, and measures every object
  of ``refined >= threshold`` (:func:`massseg.fp_reduction.collect_objects`);
* fits the scorer on the training images' objects and chooses its operating point (score
  threshold and ``max_objects="auto"`` cap) on the validation images, exactly as training does
  (:func:`massseg.fp_reduction.fit_fp_reduction`, the model card's ``c`` and ``tolerance``);
* applies it to the test images: mean Dice over the images with a mass (outlines drawn at that
  threshold), masses found before and kept after the scorer, false detections kept, and the
  images with a mass left without any detection (they count as benign at case level).

Usage::

    .venv/bin/python bench/object_threshold.py        # the demo's model, thresholds 0.5 0.4 0.3 0.2
    .venv/bin/python bench/object_threshold.py --thresholds 0.5 0.35 --name object_threshold_b

Prints a table and writes ``bench/results/object_threshold.json`` (or ``<--name>.json``).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import _common as C
import _massseg as M
import numpy as np


def measure(model_dir: Path, data: Path, splits: Path, thresholds: list[float]) -> dict[str, Any]:
    """Test figures of every object threshold for the model in ``model_dir``."""
    from mammo_common.store import open_store
    from massseg.fp_reduction import _keep, fit_fp_reduction

    mm = M.load_mass_model(model_dir)
    settings = mm.fp_settings
    store = open_store(data, "breast")

    def part(which: str) -> tuple[tuple[list, list, list], Any]:
        C.log(f"network on the {which} images")
        rows = M.case_indices(store, splits, which, mm.card.data.fold)
        return M.network_maps(mm, store, rows), M.breast_masks(store, rows)

    parts = {name: part(name) for name in ("train", "valid", "test")}
    rows: dict[str, Any] = {}
    for t in thresholds:
        C.log(f"object threshold {t}")
        objs = {name: M.measure_objects(mm, p, t, b) for name, (p, b) in parts.items()}
        scorer = fit_fp_reduction(objs["train"], objs["valid"], c=float(settings.get("c", 1.0)),
                                  tolerance=float(settings.get("tolerance", 0.005)),
                                  max_objects=settings.get("max_objects", "auto"),
                                  scorer=settings.get("scorer", "logistic"),
                                  seed=int(mm.card.training.get("seed", 0)))
        test = objs["test"]
        scores = scorer.scores(test.features)
        keep = _keep(scores, test.rank(scores), scorer.threshold, scorer.max_objects)
        with_mass = test.truth_area > 0
        found = np.bincount(test.image[test.is_mass], minlength=len(with_mass)) > 0
        kept = np.bincount(test.image[keep], minlength=len(with_mass)) > 0
        rows[str(t)] = {
            "max_objects": scorer.max_objects,
            "score_threshold": scorer.threshold,
            "valid_dice": scorer.info.get("valid_dice"),
            "valid_auc": scorer.info.get("valid_auc"),
            "train_objects": scorer.info.get("train_objects"),
            "test_dice": test.mean_dice(keep),
            "test_dice_every_object": test.mean_dice(np.ones(len(scores), bool)),
            "test_images_with_mass_found": int((found & with_mass).sum()),
            "test_masses_kept": int((keep & test.is_mass).sum()),
            "test_false_kept": int((keep & ~test.is_mass).sum()),
            "test_images_with_mass_without_detection": int((with_mass & ~kept).sum()),
            "test_images_without_mass_clean": int((~with_mass & ~kept).sum()),
        }
    return {
        "model": str(model_dir),
        "model_id": mm.card.model_id,
        "data": str(data),
        "test_images": len(parts["test"][0][0]),
        "test_images_with_mass": int(sum(t.any() for t in parts["test"][0][2])),
        "thresholds": rows,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    M.add_model_arguments(parser, "object_threshold")
    parser.add_argument("--thresholds", type=float, nargs="+", default=[0.5, 0.4, 0.3, 0.2])
    args = parser.parse_args(argv)
    result = measure(args.model, args.data, args.splits, args.thresholds)
    rows = [[t, r["max_objects"], f"{r['valid_dice']:.3f}", f"{r['test_dice']:.3f}",
             r["test_images_with_mass_found"], r["test_masses_kept"], r["test_false_kept"],
             r["test_images_with_mass_without_detection"], r["test_images_without_mass_clean"]]
            for t, r in result["thresholds"].items()]
    C.print_table(["object thr", "cap", "valid Dice", "test Dice", "mass images found",
                   "masses kept", "false kept", "mass images empty", "clean normals"], rows,
                  title=f"{result['test_images_with_mass']} of {result['test_images']} test "
                  "images hold a mass")
    path = C.write_results(args.name, result)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
