"""The ``massclass`` command: train, predict, evaluate mass classifiers; list backbones.

Every command parses its options, validates them into a config of :mod:`massclass.config` with
:func:`mammo_common.params.load_section` (``params.yaml`` section ``massclass.<command>`` with
the options on top, the paths added), calls one importable function (``massclass.train.train``,
``massclass.predict.predict``, ``massclass.evaluate.evaluate``) and prints a summary; the
options' checks (threshold, per-phase epochs, weights ``none``) live in the config, so the
Python API and the CLI accept the same values. Exit codes: 0 success, 1 unexpected failure, 2
bad input (the message names the file, the field and the fix), 130 interrupted.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from mammo_common.cli_support import (
    ExportFormatOpt,
    ExportOutOpt,
    ExportOverwriteOpt,
    FoldBatchNormOpt,
    PrecisionOpt,
    console,
    handle_errors,
    setup_logging,
    version_option,
)
from mammo_common.errors import ConfigError
from mammo_common.params import load_section
from massclass import __version__

# Quiet TensorFlow's C++ start-up logs unless the user asked for them.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

app = typer.Typer(
    name="massclass",
    help=(
        "Stage 3 of the mammo pipeline: classify each segmented mass as benign or malignant "
        "with a transfer-learning CNN (VGG16, ResNet50V2, InceptionV3 or any keras.applications "
        "backbone).\n\n"
        "Typical run:\n\n"
        "  massclass train --arch vgg16 --data data/masses.zarr --splits data/splits.json "
        "--fold 1 --out models/massclass/vgg16/fold_1\n\n"
        "  massclass predict --model models/massclass/vgg16/fold_1 --data data/masses.zarr "
        "--out data/diagnosis.zarr --threshold youden\n\n"
        "  massclass evaluate --data data/diagnosis.zarr --splits data/splits.json --part test "
        "--out metrics/massclass.json --roc plots/roc.json --roc-plot plots/roc.png"
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

ParamsOpt = Annotated[
    Path | None,
    typer.Option("--params", help="params.yaml; its massclass.<command> section sets defaults."),
]


def _logging(verbose: bool) -> None:
    setup_logging(verbose)


@app.callback()
def main(
    version: Annotated[bool, version_option("mammo-massclass", __version__)] = False,
) -> None:
    """Benign versus malignant classification of segmented masses."""
    from mammo_common.cli_support import setup_logging

    setup_logging()


@app.command()
@handle_errors
def train(
    arch: Annotated[
        str | None, typer.Option(help="Network: a backbone of `massclass models`.")
    ] = None,
    data: Annotated[Path, typer.Option(help="masses store (from massseg predict).")] = ...,
    splits: Annotated[Path, typer.Option(help="splits.json (from mammo split).")] = ...,
    fold: Annotated[int, typer.Option(help="Validation fold, 1-based.", min=1)] = ...,
    out: Annotated[Path, typer.Option(help="Model folder to write.")] = ...,
    params: ParamsOpt = None,
    input_size: Annotated[int | None, typer.Option(help="Model input side (224).")] = None,
    batch_size: Annotated[int | None, typer.Option(help="Batch size (8).")] = None,
    epochs: Annotated[
        str | None,
        typer.Option(help="Epochs per phase, comma-separated (reference 3,10,100)."),
    ] = None,
    weights: Annotated[
        str | None, typer.Option(help="auto, imagenet, none or a backbone weights file.")
    ] = None,
    representation: Annotated[
        str | None, typer.Option(help="ROI input: 'image' or 'image+mask'.")
    ] = None,
    roi_source: Annotated[
        str | None, typer.Option(
            help="ROIs from 'pred' (mass_pred), 'truth' (mass_masks) or 'pred_matched' "
            "(predicted masses that overlap a true one)."
        )
    ] = None,
    margin: Annotated[float | None, typer.Option(help="ROI context margin (0.25).")] = None,
    class_weight: Annotated[str | None, typer.Option(help="'none' or 'balanced'.")] = None,
    threshold: Annotated[
        str | None, typer.Option(help="Card threshold: a number or 'youden'.")
    ] = None,
    seed: Annotated[int | None, typer.Option(help="Seed.")] = None,
    resume: Annotated[
        bool, typer.Option("--resume/--no-resume", help="Continue an interrupted run.")
    ] = True,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Progress and logs.")] = False,
    strategy: Annotated[
        str,
        typer.Option(help="none, mirrored (all local GPUs/CPUs) or multiworker (TF_CONFIG); "
                     "--batch-size stays the global batch. See docs/distributed.md."),
    ] = "none",
) -> None:
    """Train a classifier on fold K with the reference's three-stage fine-tuning.

    Phases: head only (lr 1e-3, 3 epochs), top 25% of the backbone (1e-4, 10 epochs), all
    layers (1e-5, up to 100 epochs, early stopping on validation loss, best weights restored).
    Batch 8, binary cross-entropy, augmented training batches. Re-running an interrupted
    command resumes at the phase and epoch where it stopped.

    Examples:

      massclass train --arch resnet50v2 --data data/masses.zarr --splits data/splits.json
      --fold 1 --out models/massclass/resnet50v2/fold_1

      CPU demo: massclass train --arch tinycnn --input-size 64 --epochs 1,1,2 ...

      From params.yaml: massclass train --params params.yaml --data ... --fold 2 --out ...
    """
    from massclass.config import SECTION, TrainConfig, TrainSettings
    from massclass.train import train as run_train

    _logging(verbose)
    roi = {"representation": representation, "source": roi_source, "margin": margin}
    config = load_section(
        TrainConfig, params, f"{SECTION}.train",
        {"arch": arch, "input_size": input_size, "batch_size": batch_size, "epochs": epochs,
         "weights": weights, "class_weight": class_weight, "seed": seed, "threshold": threshold,
         "roi": {k: v for k, v in roi.items() if v is not None}},
        paths={"data": data, "splits": splits, "fold": fold, "out": out, "resume": resume,
               "progress": verbose, "strategy": strategy},
        settings_model=TrainSettings, missing_ok=True,
    )
    result = run_train(config)
    console.print(
        f"[green]trained[/] {result.model_id} -> {result.out}  ({result.epochs_run} epochs, "
        f"{result.seconds:.0f} s{', resumed' if result.resumed else ''}, weights "
        f"{result.weights_origin})"
    )
    for phase in result.phases:
        state = "skipped" if phase.skipped else (
            f"{phase.epochs_run} epochs, best {phase.best_epoch} "
            f"(val_loss {phase.best_val_loss:.4f}), {phase.stop_reason}"
            if phase.best_val_loss is not None else f"{phase.epochs_run} epochs"
        )
        console.print(f"  phase {phase.name} ({phase.trainable}, lr {phase.learning_rate:g}): "
                      f"{state}")
    vm = result.valid_metrics
    console.print(
        f"  train ROIs {result.train_rois['n_rois']} ({result.train_rois['n_missed_cases']} "
        f"cases without a mass); valid ROIs {result.valid_rois['n_rois']} "
        f"({result.valid_rois['n_missed_cases']} without a mass)"
    )
    youden = "n/a" if result.youden_threshold is None else f"{result.youden_threshold:.3f}"
    console.print(
        f"  validation: AUC {vm.get('roc_auc', float('nan')):.3f}, accuracy "
        f"{vm.get('accuracy', float('nan')):.3f} at threshold {result.threshold:.3f}; "
        f"Youden threshold {youden}"
    )


@app.command()
@handle_errors
def predict(
    model: Annotated[
        list[Path], typer.Option("--model", help="Model folder; repeat to average an ensemble.")
    ] = ...,
    data: Annotated[Path, typer.Option(help="masses store to classify.")] = ...,
    out: Annotated[Path, typer.Option(help="diagnosis store to write.")] = ...,
    threshold: Annotated[
        str | None,
        typer.Option(help="A number (0.5), 'youden' (chosen on the fold's validation masses) "
                          "or 'card'."),
    ] = None,
    batch_size: Annotated[int | None, typer.Option(help="Inference batch size.")] = None,
    precision: PrecisionOpt = None,
    fold_batchnorm: FoldBatchNormOpt = None,
    params: ParamsOpt = None,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing output.")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Logs.")] = False,
) -> None:
    """Classify every predicted mass of a masses store; write a diagnosis store.

    Each case gets the probability of its most malignant mass; cases whose segmentation found
    no mass are listed as no_mass_found.

    Examples:

      massclass predict --model models/massclass/vgg16/fold_1 --data data/masses.zarr
      --out data/diagnosis.zarr

      Fold ensemble with validation thresholds: massclass predict --model .../fold_1
      --model .../fold_2 --threshold youden --data data/masses.zarr --out data/diagnosis.zarr
    """
    from massclass.config import SECTION, PredictConfig, PredictSettings
    from massclass.predict import predict as run_predict

    _logging(verbose)
    config = load_section(
        PredictConfig, params, f"{SECTION}.predict",
        {"threshold": threshold, "batch_size": batch_size, "precision": precision,
         "fold_batchnorm": fold_batchnorm},
        paths={"models": model, "data": data, "out": out, "overwrite": overwrite},
        settings_model=PredictSettings, missing_ok=True,
    )
    result = run_predict(config)
    console.print(
        f"[green]wrote[/] {result.out}: {result.n_cases} cases, {result.n_masses} masses, "
        f"{result.n_malignant_cases} cases malignant at threshold {result.threshold:.3f} "
        f"({result.threshold_method})"
    )
    if result.n_no_mass_found:
        shown = ", ".join(result.no_mass_found[:10])
        more = " ..." if result.n_no_mass_found > 10 else ""
        console.print(f"  [yellow]{result.n_no_mass_found} case(s) with no mass found[/]: "
                      f"{shown}{more}")


@app.command()
@handle_errors
def evaluate(
    data: Annotated[Path, typer.Option(help="diagnosis store (from massclass predict).")] = ...,
    out: Annotated[Path, typer.Option(help="Metrics JSON to write.")] = ...,
    roc: Annotated[Path | None, typer.Option(help="ROC JSON for DVC plots.")] = None,
    roc_plot: Annotated[Path | None, typer.Option(help="ROC PNG.")] = None,
    splits: Annotated[Path | None, typer.Option(help="splits.json to select cases.")] = None,
    part: Annotated[str, typer.Option(help="test, valid, train or all (with --splits).")] = "test",
    fold: Annotated[int | None, typer.Option(help="Fold for --part valid/train.")] = None,
    masses: Annotated[
        Path | None,
        typer.Option(help="masses store for mass-level metrics (default: the parent store)."),
    ] = None,
    n_bootstrap: Annotated[int | None, typer.Option(help="Bootstrap resamples (1000).")] = None,
    missed: Annotated[
        str | None, typer.Option(help="No-mass cases: 'benign' (default) or 'exclude'.")
    ] = None,
    params: ParamsOpt = None,
) -> None:
    """Score a diagnosis store: metrics JSON, ROC JSON and ROC plot.

    Accuracy, ROC AUC with a bootstrap confidence interval, sensitivity, specificity,
    precision, F1, MCC, Cohen's kappa and the confusion matrix, at case level and (when the
    masses store has ground truth) at mass level. A store whose cases all have unknown pathology
    (unlabelled images) is refused: there is nothing to compare against.

    Examples:

      massclass evaluate --data data/diagnosis.zarr --splits data/splits.json --part test
      --out metrics/massclass.json --roc plots/massclass_roc.json --roc-plot plots/roc.png
    """
    from massclass.config import SECTION, EvaluateConfig, EvaluateSettings
    from massclass.evaluate import evaluate as run_evaluate

    config = load_section(
        EvaluateConfig, params, f"{SECTION}.evaluate",
        {"n_bootstrap": n_bootstrap, "missed": missed},
        paths={"data": data, "out": out, "roc": roc, "roc_plot": roc_plot, "splits": splits,
               "part": part, "fold": fold, "masses": masses},
        settings_model=EvaluateSettings, missing_ok=True,
    )
    result = run_evaluate(config)
    case = result.case_level

    def fmt(key: str, level: dict) -> str:
        value = level.get(key)
        return "n/a" if value is None else f"{value:.3f}"

    ci = case.get("roc_auc_ci") or [None, None]
    ci_text = "" if None in ci else f" [{ci[0]:.3f}, {ci[1]:.3f}]"
    console.print(
        f"[green]wrote[/] {result.metrics_path}: {result.part} cases {result.n_cases}, "
        f"evaluated {result.n_evaluated}, no mass found {result.n_no_mass_found}, "
        f"unknown truth {result.n_unknown_truth}"
    )
    console.print(
        f"  case level @ {result.threshold:.3f}: AUC {fmt('roc_auc', case)}{ci_text}, accuracy "
        f"{fmt('accuracy', case)}, sensitivity {fmt('sensitivity', case)}, specificity "
        f"{fmt('specificity', case)}, F1 {fmt('f1', case)}, MCC {fmt('mcc', case)}"
    )
    if result.mass_level is not None:
        mass = result.mass_level
        console.print(
            f"  mass level: {mass.get('n', 0)} masses on a true mass "
            f"({mass.get('n_masses_without_truth_overlap', 0)} other detections): AUC "
            f"{fmt('roc_auc', mass)}, accuracy {fmt('accuracy', mass)}"
        )


@app.command()
@handle_errors
def models(
    count: Annotated[
        bool, typer.Option("--count", help="Build each listed backbone (weights=None) to count.")
    ] = False,
    backbone: Annotated[
        list[str] | None, typer.Option("--backbone", help="Only these backbones.")
    ] = None,
    input_size: Annotated[int, typer.Option(help="Input side for --count.")] = 224,
) -> None:
    """List the backbones (every keras.applications model, plus tinycnn) and their counts.

    The reference counts (base frozen, 224x224x3) are shown for vgg16, resnet50v2 and
    inceptionv3; --count builds each listed backbone to count its parameters.

    Examples:

      massclass models

      massclass models --count --backbone efficientnetb0 --backbone densenet121
    """
    from massclass.models import (
        REFERENCE_COUNTS,
        build_model,
        count_parameters,
        get_backbone,
        list_backbones,
    )

    try:
        specs = [get_backbone(b) for b in backbone] if backbone else list_backbones()
    except ValueError as exc:
        raise ConfigError(str(exc), field="--backbone", fix="pick a listed name") from None
    table = Table(title=f"massclass backbones (input {input_size}x{input_size}x3, base frozen)")
    for col in ("name", "preprocess", "source", "total", "non-trainable"):
        table.add_column(col)
    for spec in specs:
        total = frozen = ""
        if spec.name in REFERENCE_COUNTS and input_size == 224:
            total, frozen = (f"{v:,}" for v in REFERENCE_COUNTS[spec.name])
        if count:
            try:
                counts = count_parameters(
                    build_model(spec.name, (input_size, input_size, 3), weights=None))
                total, frozen = f"{counts['total']:,}", f"{counts['non_trainable']:,}"
            except ValueError as exc:
                total, frozen = "n/a", str(exc)[:40]
        table.add_row(spec.name, spec.preprocess, spec.source, total, frozen)
    console.print(table)


@app.command()
@handle_errors
def export(
    model: Annotated[Path, typer.Option(help="Model folder (from `massclass train`).")],
    out: ExportOutOpt,
    format: ExportFormatOpt = "savedmodel",
    overwrite: ExportOverwriteOpt = False,
) -> None:
    """Export a model as a TensorFlow SavedModel that takes the RAW image.

    The serving signature takes a batch of gray ROI crops (uint16, uint8 or float32 in
    [0, 1], any size), scales, resizes and repeats them to 3 channels and returns the
    malignancy probability. See docs/export.md.

    Example:

        massclass export --model models/massclass/vgg16/fold_1 --out exports/massclass
    """
    from massclass.export import export as run

    path = run(model, out, format=format, overwrite=overwrite)
    console.print(f"[green]exported[/] {model} -> {path} ({format})", highlight=False)


if __name__ == "__main__":  # pragma: no cover
    app()
