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
import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def _maps(model: Any, store: Any, indices: list[int], shape: tuple) -> tuple[list, list, list]:
    """Store images, whole-image probability maps and truth masks of ``indices``."""
    from mammo_common.keras.deployment.inference import predict_probabilities

    images, masks = store.array("images"), store.array("mass_masks")
    imgs, coarse, truths = [], [], []
    for start in range(0, len(indices), 16):
        chunk = indices[start : start + 16]
        x = np.stack([np.asarray(images[i]) for i in chunk])
        maps = predict_probabilities([model], x, input_size=shape[:2], channels=shape[2],
                                     batch_size=16)
        imgs += list(x)
        coarse += list(maps)
        truths += [np.asarray(masks[i]) > 0 for i in chunk]
    return imgs, coarse, truths


def _objects(part: tuple[list, list, list], refiners: Any, threshold: float,
             min_pixels: int) -> Any:
    from massseg.fp_reduction import collect_objects

    imgs, coarse, truths = part
    refined = [refiners(x, m, threshold=threshold, min_object_pixels=min_pixels)
               if refiners else m for x, m in zip(imgs, coarse, strict=True)]
    return collect_objects(imgs, coarse, refined, truths, threshold=threshold,
                           min_object_pixels=min_pixels)


def measure(model_dir: Path, data: Path, splits: Path, thresholds: list[float]) -> dict[str, Any]:
    """Test figures of every object threshold for the model in ``model_dir``."""
    import importlib

    from mammo_common.keras.deployment.model_folder import load_model_folder
    from mammo_common.keras.deployment.optimize import inference_model
    from mammo_common.schema.model_card import read_model_card
    from mammo_common.stage import split_cases
    from mammo_common.store import open_store
    from massseg.fp_reduction import _keep, fit_fp_reduction
    from massseg.refine import load_refiners

    card = read_model_card(model_dir)
    importlib.import_module(f"massseg.models.{card.architecture}")
    settings = card.training.get("fp_reduction")
    if not settings:
        raise SystemExit(f"{model_dir}: trained without false-positive reduction")
    model = inference_model(load_model_folder(model_dir, "massseg")[0])[0]
    refiners = load_refiners([model_dir], [card])
    store = open_store(data, "breast")
    ids = store.case_ids
    shape = tuple(int(d) for d in card.input_shape)
    min_pixels = int(settings["min_object_pixels"])

    def part(which: str) -> tuple[list, list, list]:
        cases = set(split_cases(splits, which, None if which == "test" else card.data.fold))
        C.log(f"network on the {which} images")
        return _maps(model, store, [i for i, c in enumerate(ids) if c in cases], shape)

    parts = {name: part(name) for name in ("train", "valid", "test")}
    rows: dict[str, Any] = {}
    for t in thresholds:
        C.log(f"object threshold {t}")
        objs = {name: _objects(p, refiners, t, min_pixels) for name, p in parts.items()}
        scorer = fit_fp_reduction(objs["train"], objs["valid"], c=float(settings.get("c", 1.0)),
                                  tolerance=float(settings.get("tolerance", 0.005)),
                                  max_objects=settings.get("max_objects", "auto"))
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
        "model_id": card.model_id,
        "data": str(data),
        "test_images": len(parts["test"][0]),
        "test_images_with_mass": int(sum(t.any() for t in parts["test"][2])),
        "thresholds": rows,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", type=Path, default=ROOT / "models/massseg/unet5l/fold_1")
    parser.add_argument("--data", type=Path, default=ROOT / "data" / "breast.zarr")
    parser.add_argument("--splits", type=Path, default=ROOT / "data" / "splits.json")
    parser.add_argument("--thresholds", type=float, nargs="+", default=[0.5, 0.4, 0.3, 0.2])
    parser.add_argument("--name", default="object_threshold",
                        help="results file bench/results/<name>.json")
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
