"""The false-positive scorer: logistic regression (first version) against boosted trees.

massseg's second step (:mod:`massseg.fp_reduction`) keeps or drops each object the network
(and refiner) marks. This script compares its scorers on one trained model folder, the network
fixed: it runs the network once on the fold's training and validation images and on the test
images, measures every object of the refined maps (as training does, with the store's breast
masks), and for each scorer fits it on the training images' objects and chooses its operating
point on the validation images' (:func:`massseg.fp_reduction.fit_fp_reduction`, the card's
``c``, ``tolerance`` and ``max_objects``), then applies it to the test images:

* ``every_object``: no scorer (every object kept);
* ``logistic``: the first version (seven measurements);
* ``boosted_trees``: gradient-boosted trees on every measurement (the default since 2026-12-07);
* ``ceiling``: exactly the objects on a true mass kept (what a perfect scorer could reach with
  this network: the masses the network never marks stay missed).

Per scorer: validation Dice and ROC AUC (objects), test mean Dice over the images with a mass
(outlines as drawn, each image's kept objects), masses kept, false detections kept, images with
a mass left without a detection, images without a mass left clean. The network here is the
folded inference model ``massseg predict`` uses (its maps can differ from training's in the
last bits); the demo's own figures are in ``metrics/*.json``.

Usage::

    .venv/bin/python bench/fp_scorer.py                        # the demo's model (key: demo)
    .venv/bin/python bench/fp_scorer.py --key seed1 \\
        --model /tmp/keep/train1/massseg/unet5l/fold_1 \\
        --data /tmp/keep/train1/breast.zarr --splits /tmp/keep/train1/splits.json

Each call adds (or replaces) its ``--key`` in ``bench/results/fp_scorer.json`` (``--name``) and
prints the table of every key stored, with the mean change per scorer over them.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import _common as C
import _massseg as M
import numpy as np

SCORERS = ("every_object", "logistic", "boosted_trees", "ceiling")


def _figures(objs: Any, keep: np.ndarray) -> dict[str, Any]:
    with_mass = objs.truth_area > 0
    kept = np.bincount(objs.image[keep], minlength=len(with_mass)) > 0
    return {
        "dice": objs.mean_dice(keep),
        "masses_kept": int((keep & objs.is_mass).sum()),
        "false_kept": int((keep & ~objs.is_mass).sum()),
        "images_with_mass_without_detection": int((with_mass & ~kept).sum()),
        "images_without_mass_clean": int((~with_mass & ~kept).sum()),
    }


def measure(model_dir: Path, data: Path, splits: Path) -> dict[str, Any]:
    """Validation and test figures of every scorer for the model in ``model_dir``."""
    from sklearn.metrics import roc_auc_score

    from mammo_common.store import open_store
    from massseg.fp_reduction import _keep, collect_objects, fit_fp_reduction

    mm = M.load_mass_model(model_dir)
    settings = mm.fp_settings
    store = open_store(data, "breast")
    objs = {}
    for part in ("train", "valid", "test"):
        C.log(f"network on the {part} images")
        idx = M.case_indices(store, splits, part, mm.card.data.fold)
        imgs, coarse, truths = M.network_maps(mm, store, idx)
        refined = [mm.refiners(x, m, threshold=mm.card.threshold, min_object_pixels=mm.min_pixels)
                   if mm.refiners else m for x, m in zip(imgs, coarse, strict=True)]
        objs[part] = collect_objects(imgs, coarse, refined, truths, threshold=mm.card.threshold,
                                     min_object_pixels=mm.min_pixels,
                                     breasts=M.breast_masks(store, idx))
    train, valid, test = objs["train"], objs["valid"], objs["test"]
    rows: dict[str, Any] = {}
    for name in SCORERS:
        if name in ("every_object", "ceiling"):
            pick = (lambda o: np.ones(len(o.area), bool)) if name == "every_object" else (
                lambda o: o.is_mass)
            rows[name] = {"valid_dice": valid.mean_dice(pick(valid)), **_figures(test, pick(test))}
            continue
        scorer = fit_fp_reduction(train, valid, c=float(settings.get("c", 1.0)),
                                  tolerance=float(settings.get("tolerance", 0.005)),
                                  max_objects=settings.get("max_objects", "auto"), scorer=name,
                                  seed=int(mm.card.training.get("seed", 0)))
        scores = scorer.scores(test.features)
        keep = _keep(scores, test.rank(scores), scorer.threshold, scorer.max_objects)
        rows[name] = {
            "valid_dice": scorer.info.get("valid_dice"),
            "valid_auc": scorer.info.get("valid_auc"),
            "test_auc": float(roc_auc_score(test.is_mass, scores)),
            "max_objects": scorer.max_objects,
            "score_threshold": scorer.threshold,
            **_figures(test, keep),
        }
    with_mass = test.truth_area > 0
    return {
        "model": str(model_dir),
        "model_id": mm.card.model_id,
        "train_seed": mm.card.training.get("seed"),
        "data": str(data),
        "splits": str(splits),
        "objects": {p: {"n": len(o.area), "on_a_mass": int(o.is_mass.sum())}
                    for p, o in objs.items()},
        "test_images": len(with_mass),
        "test_images_with_mass": int(with_mass.sum()),
        "scorers": rows,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    M.add_model_arguments(parser, "fp_scorer")
    parser.add_argument("--key", default="demo", help="name of this model in the results")
    args = parser.parse_args(argv)
    path = C.RESULTS_DIR / f"{args.name}.json"
    previous = json.loads(path.read_text())["runs"] if path.is_file() else {}
    runs = {**previous, args.key: measure(args.model, args.data, args.splits)}
    table = []
    for key, run in runs.items():
        for name, r in run["scorers"].items():
            table.append([key, name, r.get("valid_dice"), r.get("test_auc"), r["dice"],
                          r["masses_kept"], r["false_kept"],
                          r["images_with_mass_without_detection"],
                          r["images_without_mass_clean"]])
    C.print_table(["model", "scorer", "valid Dice", "test AUC", "test Dice", "masses kept",
                   "false kept", "mass images empty", "clean normals"], table,
                  title="false-positive scorers, test images (same network per model)")
    change = {
        field: [run["scorers"]["boosted_trees"][field] - run["scorers"]["logistic"][field]
                for run in runs.values()]
        for field in ("dice", "masses_kept", "false_kept", "images_without_mass_clean")
    }
    summary = {f: {"mean": float(np.mean(v)), "min": float(np.min(v)), "max": float(np.max(v)),
                   "n": len(v)} for f, v in change.items()}
    print("boosted_trees - logistic over the models:",
          ", ".join(f"{f} {s['mean']:+.3f} [{s['min']:+.3f}, {s['max']:+.3f}]"
                    for f, s in summary.items()))
    out = C.write_results(args.name, {"runs": runs, "boosted_minus_logistic": summary})
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
