"""The cap on detections per image: mass Dice on the test images under each cap.

massseg's false-positive reduction (:mod:`massseg.fp_reduction`) removes the detections whose
score is under a threshold and, with ``max_objects``, all but the best-scoring ones of each
image. This script measures what each cap does on one trained model, all else equal: it runs
the model folder's network and refiner (as ``massseg predict`` does, no test-time
augmentation) on the validation images of its fold and on the test images of the splits,
measures every object as the scorer does (:func:`massseg.fp_reduction.collect_objects`), and
for each cap of :data:`massseg.fp_reduction.MAX_OBJECTS_CHOICES` chooses the score threshold on
the validation images (as training does) and applies both to the test images:

* ``valid_dice`` / ``test_dice``: mean Dice over the images with a mass (``massseg
  evaluate``'s headline, here from the objects, so objects under ``min_object_pixels`` are not
  counted);
* ``test_masses_kept``: detections on a true mass kept; ``test_false_kept``: the others, and
  how many of them lie on images with a mass (where they lower the Dice).

``chosen`` is the cap the model's own scorer holds (``fp_reduction.json``), with the rule
training uses (the loosest cap within ``tolerance`` of the best validation Dice).

Usage::

    .venv/bin/python bench/objects_per_image.py        # the demo's massseg model (1-3 min)
    .venv/bin/python bench/objects_per_image.py --model models/massseg/unet5l/fold_1 \\
        --data data/breast.zarr --splits data/splits.json --name objects_per_image_seed1

Prints a table and writes ``bench/results/objects_per_image.json`` (or ``<--name>.json``).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import _common as C
import _massseg as M
import numpy as np


def measure(model_dir: Path, data: Path, splits: Path) -> dict[str, Any]:
    """Validation and test Dice of every cap for the model in ``model_dir``."""
    from mammo_common.store import open_store
    from massseg.fp_reduction import (
        MAX_OBJECTS_CHOICES,
        _keep,
        _operating_point,
        load_fp_reduction,
    )

    mm = M.load_mass_model(model_dir)
    scorer = load_fp_reduction(model_dir)
    store = open_store(data, "breast")
    threshold = float(mm.card.threshold)
    tolerance = float(mm.fp_settings.get("tolerance", 0.005))

    def objects(part: str) -> Any:
        rows = M.case_indices(store, splits, part, mm.card.data.fold)
        return M.measure_objects(mm, M.network_maps(mm, store, rows), threshold,
                                 M.breast_masks(store, rows))

    valid = objects("valid")
    test = objects("test")
    sv, st = scorer.scores(valid.features), scorer.scores(test.features)
    on_mass_image = test.truth_area[test.image] > 0
    caps: dict[str, Any] = {}
    for cap in MAX_OBJECTS_CHOICES:
        cut, valid_dice, _ = _operating_point(sv, valid, tolerance, cap)
        keep = _keep(st, test.rank(st), cut, cap)
        caps["none" if cap is None else str(cap)] = {
            "score_threshold": cut,
            "valid_dice": valid_dice,
            "test_dice": test.mean_dice(keep),
            "test_masses_kept": int((keep & test.is_mass).sum()),
            "test_false_kept": int((keep & ~test.is_mass).sum()),
            "test_false_kept_on_images_with_mass": int((keep & ~test.is_mass
                                                        & on_mass_image).sum()),
        }
    return {
        "model": str(model_dir),
        "model_id": mm.card.model_id,
        "data": str(data),
        "chosen": "none" if scorer.max_objects is None else str(scorer.max_objects),
        "scorer_info": scorer.info,
        "valid_images_with_mass": int((valid.truth_area > 0).sum()),
        "test_images": len(test.truth_area),
        "test_images_with_mass": int((test.truth_area > 0).sum()),
        "test_objects": len(st),
        "test_objects_on_a_mass": int(test.is_mass.sum()),
        "test_dice_every_object": test.mean_dice(np.ones(len(st), bool)),
        "caps": caps,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    M.add_model_arguments(parser, "objects_per_image")
    args = parser.parse_args(argv)
    result = measure(args.model, args.data, args.splits)
    rows = [[name, f"{r['score_threshold']:.3f}", f"{r['valid_dice']:.3f}",
             f"{r['test_dice']:.3f}", r["test_masses_kept"], r["test_false_kept"],
             r["test_false_kept_on_images_with_mass"]]
            for name, r in result["caps"].items()]
    C.print_table(["cap", "score thr", "valid Dice", "test Dice", "masses kept", "false kept",
                   "false on mass images"], rows)
    print(f"the model's scorer holds cap {result['chosen']}; every object kept: test Dice "
          f"{result['test_dice_every_object']:.3f} ({result['test_objects_on_a_mass']} of "
          f"{result['test_objects']} objects on a mass, {result['test_images_with_mass']} "
          "test images with a mass)")
    path = C.write_results(args.name, result)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
