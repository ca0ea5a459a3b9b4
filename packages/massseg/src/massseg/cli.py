"""The ``massseg`` command: list networks, train a fold, cross-validate, predict, evaluate.

Every command parses its options, validates them into a config (``params.yaml`` section
``massseg.<train|predict|evaluate>`` first, command-line options over it), calls one importable
function and prints a short summary. Exit codes: 0 success, 1 unexpected failure, 2 bad input
(the message names the file, the field and the fix), 130 interrupted.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Annotated, Any

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
    version_option,
)
from mammo_common.errors import ConfigError
from mammo_common.params import load_section
from massseg import __version__

app = typer.Typer(
    name="massseg",
    help=(
        "Stage 2 of the mammo pipeline: segment masses in breast images with one of ten "
        "U-Net-family networks.\n\n"
        "Typical run: massseg cv --arch unetpp_xception --data data/breast.zarr "
        "--splits data/splits.json --out models/massseg/unetpp_xception && massseg predict "
        "--model models/massseg/unetpp_xception/fold_1 --data data/breast.zarr "
        "--out data/masses.zarr && massseg evaluate --data data/masses.zarr --out metrics.json"
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

# ----------------------------------------------------------------------------- shared options

Params = Annotated[
    Path | None,
    typer.Option("--params", help="params.yaml; its massseg.<command> section is read first."),
]
Arch = Annotated[str | None, typer.Option("--arch", help="Network (see `massseg models`).")]
Data = Annotated[Path, typer.Option("--data", help="The breast store (breast.zarr).")]
SplitsOpt = Annotated[Path, typer.Option("--splits", help="splits.json made by `mammo split`.")]
InputSize = Annotated[
    str | None,
    typer.Option("--input-size", help="Network input ROWSxCOLS, e.g. 640x640 (default: store)."),
]
Epochs = Annotated[int | None, typer.Option("--epochs", help="Maximum epochs (100).")]
BatchSize = Annotated[int | None, typer.Option("--batch-size", help="Images per batch (2).")]
Loss = Annotated[
    str | None,
    typer.Option(
        "--loss", help="dice (reference), generalized_dice, tversky, focal_tversky, bce_dice."
    ),
]
LearningRate = Annotated[
    float | None, typer.Option("--learning-rate", help="Adam rate (1e-3 unet5l, else 1e-4).")
]
MixedPrecision = Annotated[
    str | None,
    typer.Option("--mixed-precision", help="bfloat16 (CPU) or float16 (GPU); default off."),
]
Width = Annotated[
    list[str] | None,
    typer.Option(
        "--width",
        help="Network keyword argument KEY=VALUE, repeatable (e.g. --width filters=4).",
    ),
]
Weights = Annotated[
    str | None,
    typer.Option("--weights", help="Encoder weights: imagenet, auto (if cached) or a file."),
]
Seed = Annotated[int | None, typer.Option("--seed", help="Seed (0).")]
Monitor = Annotated[
    str | None,
    typer.Option("--monitor", help="Best weights by val_loss (reference) or val_dice."),
]
Augment = Annotated[
    bool | None, typer.Option("--augment/--no-augment", help="Augment training batches (on).")
]
Resume = Annotated[
    bool | None,
    typer.Option("--resume/--no-resume", help="Continue an interrupted training (on)."),
]
Overwrite = Annotated[
    bool | None, typer.Option("--overwrite", help="Replace an existing output.")
]


@app.callback()
def main(
    version: Annotated[bool, version_option("mammo-massseg", __version__)] = False,
) -> None:
    """Stage 2 of the mammo pipeline: mass segmentation."""
    from mammo_common.cli_support import setup_logging

    setup_logging()


def _kwargs(width: list[str] | None) -> dict[str, Any] | None:
    from massseg.config import parse_kwargs

    if not width:
        return None
    try:
        return parse_kwargs(width)
    except ValueError as exc:
        raise ConfigError(
            str(exc), field="--width", fix="write KEY=VALUE, e.g. filters=4"
        ) from None


def _train_settings(**values: Any) -> dict[str, Any]:
    values["arch_options"] = _kwargs(values.pop("width"))
    return values


def _fmt(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)


# ----------------------------------------------------------------------------- commands


@app.command()
@handle_errors
def models(
    count_params: Annotated[
        bool,
        typer.Option("--count-params", help="Build each network to count parameters (slow)."),
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List the networks: name, default input, input multiple (and parameter counts).

    Example: massseg models --count-params
    """
    from massseg.models import describe_models

    rows = describe_models(count_params=count_params)
    if as_json:
        typer.echo(json.dumps(rows, indent=2, default=str))
        return
    table = Table("name", "default input", "sides multiple of", "parameters", "non-trainable",
                  title="mass segmentation networks")
    for row in rows:
        shape = row["default_input_shape"]
        table.add_row(
            row["name"],
            "x".join(str(d) for d in shape) if shape else f"[red]{row['error']}[/]",
            str(row["input_multiple"]),
            f"{row['total_params']:,}" if row["total_params"] is not None else "-",
            f"{row['non_trainable_params']:,}" if row["non_trainable_params"] is not None else "-",
        )
    console.print(table)


@app.command()
@handle_errors
def train(
    data: Data,
    splits: SplitsOpt,
    fold: Annotated[int, typer.Option("--fold", help="1-based fold to train and validate on.")],
    out: Annotated[Path, typer.Option("--out", help="Model folder to write.")],
    arch: Arch = None,
    params: Params = None,
    input_size: InputSize = None,
    epochs: Epochs = None,
    batch_size: BatchSize = None,
    loss: Loss = None,
    learning_rate: LearningRate = None,
    mixed_precision: MixedPrecision = None,
    width: Width = None,
    weights: Weights = None,
    seed: Seed = None,
    monitor: Monitor = None,
    augment: Augment = None,
    resume: Resume = None,
    overwrite: Overwrite = None,
    strategy: Annotated[
        str,
        typer.Option(help="none, mirrored (all local GPUs/CPUs) or multiworker (TF_CONFIG); "
                     "--batch-size stays the global batch. See docs/distributed.md."),
    ] = "none",
) -> None:
    """Train one network on one fold (reference recipe, unaugmented validation, best weights).

    Writes OUT/model.keras, model_card.json and history.csv (epoch, loss, val_loss, dice,
    val_dice, iou, val_iou, lr). An interrupted run resumes when started again.

    Example: massseg train --arch unet5l --data data/breast.zarr --splits data/splits.json
    --fold 1 --out models/massseg/unet5l/fold_1 --input-size 640x640 --width filters=4
    """
    from massseg.config import TrainConfig, TrainSettings
    from massseg.train import train as run_train

    config = load_section(
        TrainConfig, params, "massseg.train",
        _train_settings(
            arch=arch, input_size=input_size, epochs=epochs, batch_size=batch_size, loss=loss,
            learning_rate=learning_rate, mixed_precision=mixed_precision, width=width,
            weights=weights, seed=seed, monitor=monitor, augment=augment, resume=resume,
            overwrite=overwrite,
        ),
        paths={"data": data, "splits": splits, "fold": fold, "out": out},
        settings_model=TrainSettings,
    )
    result = run_train(config, strategy=strategy)
    table = Table("arch", "fold", "epochs", "best epoch", "best val Dice", "last val Dice",
                  "stop", title=f"trained {result.model_id}")
    table.add_row(result.arch, str(result.fold), str(result.epochs_run), str(result.best_epoch),
                  _fmt(result.best_val_dice), _fmt(result.last_val_dice), result.stop_reason)
    console.print(table)
    if result.resumed_from:
        console.print(f"resumed after epoch {result.resumed_from}")
    console.print(f"wrote {result.model_dir}")


@app.command()
@handle_errors
def cv(
    data: Data,
    splits: SplitsOpt,
    out: Annotated[Path, typer.Option("--out", help="Network folder (fold_<k> inside).")],
    folds: Annotated[
        str | None, typer.Option("--folds", help="Folds to train, e.g. 1,2 (default all).")
    ] = None,
    arch: Arch = None,
    params: Params = None,
    input_size: InputSize = None,
    epochs: Epochs = None,
    batch_size: BatchSize = None,
    loss: Loss = None,
    learning_rate: LearningRate = None,
    mixed_precision: MixedPrecision = None,
    width: Width = None,
    weights: Weights = None,
    seed: Seed = None,
    monitor: Monitor = None,
    augment: Augment = None,
    resume: Resume = None,
    overwrite: Overwrite = None,
) -> None:
    """Cross-validate one network: train every fold, then write the per-fold table.

    Finished folds are reused (unless --overwrite); OUT/cv.json and OUT/cv.md hold best and
    last validation Dice, best epoch and epochs run per fold, with mean +- sd.

    Example: massseg cv --arch unetpp_xception --data data/breast.zarr --splits
    data/splits.json --out models/massseg/unetpp_xception --folds 1,2
    """
    from massseg.config import CVConfig, TrainSettings
    from massseg.cv import cross_validate

    config = load_section(
        CVConfig, params, "massseg.train",
        _train_settings(
            arch=arch, input_size=input_size, epochs=epochs, batch_size=batch_size, loss=loss,
            learning_rate=learning_rate, mixed_precision=mixed_precision, width=width,
            weights=weights, seed=seed, monitor=monitor, augment=augment, resume=resume,
            overwrite=overwrite,
        ),
        paths={"data": data, "splits": splits, "out": out, "folds": folds},
        settings_model=TrainSettings,
    )
    result = cross_validate(config)
    _print_cv(result.summary)
    if result.reused:
        console.print(f"reused finished folds {result.reused}")
    console.print(f"wrote {result.json_path} and {result.markdown_path}")


def _print_cv(summary: Any) -> None:
    table = Table("fold", "best val Dice", "last val Dice", "best epoch", "epochs run",
                  title=f"cross-validation: {summary.arch}")
    for row in summary.folds:
        table.add_row(str(row.fold), _fmt(row.best_val_dice), _fmt(row.last_val_dice),
                      str(row.best_epoch), str(row.epochs_run))
    m, s = summary.mean, summary.sd
    table.add_row(
        "mean +- sd",
        f"{m['best_val_dice']:.4f} +- {s['best_val_dice']:.4f}",
        f"{m['last_val_dice']:.4f} +- {s['last_val_dice']:.4f}",
        f"{m['best_epoch']:.1f}",
        f"{m['epochs_run']:.1f}",
    )
    console.print(table)


@app.command("refit-fp")
@handle_errors
def refit_fp(
    model: Annotated[Path, typer.Option("--model", help="Trained model folder to refit.")],
    data: Data,
    splits: SplitsOpt,
    scorer: Annotated[
        str | None,
        typer.Option("--scorer", help="boosted_trees or logistic (default: the card's)."),
    ] = None,
    max_objects: Annotated[
        str | None,
        typer.Option("--max-objects", help="auto, none or a number (default: the card's)."),
    ] = None,
) -> None:
    """Refit a model folder's false-positive scorer without training the network again.

    Runs the saved network (and refiner) on the fold's training and validation images of the
    store it was trained on, fits the scorer (massseg.fp_reduction) and replaces
    fp_reduction.json and the card's fp_reduction settings and metrics; the network is
    untouched. Settings not given keep the card's values.

    Example: massseg refit-fp --model models/massseg/unet5l/fold_1 --data data/breast.zarr
    --splits data/splits.json --scorer boosted_trees
    """
    from massseg.fp_refit import RefitConfig, refit_fp_reduction

    settings: dict[str, Any] = {}
    if scorer is not None:
        settings["scorer"] = scorer
    if max_objects is not None:
        cap = max_objects.strip().lower()
        if cap not in ("auto", "none") and not cap.isdigit():
            raise ConfigError(f"--max-objects {max_objects!r} is not auto, none or a number",
                              field="max_objects", fix="pass --max-objects auto, none or 1")
        settings["max_objects"] = None if cap == "none" else (cap if cap == "auto" else int(cap))
    result = refit_fp_reduction(RefitConfig(model=model, data=data, splits=splits,
                                            settings=settings))
    table = Table("scorer", "threshold", "cap", "valid Dice (before)", "valid AUC",
                  "masses kept", "false kept", title=f"refitted {result.model}")
    table.add_row(result.scorer, _fmt(result.threshold), str(result.max_objects or "none"),
                  f"{_fmt(result.valid_dice)} ({_fmt(result.valid_dice_before)})",
                  _fmt(result.valid_auc), str(result.valid_masses_kept),
                  str(result.valid_false_kept))
    console.print(table)


@app.command()
@handle_errors
def predict(
    model: Annotated[
        list[Path],
        typer.Option("--model", help="Model folder; repeat for an ensemble of folds."),
    ],
    data: Data,
    out: Annotated[Path, typer.Option("--out", help="The masses store to write.")],
    params: Params = None,
    tta: Annotated[
        bool | None, typer.Option("--tta/--no-tta", help="Average over flips (off).")
    ] = None,
    threshold: Annotated[
        float | None, typer.Option("--threshold", help="Mask threshold (the card's, 0.5).")
    ] = None,
    min_object_pixels: Annotated[
        int | None,
        typer.Option("--min-object-pixels", help="Remove objects smaller than this (30)."),
    ] = None,
    largest_component: Annotated[
        bool | None,
        typer.Option("--largest-component/--all-components", help="Keep the largest object."),
    ] = None,
    batch_size: Annotated[
        int | None, typer.Option("--batch-size", help="Images per batch (4).")
    ] = None,
    precision: PrecisionOpt = None,
    fold_batchnorm: FoldBatchNormOpt = None,
    refine: Annotated[
        bool | None,
        typer.Option("--refine/--no-refine",
                     help="Redraw each detected mass with the models' refiners when they have "
                          "them (on)."),
    ] = None,
    fp_reduction: Annotated[
        bool | None,
        typer.Option("--fp-reduction/--no-fp-reduction",
                     help="Remove the detections the models' false-positive scorer rejects, "
                          "when they have one (on)."),
    ] = None,
    overwrite: Overwrite = None,
) -> None:
    """Segment the masses of a breast store with one model or an ensemble of folds.

    Writes a masses store (images, breast and ground-truth masks carried over, mass_probs,
    mass_pred) with the models' ids and parameters as provenance. Models trained with a
    refiner redraw every detected mass at full resolution (--no-refine keeps the whole-image
    map); models trained with false-positive reduction then drop the detections their scorer
    rejects (--no-fp-reduction keeps them all).

    Example: massseg predict --model models/massseg/unet5l/fold_1 --model
    models/massseg/unet5l/fold_2 --data data/breast.zarr --out data/masses.zarr --tta
    """
    from massseg.config import PredictConfig, PredictSettings
    from massseg.predict import predict as run_predict

    config = load_section(
        PredictConfig, params, "massseg.predict",
        {"tta": tta, "threshold": threshold, "min_object_pixels": min_object_pixels,
         "largest_component": largest_component, "batch_size": batch_size,
         "overwrite": overwrite, "precision": precision, "fold_batchnorm": fold_batchnorm,
         "refine": refine, "fp_reduction": fp_reduction},
        paths={"models": model, "data": data, "out": out},
        settings_model=PredictSettings,
    )
    result = run_predict(config)
    table = Table("cases", "models", "threshold", "TTA", "cases with mass", "mean mass pixels",
                  title="mass segmentation")
    table.add_row(str(result.n_cases), ", ".join(result.model_ids), f"{result.threshold:g}",
                  "yes" if result.tta else "no", str(result.cases_with_mass),
                  f"{result.mean_mass_pixels:.1f}")
    console.print(table)
    console.print(f"wrote {result.out}")


@app.command()
@handle_errors
def evaluate(
    out: Annotated[Path, typer.Option("--out", help="Metrics JSON (flat keys, for DVC).")],
    data: Annotated[
        Path | None, typer.Option("--data", help="The masses store to score.")
    ] = None,
    cv_dir: Annotated[
        Path | None, typer.Option("--cv", help="Summarise the fold_<k> folders of a network.")
    ] = None,
    splits: Annotated[
        Path | None, typer.Option("--splits", help="splits.json, to select --part.")
    ] = None,
    part: Annotated[
        str | None, typer.Option("--part", help="Score only test, or valid/train of --fold.")
    ] = None,
    fold: Annotated[int | None, typer.Option("--fold", help="Fold of --part valid/train.")] = None,
    per_case: Annotated[
        Path | None, typer.Option("--per-case", help="Per-case scores JSON.")
    ] = None,
    overlays: Annotated[
        Path | None,
        typer.Option("--overlays", help="Folder for PNGs of the best, median and worst cases."),
    ] = None,
    n_overlays: Annotated[
        int | None, typer.Option("--n-overlays", help="Cases per category drawn (1).")
    ] = None,
    markdown: Annotated[
        Path | None, typer.Option("--markdown", help="Also write a Markdown table.")
    ] = None,
    params: Params = None,
) -> None:
    """Score a masses store (per-image Dice, Jaccard, pixel AUC; means and pooled) or a CV.

    Empty truth with empty prediction scores 1 (the reference protocol). A store without
    ground-truth mass masks (unlabelled images) is refused: there is nothing to compare against.

    Example: massseg evaluate --data data/masses.zarr --splits data/splits.json --part test
    --out metrics/massseg.json --per-case reports/per_case.json --overlays reports/overlays
    """
    from massseg.config import EvaluateConfig, EvaluateSettings
    from massseg.evaluate import evaluate as run_evaluate

    config = load_section(
        EvaluateConfig, params, "massseg.evaluate",
        {"part": part, "fold": fold, "overlays": n_overlays},
        paths={"data": data, "cv": cv_dir, "splits": splits, "out": out, "per_case": per_case,
               "overlays_dir": overlays, "markdown": markdown},
        settings_model=EvaluateSettings,
    )
    result = run_evaluate(config)
    if result.mode == "cv":
        from massseg.cv import summarise_cv

        _print_cv(summarise_cv(config.cv))  # type: ignore[arg-type]
    else:
        m = result.metrics
        table = Table("images", "Dice (mean)", "Jaccard (mean)", "AUC (mean)", "Dice (pooled)",
                      "AUC (pooled)", title="mass segmentation")
        table.add_row(str(m["n_images"]), _fmt(m["dice_mean"]), _fmt(m["jaccard_mean"]),
                      _fmt(m["auc_mean"]), _fmt(m["dice_pooled"]), _fmt(m["auc_pooled"]))
        console.print(table)
    for path in result.overlays:
        console.print(f"overlay {path}")
    console.print(f"wrote {result.out}")


@app.command()
@handle_errors
def export(
    model: Annotated[Path, typer.Option("--model", help="Model folder (from `massseg train`).")],
    out: ExportOutOpt,
    format: ExportFormatOpt = "savedmodel",
    overwrite: ExportOverwriteOpt = False,
) -> None:
    """Export a model as a TensorFlow SavedModel that takes the RAW image.

    The serving signature takes a batch of gray images (uint16, uint8 or float32 in [0, 1],
    any size), scales, resizes and repeats them as training does and returns the mass
    probability map at each input's size. See docs/export.md.

    Example: massseg export --model models/massseg/unetpp_xception/fold_1 --out exports/massseg
    """
    from massseg.export import export as run_export

    path = run_export(model, out, format=format, overwrite=overwrite)
    console.print(f"[green]exported[/] {model} -> {path} ({format})", highlight=False)


if __name__ == "__main__":  # pragma: no cover
    app()
