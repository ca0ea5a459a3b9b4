"""One change to the mass-segmentation or classification recipe, measured as the demo measures it.

A change to ``massseg.train`` (learning-rate schedule, epochs, input size...) or to
``massclass.train`` (descriptors, ROI...) is judged by what the cascade then reports, and
against the same seed's run without it: one training seed's mass Dice swings by 0.07 between
seeds (``demo_spread_300_boosted.json``), so only a paired comparison says anything. This
script takes a finished demo pipeline (``--base``: its ``data/breast.zarr``,
``data/masses.zarr``, ``data/splits.json``, ``models/massclass/descriptors/fold_1`` and
``metrics/*.json``, the baseline), writes the checkout's ``params.yaml`` with ``--set`` applied
and the changed stage's ``train.seed`` = ``--seed`` into a work folder, and there runs what
``dvc repro`` would run after the change. For ``massseg.train``:

1. ``massseg train`` (network, refiner, false-positive scorer) on the base's breast store;
2. ``massseg predict`` and ``massseg evaluate`` (``metrics/massseg.json``);
3. ``massclass predict`` with the base's classifier and ``massclass evaluate``
   (``metrics/massclass.json``; the classifier trains on true outlines, so it does not depend on
   the mass network and is not retrained).

For ``massclass.train`` (a few minutes): ``massclass train`` on the base's masses store,
``massclass predict`` on it and ``massclass evaluate``; the mass metrics are the base's.
For ``massseg.predict`` alone (test-time augmentation, threshold...): steps 2 and 3 with the
base's trained mass network (``models/massseg/unet5l/fold_1``).

Reported per run (``runs.seed<N>``): the variant's headline metrics beside the base's and their
difference, the kept epoch, wall and CPU time of each command. A command whose output exists in
the work folder is not run again (an interrupted run continues; ``--force`` starts afresh);
``not_run_by_this_call`` lists those, whose times are then not in the record.

Usage::

    # nnU-Net's poly decay from 3e-3 instead of the plateau rule at 1e-3, on this checkout's demo
    .venv/bin/python bench/massseg_variant.py --name massseg_lr_poly \\
        --set massseg.train.lr_schedule=poly --set massseg.train.learning_rate=0.003 --seed 0
    # the same change on a kept seed-1 demo run (bench/demo_spread.py --keep)
    .venv/bin/python bench/massseg_variant.py --name massseg_lr_poly --base /tmp/keep/train1 \\
        --set massseg.train.lr_schedule=poly --set massseg.train.learning_rate=0.003 --seed 1
    # a classifier change: the margin-profile descriptors
    .venv/bin/python bench/massseg_variant.py --name massclass_profile \\
        --set massclass.train.arch_options='{profile: true}' --seed 0

About 30 minutes per ``massseg`` run for the demo settings on 2 cores (the mass network's 17
epochs), a few minutes per ``massclass`` run.
Writes ``bench/results/<name>.json`` (runs of other seeds or bases in it are kept).
"""

from __future__ import annotations

import argparse
import csv
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import _demo_runner as R
import yaml

#: Headline metrics compared (names of ``_demo_runner.METRICS``).
COMPARED = ("mass_dice", "mass_jaccard", "mass_pixel_auc", "mass_empty_images_clean",
            "case_roc_auc", "case_roc_auc_ci_low", "case_roc_auc_ci_high", "case_mcc",
            "mass_roc_auc")


#: The stages whose ``train`` section a variant may change.
STAGES = ("massseg", "massclass")


def parse_set(items: Sequence[str]) -> tuple[str, dict[str, Any]]:
    """The changed stage and the ``KEY=VALUE`` pairs (dotted keys, YAML values) as a dict;
    exits on a malformed one or on changes to both stages."""
    out: dict[str, Any] = {}
    stages = set()
    for item in items:
        key, sep, raw = item.partition("=")
        stage = key.split(".", 1)[0]
        allowed = (f"{stage}.train.", "massseg.predict.")
        if not sep or stage not in STAGES or not key.startswith(allowed):
            raise SystemExit(f"--set {item!r}: expected massseg.train.KEY=VALUE, "
                             "massseg.predict.KEY=VALUE or massclass.train.KEY=VALUE")
        stages.add(stage)
        out[key] = yaml.safe_load(raw)
    if len(stages) > 1:
        raise SystemExit("--set: change one stage per variant (massseg or massclass)")
    return (stages.pop() if stages else "massseg"), out


def write_params(dest: Path, updates: dict[str, Any], stage: str = "massseg") -> dict[str, Any]:
    """The checkout's params.yaml with ``updates`` (new keys allowed: the CLI validates them);
    returns ``stage``'s train section."""
    doc = R.read_params(R.REPO / "params.yaml")
    for key, value in updates.items():
        node = doc
        *parents, last = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = value
    dest.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    return doc[stage]["train"]


def classifier_training(model: Path) -> dict[str, Any]:
    """The classifier's kept epoch, validation metrics and operating point (its model card)."""
    card = yaml.safe_load((model / "model_card.json").read_text(encoding="utf-8"))
    metrics = card.get("metrics", {})
    return {k: v for k, v in metrics.items() if not isinstance(v, (dict, list))}


def kept_epoch(model: Path) -> dict[str, Any]:
    """The epoch the training kept (best ``val_dice_mass``) and the last epoch's loss."""
    with (model / "history.csv").open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    metrics = yaml.safe_load((model / "model_card.json").read_text(encoding="utf-8"))["metrics"]
    return {"epochs": len(rows), "best_epoch": metrics.get("best_epoch"),
            "best_val_dice_mass": metrics.get("best_val_dice_mass"),
            "fp_reduction_valid_dice": metrics.get("fp_reduction_valid_dice"),
            "last_loss": float(rows[-1]["loss"]), "lr_first": float(rows[0]["lr"]),
            "lr_last": float(rows[-1]["lr"])}


def classify_steps(
    classifier: Path, masses: Path, splits: Path, work: Path, params: Path
) -> list[tuple[str, Path, list]]:
    """``massclass predict`` with ``classifier`` on ``masses`` and ``massclass evaluate``."""
    diagnosis = work / "diagnosis.zarr"
    return [
        ("massclass_predict", diagnosis / "zarr.json",
         ["massclass", "predict", "--params", params, "--model", classifier, "--data", masses,
          "--out", diagnosis, "--overwrite"]),
        ("massclass_evaluate", work / "metrics" / "massclass.json",
         ["massclass", "evaluate", "--params", params, "--data", diagnosis, "--splits", splits,
          "--out", work / "metrics" / "massclass.json"]),
    ]


def massclass_steps(base: Path, work: Path, params: Path) -> list[tuple[str, Path, list]]:
    """The commands of a ``massclass.train`` variant: train, predict, evaluate."""
    masses, splits = base / "data" / "masses.zarr", base / "data" / "splits.json"
    model = work / "model"
    return [
        ("massclass_train", model / "model_card.json",
         ["massclass", "train", "--params", params, "--arch", "descriptors", "--fold", "1",
          "--data", masses, "--splits", splits, "--out", model]),
        *classify_steps(model, masses, splits, work, params),
    ]


def run_variant(
    args: argparse.Namespace, updates: dict[str, Any], stage: str = "massseg"
) -> dict[str, Any]:
    """Runs (or continues) one variant in its work folder; returns its results record."""
    base, work = args.base.resolve(), args.work.resolve()
    if args.force and work.exists():
        shutil.rmtree(work)
    (work / "metrics").mkdir(parents=True, exist_ok=True)
    params = work / "params.yaml"
    seed = {f"{stage}.train.seed": args.seed}
    train = write_params(params, {**updates, **seed}, stage)
    runner = R.Runner(dry_run=args.dry_run, log_dir=work / "logs")
    breast, splits = base / "data" / "breast.zarr", base / "data" / "splits.json"
    classifier = base / "models" / "massclass" / "descriptors" / "fold_1"
    model, masses = work / "model", work / "masses.zarr"
    predict_only = stage == "massseg" and not any(k.startswith("massseg.train.") for k in updates)
    if predict_only:
        model = base / "models" / "massseg" / "unet5l" / "fold_1"
    steps = massclass_steps(base, work, params) if stage == "massclass" else [
        ("massseg_train", model / "model_card.json",
         ["massseg", "train", "--params", params, "--arch", "unet5l", "--fold", "1",
          "--data", breast, "--splits", splits, "--out", model, "--overwrite"]),
        ("massseg_predict", masses / "zarr.json",
         ["massseg", "predict", "--params", params, "--model", model, "--data", breast,
          "--out", masses, "--overwrite"]),
        ("massseg_evaluate", work / "metrics" / "massseg.json",
         ["massseg", "evaluate", "--params", params, "--data", masses, "--splits", splits,
          "--out", work / "metrics" / "massseg.json"]),
        *classify_steps(classifier, masses, splits, work, params),
    ]
    if predict_only:
        steps = steps[1:]
    times: dict[str, Any] = {}
    skipped: list[str] = []
    for name, output, cmd in steps:
        if output.exists():
            runner.note(f"{name}: {output} exists, not run again")
            skipped.append(name)
            continue
        rec = runner.run(R.with_venv_exe([str(c) for c in cmd]), cwd=R.REPO, name=name)
        times[name] = {"wall_s": rec.wall_s, "cpu_s": rec.cpu_s}
    if args.dry_run:
        return {}
    if stage == "massclass":  # the mass stage is the base's
        shutil.copyfile(base / "metrics" / "massseg.json", work / "metrics" / "massseg.json")
    variant, baseline = R.read_metrics(work), R.read_metrics(base)
    delta = {k: (None if variant[k] is None or baseline[k] is None else variant[k] - baseline[k])
             for k in COMPARED}
    return {
        "seed": args.seed, "base": str(base), "work": str(work), "set": updates,
        f"{stage}_train": train,
        "training": classifier_training(model) if stage == "massclass" else kept_epoch(model),
        "times": times,
        "not_run_by_this_call": skipped,
        "variant": {k: variant[k] for k in COMPARED},
        "baseline": {k: baseline[k] for k in COMPARED}, "delta": delta,
    }


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--name", required=True, help="results file bench/results/<name>.json")
    p.add_argument("--set", action="append", default=[], metavar="STAGE.train.KEY=VALUE",
                   help="a change to massseg.train or massclass.train (repeatable; YAML values)")
    p.add_argument("--seed", type=int, default=0,
                   help="the changed stage's train.seed (match the base's)")
    p.add_argument("--base", type=Path, default=R.REPO,
                   help="a finished demo pipeline's root (default: this checkout)")
    p.add_argument("--work", type=Path, default=None,
                   help="work folder (default: $MAMMO_BENCH_WORK/massseg_variant/<name>_seed<N>)")
    p.add_argument("--key", default=None, help="results key of the run (default: seed<N>)")
    p.add_argument("--force", action="store_true", help="delete the work folder first")
    p.add_argument("--dry-run", action="store_true", help="print the commands, run nothing")
    args = p.parse_args(argv)
    stage, updates = parse_set(args.set)
    if not updates:
        raise SystemExit("nothing to compare: give at least one --set STAGE.train.KEY=VALUE")
    args.work = args.work or R.WORK_DIR / "massseg_variant" / f"{args.name}_seed{args.seed}"
    record = run_variant(args, updates, stage)
    if args.dry_run:
        return
    doc = R.load_results(args.name)
    runs = {**doc.get("runs", {}), (args.key or f"seed{args.seed}"): record}
    R.print_table(
        ["run", "metric", "base", "variant", "difference"],
        [[key, m, r["baseline"][m], r["variant"][m], r["delta"][m]]
         for key, r in runs.items() for m in COMPARED],
        title=f"{args.name}: {', '.join(f'{k}={v}' for k, v in updates.items())}",
    )
    path = R.write_results(args.name, {"runs": runs})
    R.log(f"wrote {path}")


if __name__ == "__main__":
    main()
