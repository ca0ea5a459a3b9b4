"""Which validation number tracks the test Dice? The demo mass network's weights after every epoch.

The massseg demo keeps one epoch's weights, chosen by a validation number (``monitor``). This
script trains the demo's mass network once (``params.yaml``'s ``massseg.train``, refiner off:
the whole-image network alone), keeps the weights after every epoch (as validation saw them:
the BatchNorm statistics re-estimated on whole images), and scores each epoch's weights on the
fold's validation images and on the test images at the network's input size (256x256; masks
resized by nearest neighbour; threshold 0.5; objects under ``--min-pixels`` removed):

* ``dice_one``: the mean per-image Dice over every image, 1 for an image without a mass
  predicted empty (the ``val_dice`` monitor);
* ``dice_mass``: the mean over the images with a mass (``val_dice_mass``; what ``massseg
  evaluate`` reports as ``dice_mean``);
* ``pooled``: one Dice over all pixels of all images;
* false detections (predicted objects touching no mass) and masses found.

For each validation number: the epoch it would keep, that epoch's test Dice (over the images
with a mass), and the Spearman rank correlation between the validation number and the test
Dice over the epochs. Writes ``bench/results/massseg_epochs.json``. About 10 minutes on 2
cores (one training of the demo network plus 18 x 100 predictions).

Usage::

    .venv/bin/python bench/massseg_epochs.py            # params.yaml, data/breast.zarr, fold 1
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from _common import write_results
from scipy import ndimage as ndi
from scipy.stats import spearmanr

ROOT = Path(__file__).resolve().parents[1]
NUMBERS = ("dice_one", "dice_mass", "pooled")


def score(probs: np.ndarray, truths: np.ndarray, min_pixels: int) -> dict[str, Any]:
    """Per-image and pooled Dice, false detections and masses found of thresholded maps."""
    dice_one, dice_mass = [], []
    inter = total = false = found = n_mass = 0
    for prob, truth in zip(probs, truths, strict=True):
        pred = prob >= 0.5
        lab, n = ndi.label(pred)
        if n:
            sizes = ndi.sum(pred, lab, range(1, n + 1))
            pred = np.isin(lab, 1 + np.flatnonzero(np.asarray(sizes) >= min_pixels))
            lab, n = ndi.label(pred)
        both, size = int((pred & truth).sum()), int(pred.sum() + truth.sum())
        inter, total = inter + both, total + size
        dice = 2.0 * both / size if size else 1.0
        dice_one.append(dice)
        if truth.any():
            dice_mass.append(dice)
        tlab, tn = ndi.label(truth)
        n_mass += tn
        found += sum(bool(pred[tlab == k].any()) for k in range(1, tn + 1))
        false += sum(not truth[lab == k].any() for k in range(1, n + 1))
    return {"dice_one": float(np.mean(dice_one)), "dice_mass": float(np.mean(dice_mass)),
            "pooled": 2.0 * inter / total if total else 1.0, "false_detections": int(false),
            "found": int(found), "n_masses": int(n_mass)}


def select(epochs: list[dict[str, Any]]) -> dict[str, Any]:
    """For each validation number (recomputed here, and the harness's logged ``val_dice`` /
    ``val_dice_mass``): the epoch it keeps, that epoch's test Dice and false detections, and
    its Spearman correlation with the test Dice over the epochs; plus the last epoch."""
    test_dice = [r["test"]["dice_mass"] for r in epochs]
    numbers = {name: [r["valid"][name] for r in epochs] for name in NUMBERS}
    for logged in ("val_dice", "val_dice_mass"):
        if all(logged in r["logged"] for r in epochs):
            numbers[f"logged_{logged}"] = [r["logged"][logged] for r in epochs]
    selection: dict[str, Any] = {}
    for name, values in numbers.items():
        best = int(np.argmax(values))
        selection[name] = {
            "kept_epoch": best + 1,
            "test_dice_mass": test_dice[best],
            "test_false_detections": epochs[best]["test"]["false_detections"],
            "spearman_with_test_dice_mass": float(spearmanr(values, test_dice)[0]),
        }
        print(f"monitor {name:<22} keeps epoch {best + 1:2d}: test Dice {test_dice[best]:.3f}"
              f" ({epochs[best]['test']['false_detections']} false detections), Spearman with "
              f"the test Dice over epochs {selection[name]['spearman_with_test_dice_mass']:.2f}")
    selection["last_epoch"] = {"kept_epoch": len(epochs), "test_dice_mass": test_dice[-1],
                               "test_false_detections": epochs[-1]["test"]["false_detections"]}
    return selection


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--params", type=Path, default=ROOT / "params.yaml")
    parser.add_argument("--data", type=Path, default=ROOT / "data" / "breast.zarr")
    parser.add_argument("--splits", type=Path, default=ROOT / "data" / "splits.json")
    parser.add_argument("--fold", type=int, default=1)
    parser.add_argument("--min-pixels", type=int, default=10,
                        help="objects smaller than this (network pixels) are removed")
    parser.add_argument("--rescore", action="store_true",
                        help="recompute the selection of the existing results file (no training)")
    args = parser.parse_args(argv)
    if args.rescore:
        path = ROOT / "bench" / "results" / "massseg_epochs.json"
        doc = json.loads(path.read_text(encoding="utf-8"))
        doc["selection"] = select(doc["epochs"])
        path.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
        print(f"rewrote {path}")
        return 0

    import keras

    from mammo_common.keras.training.data import prepare_image, prepare_mask
    from mammo_common.params import load_section
    from mammo_common.stage import load_fold, split_cases
    from mammo_common.store import open_store
    from massseg.config import TrainConfig, TrainSettings
    from massseg.train import train

    snapshots: list[tuple[list[np.ndarray], dict[str, float]]] = []

    class Snapshot(keras.callbacks.Callback):
        def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
            snapshots.append(([w.copy() for w in self.model.get_weights()],
                              {k: float(v) for k, v in (logs or {}).items()}))

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "fold"
        config = load_section(
            TrainConfig, args.params, "massseg.train", {"arch": "unet5l", "overwrite": True},
            paths={"data": args.data, "splits": args.splits, "fold": args.fold, "out": out},
            settings_model=TrainSettings)
        config = config.model_copy(update={"refine": None})
        train(config, callbacks=[Snapshot()])
        model = keras.saving.load_model(out / "model.keras", compile=False)
    size = tuple(config.input_size)
    store = open_store(args.data, "breast")
    _, _, valid_ids = load_fold(args.splits, args.fold)
    test_ids = split_cases(args.splits, "test")

    def load(ids: list[str]) -> tuple[np.ndarray, np.ndarray]:
        where = {c: i for i, c in enumerate(store.case_ids)}
        images, masks = store.array("images"), store.array("mass_masks")
        rows = [where[c] for c in ids]
        x = np.stack([prepare_image(np.asarray(images[i]), size, 1) for i in rows])
        y = np.stack([prepare_mask(np.asarray(masks[i]), size)[..., 0] > 0.5 for i in rows])
        return x, y

    xv, yv = load(list(valid_ids))
    xt, yt = load(list(test_ids))
    epochs = []
    for e, (weights, logs) in enumerate(snapshots, 1):
        model.set_weights(weights)
        v = score(model.predict(xv, batch_size=8, verbose=0)[..., 0], yv, args.min_pixels)
        t = score(model.predict(xt, batch_size=8, verbose=0)[..., 0], yt, args.min_pixels)
        epochs.append({"epoch": e, "logged": logs, "valid": v, "test": t})
        print(f"{e:3d}  valid one {v['dice_one']:.3f} mass {v['dice_mass']:.3f} pooled "
              f"{v['pooled']:.3f} | test mass {t['dice_mass']:.3f} found {t['found']}/"
              f"{t['n_masses']} false {t['false_detections']}", flush=True)
    selection = select(epochs)
    path = write_results("massseg_epochs", {
        "command": " ".join(["python bench/massseg_epochs.py", *(argv or sys.argv[1:])]),
        "settings": json.loads(config.model_dump_json(exclude={"data", "splits", "out"})),
        "n_valid_images": len(valid_ids), "n_test_images": len(test_ids),
        "selection": selection, "epochs": epochs,
    })
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
