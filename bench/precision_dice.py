"""Quality of the trained cascade in every inference variant, on the synthetic test set.

Issue 7 asks for bfloat16 inference "with Dice unchanged to two decimals on the synthetic
test set". This script takes the models and stores that the default pipeline trained and
wrote (``python3 dev.py pipeline``: ``models/``, ``data/mammograms.zarr``, ``data/splits.json``,
``params.yaml``) and scores the test cases with each variant of the stages' ``predict``:

* ``unfolded``: float32, the networks exactly as trained (``fold_batchnorm=False``);
* ``float32``: the default: BatchNorms folded into the convolutions;
* ``bfloat16``: folded, bfloat16 compute (``--precision bfloat16``).

Per variant: ``breastseg evaluate`` (breast Dice/Jaccard on the test part), ``breastseg
predict`` -> ``massseg predict`` -> ``massseg evaluate`` (mass Dice, Jaccard, pixel AUC) ->
``massclass predict`` -> ``massclass evaluate`` (case accuracy and ROC AUC), each stage fed by
the same variant's previous stage, exactly as the pipeline chains them; plus the wall time of
each predict. Nothing under the repository is written: outputs go to ``$MAMMO_BENCH_WORK``.

Usage::

    python3 dev.py pipeline                  # once: trains the demo models
    python bench/precision_dice.py           # ~1-2 min on 2 cores
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import _common as C

VARIANTS: dict[str, dict[str, Any]] = {
    "unfolded": {"precision": "float32", "fold_batchnorm": False},
    "float32": {"precision": "float32", "fold_batchnorm": True},
    "bfloat16": {"precision": "bfloat16", "fold_batchnorm": True},
}
METRICS = [
    ("breast", "dice_mean"),
    ("breast", "jaccard_mean"),
    ("mass", "dice_mean"),
    ("mass", "jaccard_mean"),
    ("mass", "auc_mean"),
    ("class", "accuracy"),
    ("class", "roc_auc"),
]


def _pipeline_inputs(root: Path) -> dict[str, Path]:
    import yaml

    params = yaml.safe_load((root / "params.yaml").read_text())["pipeline"]
    paths = {
        "params": root / "params.yaml",
        "mammograms": root / "data" / "mammograms.zarr",
        "splits": root / "data" / "splits.json",
        "breast_model": root / "models" / "breastseg" / "unet5l" / "fold_1",
        "mass_model": root / "models" / "massseg" / params["massseg_predict_arch"] / "fold_1",
        "class_model": root / "models" / "massclass" / params["massclass_predict_arch"]
        / "fold_1",
    }
    missing = [str(p) for p in paths.values() if not p.exists()]
    if missing:
        raise SystemExit(f"missing {missing}: run `python3 dev.py pipeline` first")
    return paths


def run_variant(name: str, paths: dict[str, Path], work: Path) -> dict[str, Any]:
    """Runs the three stages' predict/evaluate with one variant's settings."""
    from breastseg.config import EvaluateConfig as BreastEval
    from breastseg.config import PredictConfig as BreastPredict
    from breastseg.evaluate import evaluate as breast_evaluate
    from breastseg.predict import predict as breast_predict
    from mammo_common.params import load_section, read_params_section
    from massclass.config import EvaluateConfig as ClassEvaluate
    from massclass.config import PredictConfig as ClassPredict
    from massclass.config import PredictSettings as ClassPredictSettings
    from massclass.evaluate import evaluate as class_evaluate
    from massclass.predict import predict as class_predict
    from massseg.config import EvaluateConfig as MassEvaluate
    from massseg.config import EvaluateSettings as MassEvaluateSettings
    from massseg.config import PredictConfig as MassPredict
    from massseg.config import PredictSettings as MassPredictSettings
    from massseg.evaluate import evaluate as mass_evaluate
    from massseg.predict import predict as mass_predict

    settings = VARIANTS[name]
    out = work / f"precision_{name}"
    out.mkdir(parents=True, exist_ok=True)
    times: dict[str, float] = {}
    b_pred = read_params_section(paths["params"], "breastseg.predict")
    b_eval = read_params_section(paths["params"], "breastseg.evaluate")

    t0 = time.perf_counter()
    breast = breast_evaluate(BreastEval(**{
        **b_eval, **settings, "data": paths["mammograms"], "model": paths["breast_model"],
        "splits": paths["splits"], "part": "test", "out": out / "breastseg.json", "plot": None,
    }))
    times["breastseg_evaluate_s"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    breast_predict(BreastPredict(**{
        **b_pred, **settings, "data": paths["mammograms"], "model": paths["breast_model"],
        "out": out / "breast.zarr", "overwrite": True,
    }))
    times["breastseg_predict_s"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    mass_predict(load_section(
        MassPredict, paths["params"], "massseg.predict", {"overwrite": True, **settings},
        paths={"models": [paths["mass_model"]], "data": out / "breast.zarr",
               "out": out / "masses.zarr"},
        settings_model=MassPredictSettings,
    ))
    times["massseg_predict_s"] = time.perf_counter() - t0
    mass = mass_evaluate(load_section(
        MassEvaluate, paths["params"], "massseg.evaluate", {"part": "test", "overlays": 0},
        paths={"data": out / "masses.zarr", "splits": paths["splits"],
               "out": out / "massseg.json"},
        settings_model=MassEvaluateSettings,
    ))

    t0 = time.perf_counter()
    class_predict(load_section(
        ClassPredict, paths["params"], "massclass.predict", settings,
        paths={"models": [paths["class_model"]], "data": out / "masses.zarr",
               "out": out / "diagnosis.zarr", "overwrite": True},
        settings_model=ClassPredictSettings, missing_ok=True,
    ))
    times["massclass_predict_s"] = time.perf_counter() - t0
    cls = class_evaluate(ClassEvaluate(data=out / "diagnosis.zarr", out=out / "massclass.json",
                                       splits=paths["splits"], part="test"))
    return {
        "settings": settings,
        "breast": dict(breast.metrics),
        "mass": dict(mass.metrics),
        "class": dict(cls.case_level),
        "times": times,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--root", default=str(Path(__file__).resolve().parents[1]),
                   help="the pipeline's repository (models/, data/, params.yaml)")
    p.add_argument("--variants", default=",".join(VARIANTS))
    args = p.parse_args()
    import os

    os.environ.setdefault("MAMMO_NO_PROGRESS", "1")
    paths = _pipeline_inputs(Path(args.root))
    work = C.WORK_DIR
    results = {}
    for name in args.variants.split(","):
        C.log(f"variant {name}")
        results[name] = run_variant(name, paths, work)
    names = list(results)

    def value(name: str, stage: str, key: str) -> Any:
        v = results[name][stage].get(key)
        return float(v) if isinstance(v, (int, float)) else v

    rows = [[f"{stage} {key}"] + [value(n, stage, key) for n in names] for stage, key in METRICS]
    rows += [[f"{k} (wall s)"] + [results[n]["times"][k] for n in names]
             for k in results[names[0]]["times"]]
    C.print_table(["metric (test set)", *names], rows,
                  title="The trained demo cascade on the synthetic test set, per variant")
    same = {}
    for n in names:
        if n == names[0]:
            continue
        same[n] = {}
        for stage, key in METRICS:
            a, b = value(n, stage, key), value(names[0], stage, key)
            if isinstance(a, float) and isinstance(b, float):
                same[n][f"{stage}.{key}"] = round(a, 2) == round(b, 2)
        print(f"{n} vs {names[0]}: every metric equal to two decimals: {all(same[n].values())}")
    path = C.write_results("precision_dice", {
        "root": str(Path(args.root).resolve()), "models": {k: str(v) for k, v in paths.items()},
        "results": results, "equal_to_two_decimals_vs_first": same,
    })
    C.log(f"wrote {path}")


if __name__ == "__main__":
    main()
