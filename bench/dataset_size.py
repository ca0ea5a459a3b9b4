"""Does the demo cascade gain from more synthetic patients at the same training compute?

Synthesises a fresh dataset (``--cases`` patients, ``--seed``: a seed the committed models
never saw), ingests, splits and crops it with the committed breast model, then scores on its
test part (a) given models (``--massseg-model``/``--massclass-model``; default the checkout's
demo models; ``bench/results/dataset_size.json`` compares the 100-patient demo models of
34fa417 with models trained on 300 patients) and (b) models trained on fold 1 of the new data
with ``params.yaml`` except ``massseg.train.steps_multiplier`` (``--steps-multiplier``;
choose it so that the steps per epoch match the committed model's: 1 for three times the
patients). Both cascades are scored
by the packages' own ``massseg evaluate`` and ``massclass evaluate`` on the same test images,
and the masses are counted as objects (:func:`refiner_effect.object_counts`: found, false
detections).

Usage::

    .venv/bin/python bench/dataset_size.py               # 300 patients, seed 1 (about 1 h, 2 cores)
    .venv/bin/python bench/dataset_size.py --cases 200 --steps-multiplier 2

Prints a table and writes ``bench/results/dataset_size.json`` (``runs``: for each cascade the
massseg metrics, the object counts and the case- and mass-level classification AUCs with their
bootstrap CIs). One training seed per model: the demo's seed spread (about +-0.03 mass Dice on
34 test images) is the scale of the noise.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import time
from pathlib import Path
from typing import Any

import _common as C
import yaml
from refiner_effect import object_counts


def _cli(*args: Any) -> None:
    cmd = [str(C.VENV_BIN / str(args[0])), *map(str, args[1:])]
    C.log(" ".join(cmd[:3]) + " ...")
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)


def _cascade(
    work: Path, params: Path, tag: str, massseg_model: Path, massclass_model: Path | None
) -> dict[str, Any]:
    """Predict and evaluate one cascade on ``work``'s test part (training massclass if None)."""
    masses, splits = work / f"masses_{tag}.zarr", work / "splits.json"
    _cli("massseg", "predict", "--params", params, "--model", massseg_model,
         "--data", work / "breast.zarr", "--out", masses, "--overwrite")
    _cli("massseg", "evaluate", "--params", params, "--data", masses, "--splits", splits,
         "--out", work / f"massseg_{tag}.json")
    if massclass_model is None:
        massclass_model = work / f"massclass_{tag}" / "descriptors" / "fold_1"
        _cli("massclass", "train", "--params", params, "--arch", "descriptors", "--fold", 1,
             "--data", masses, "--splits", splits, "--out", massclass_model)
    diagnosis = work / f"diagnosis_{tag}.zarr"
    _cli("massclass", "predict", "--params", params, "--model", massclass_model,
         "--data", masses, "--out", diagnosis, "--overwrite")
    _cli("massclass", "evaluate", "--params", params, "--data", diagnosis, "--splits", splits,
         "--out", work / f"massclass_{tag}.json")
    seg = json.loads((work / f"massseg_{tag}.json").read_text(encoding="utf-8"))
    cls = json.loads((work / f"massclass_{tag}.json").read_text(encoding="utf-8"))
    test_ids = json.loads(splits.read_text(encoding="utf-8"))["test"]
    case, mass = cls["case"], cls["mass"]
    return {
        "massseg_model": str(massseg_model),
        "massclass_model": str(massclass_model),
        "massseg": {k: seg[k] for k in (
            "dice_mean", "dice_median", "jaccard_mean", "dice_pooled", "auc_mean",
            "empty_images_clean", "false_positive_pixels_mean", "n_images",
            "n_images_with_mass", "n_images_without_mass")},
        "objects": object_counts(masses, test_ids),
        "massclass": {
            "case_roc_auc": case["roc_auc"], "case_roc_auc_ci": case["roc_auc_ci"],
            "case_n": case["n"], "mass_roc_auc": mass["roc_auc"],
            "mass_roc_auc_ci": mass["roc_auc_ci"], "mass_n": mass["n"],
            "n_no_mass_found": cls["n_no_mass_found"],
            "n_no_mass_found_malignant": cls["n_no_mass_found_malignant"],
        },
    }


def main(argv: list[str] | None = None) -> int:
    """Command line: data, both cascades, the table and the JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=300, help="patients to synthesise")
    parser.add_argument("--seed", type=int, default=1, help="synth seed (not the default data's 0)")
    parser.add_argument("--steps-multiplier", type=int, default=1,
                        help="massseg.train.steps_multiplier of the new model")
    parser.add_argument("--breast-model", type=Path,
                        default=C.REPO / "models/breastseg/unet5l/fold_1")
    parser.add_argument("--massseg-model", type=Path,
                        default=C.REPO / "models/massseg/unet5l/fold_1")
    parser.add_argument("--massclass-model", type=Path,
                        default=C.REPO / "models/massclass/descriptors/fold_1")
    parser.add_argument("--work", type=Path, default=C.WORK_DIR / "dataset_size")
    args = parser.parse_args(argv)
    work = args.work
    work.mkdir(parents=True, exist_ok=True)
    params = yaml.safe_load((C.REPO / "params.yaml").read_text(encoding="utf-8"))
    params["massseg"]["train"]["steps_multiplier"] = args.steps_multiplier
    bench_params = work / "params.yaml"
    bench_params.write_text(yaml.safe_dump(params, sort_keys=False), encoding="utf-8")

    start = time.perf_counter()
    _cli("mammo", "synth", work / "raw", "--cases", args.cases, "--seed", args.seed,
         "--overwrite")
    _cli("mammo", "ingest", work / "raw", work / "mammograms.zarr", "--overwrite")
    _cli("mammo", "split", work / "mammograms.zarr", "-o", work / "splits.json",
         "--params", bench_params)
    _cli("breastseg", "predict", "--params", bench_params, "--model", args.breast_model,
         "--data", work / "mammograms.zarr", "--out", work / "breast.zarr", "--overwrite")
    runs = {"committed": _cascade(work, bench_params, "committed", args.massseg_model,
                                  args.massclass_model)}
    new_model = work / "massseg_new" / "unet5l" / "fold_1"
    _cli("massseg", "train", "--params", bench_params, "--arch", "unet5l", "--fold", 1,
         "--data", work / "breast.zarr", "--splits", work / "splits.json", "--out", new_model,
         "--overwrite")
    runs["new"] = _cascade(work, bench_params, "new", new_model, None)

    rows = [[name, r["massseg"]["dice_mean"], f"{r['objects']['masses_found']}/"
             f"{r['objects']['n_masses']}", r["objects"]["false_detections"],
             r["massclass"]["case_roc_auc"],
             "[{:.2f}, {:.2f}]".format(*r["massclass"]["case_roc_auc_ci"])]
            for name, r in runs.items()]
    C.print_table(["cascade", "mass Dice", "masses found", "false detections", "case AUC",
                   "95% CI"], rows, title=f"{args.cases} patients, seed {args.seed}, test part")
    path = C.write_results("dataset_size", {
        "cases": args.cases, "seed": args.seed, "steps_multiplier": args.steps_multiplier,
        "seconds": round(time.perf_counter() - start),
        "runs": runs,
    })
    C.log(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
