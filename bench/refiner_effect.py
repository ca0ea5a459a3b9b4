"""The effect of massseg's second look: the same model's test metrics with and without it.

For one trained massseg model folder (one whose card records a refiner, ``training.refine``)
this runs ``massseg predict`` on the same breast store as trained (refiner and, when the card
records one, false-positive reduction, ``training.fp_reduction``), without the false-positive
reduction (``--no-fp-reduction``) and without either (``--no-refine --no-fp-reduction``: the
whole-image network alone), into a temporary folder, through the importable functions
the CLI calls (:func:`massseg.predict.predict`, :func:`massseg.evaluate.evaluate`, with the
configs built by ``massseg.config`` from ``--params``, as the CLI builds them). Both stores are
scored on the test part of the splits, and the masses are counted per object:

* ``dice_mean``: ``massseg evaluate``'s mean Dice over the test images *with* a mass;
* ``masses_found``: ground-truth masses (8-connected components of ``mass_masks``) touched by
  at least one predicted pixel, of ``n_masses``;
* ``false_detections``: predicted objects (components of ``mass_pred``, already cleaned of
  objects under ``min_object_pixels``) that touch no ground-truth mass, on every test image;
* ``empty_images_clean``: share of the test images without a mass predicted empty.

``--tta`` adds ``as_trained_tta``: the as-trained run with flip test-time augmentation
(``massseg predict --tta``: the image and its flips through the network, maps averaged).

Usage::

    .venv/bin/python bench/refiner_effect.py        # the committed demo models (1-2 min)
    .venv/bin/python bench/refiner_effect.py --tta  # and with test-time augmentation

Prints a table and writes ``bench/results/refiner_effect.json`` (``runs.as_trained``,
``runs.no_fp_reduction`` when the model has a scorer, ``runs.no_refine``; ``delta`` is
as-trained minus each other run).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import _common as C


def _sha256(path: Path) -> str:
    return "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()


def model_info(folder: Path) -> dict[str, Any]:
    """Model id and card digest of ``folder`` and of its refiner (``None`` when it has none)."""
    from massseg.refine import refiner_folder

    card = folder / "model_card.json"
    info: dict[str, Any] = {
        "folder": str(folder),
        "model_id": json.loads(card.read_text(encoding="utf-8"))["model_id"],
        "card_digest": _sha256(card),
        "refiner": None,
        "fp_reduction": None,
    }
    from massseg.fp_reduction import FP_REDUCTION_FILE

    if (folder / FP_REDUCTION_FILE).is_file():
        info["fp_reduction"] = {"digest": _sha256(folder / FP_REDUCTION_FILE)}
    rcard = refiner_folder(folder) / "model_card.json"
    if rcard.is_file():
        info["refiner"] = {
            "model_id": json.loads(rcard.read_text(encoding="utf-8"))["model_id"],
            "card_digest": _sha256(rcard),
        }
    return info


def object_counts(masses: Path, case_ids: list[str]) -> dict[str, int]:
    """Ground-truth masses found and false detections of a masses store on ``case_ids``."""
    import numpy as np

    from mammo_common.postprocess import components
    from mammo_common.store import open_store

    store = open_store(masses, "masses")
    position = {c: k for k, c in enumerate(store.case_ids)}
    pred_arr, truth_arr = store.array("mass_pred"), store.array("mass_masks")
    n_masses = found = detections = false = 0
    for case_id in case_ids:
        i = position[case_id]
        pred = np.asarray(pred_arr[i]) > 0
        truth = np.asarray(truth_arr[i]) > 0
        truths = components(truth, min_pixels=1)
        preds = components(pred, min_pixels=1)
        n_masses += len(truths)
        found += sum(bool(pred[t.slices][t.mask].any()) for t in truths)
        detections += len(preds)
        false += sum(not truth[p.slices][p.mask].any() for p in preds)
    return {
        "n_masses": n_masses,
        "masses_found": found,
        "detections": detections,
        "false_detections": false,
    }


def run(
    model: Path, data: Path, splits: Path, params: Path | None, work: Path, name: str,
    *, refine: bool, fp_reduction: bool, tta: bool = False,
) -> dict[str, Any]:
    """Predict with or without the refiner / scorer, evaluate on the test part, count objects."""
    from mammo_common.params import load_section
    from massseg.config import EvaluateConfig, EvaluateSettings, PredictConfig, PredictSettings
    from massseg.evaluate import evaluate
    from massseg.predict import predict

    out = work / f"masses_{name}.zarr"
    C.log(f"massseg predict ({name})")
    start = time.perf_counter()
    config = load_section(
        PredictConfig, params, "massseg.predict",
        {"refine": refine, "fp_reduction": fp_reduction, "tta": tta, "overwrite": True},
        paths={"models": [model], "data": data, "out": out}, settings_model=PredictSettings,
    )
    pred = predict(config)
    predict_s = time.perf_counter() - start
    C.log(f"massseg evaluate ({name})")
    ev = evaluate(load_section(
        EvaluateConfig, params, "massseg.evaluate", {"part": "test", "overlays": 0},
        paths={"data": out, "splits": splits, "out": work / f"metrics_{name}.json"},
        settings_model=EvaluateSettings,
    ))
    m = ev.metrics
    test_ids = json.loads(splits.read_text(encoding="utf-8"))["test"]
    return {
        "refine": refine,
        "fp_reduction": fp_reduction,
        "tta": tta,
        "model_ids": pred.model_ids,
        "threshold": pred.threshold,
        "min_object_pixels": pred.min_object_pixels,
        "predict_s": round(predict_s, 1),
        "n_images": m["n_images"],
        "n_images_with_mass": m["n_images_with_mass"],
        "n_images_without_mass": m["n_images_without_mass"],
        "dice_mean": m["dice_mean"],
        "jaccard_mean": m["jaccard_mean"],
        "dice_pooled": m["dice_pooled"],
        "empty_images_clean": m["empty_images_clean"],
        "false_positive_pixels_mean": m["false_positive_pixels_mean"],
        **object_counts(out, test_ids),
    }


def main(argv: list[str] | None = None) -> int:
    """Command line: both runs, the table and the JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=Path("models/massseg/unet5l/fold_1"))
    parser.add_argument("--data", type=Path, default=Path("data/breast.zarr"))
    parser.add_argument("--splits", type=Path, default=Path("data/splits.json"))
    parser.add_argument(
        "--params", type=Path, default=Path("params.yaml"),
        help="massseg.predict / massseg.evaluate settings, as dvc.yaml passes them "
        "(none when the file is missing)",
    )
    parser.add_argument(
        "--tta", action="store_true",
        help="also the as-trained run with flip test-time augmentation (run as_trained_tta)",
    )
    args = parser.parse_args(argv)
    params = args.params if args.params and args.params.is_file() else None
    info = model_info(args.model)
    if info["refiner"] is None:
        parser.error(f"{args.model} has no refiner ({args.model}/refiner/model_card.json)")
    variants = {"as_trained": (True, True, False)}
    if args.tta:
        variants["as_trained_tta"] = (True, True, True)
    if info["fp_reduction"] is not None:
        variants["no_fp_reduction"] = (True, False, False)
    variants["no_refine"] = (False, False, False)
    with tempfile.TemporaryDirectory(prefix="refiner_effect_") as tmp:
        runs = {
            name: run(args.model, args.data, args.splits, params, Path(tmp), name,
                      refine=refine, fp_reduction=fp, tta=tta)
            for name, (refine, fp, tta) in variants.items()
        }
    keys = ("dice_mean", "masses_found", "n_masses", "detections", "false_detections",
            "empty_images_clean", "dice_pooled", "predict_s")
    C.print_table(
        ["run", *keys],
        [[name, *(r[k] for k in keys)] for name, r in runs.items()],
        title=f"second look, {info['model_id']}, test part of {args.splits}",
    )
    path = C.write_results("refiner_effect", {
        "model": info,
        "data": str(args.data),
        "splits": str(args.splits),
        "splits_digest": _sha256(args.splits),
        "params": str(params) if params else None,
        "part": "test",
        "runs": runs,
        "delta": {
            f"as_trained-{other}": {
                k: runs["as_trained"][k] - runs[other][k]
                for k in ("dice_mean", "masses_found", "false_detections", "empty_images_clean")
                if runs["as_trained"][k] is not None and runs[other][k] is not None
            }
            for other in runs if other != "as_trained"
        },
    })
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
