"""The ``breastseg`` command: train, predict and evaluate breast segmentation (stage 1).

Every command parses its options, validates them (with the ``breastseg.<command>`` section of
``--params`` when given; options win) into a pydantic config, calls one importable function and
prints a short summary. Exit codes: 0 success, 1 unexpected failure, 2 bad input (the message
names the file, the field and the fix), 130 interrupted.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from breastseg import __version__
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
from mammo_common.params import load_section

app = typer.Typer(
    name="breastseg",
    help=(
        "Stage 1 of the mammo pipeline: segment the breast with a five-level U-Net, remove the "
        "background, crop to the breast and resize, writing the 'breast' store that mass "
        "segmentation reads.\n\n"
        "Typical use: breastseg train --data data/mammograms.zarr --splits data/splits.json "
        "--fold 1 --out models/breastseg/unet5l/fold_1 && breastseg predict --model "
        "models/breastseg/unet5l/fold_1 --data data/mammograms.zarr --out data/breast.zarr"
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

ParamsOpt = Annotated[
    Path | None,
    typer.Option(help="params.yaml whose 'breastseg.<command>' section gives defaults."),
]


@app.callback()
def main(
    version: Annotated[bool, version_option("mammo-breastseg", __version__)] = False,
) -> None:
    """Breast segmentation, background removal and cropping."""
    from mammo_common.cli_support import setup_logging

    setup_logging()


@app.command()
@handle_errors
def train(
    data: Annotated[Path, typer.Option(help="mammograms store (from `mammo ingest`).")],
    splits: Annotated[Path, typer.Option(help="splits.json (from `mammo split`).")],
    out: Annotated[Path, typer.Option(help="Model folder to write.")],
    fold: Annotated[int | None, typer.Option(help="1-based fold (default: 1).")] = None,
    params: ParamsOpt = None,
    arch: Annotated[str | None, typer.Option(help="Network (default: unet5l).")] = None,
    input_size: Annotated[
        str | None, typer.Option(help="Network input ROWSxCOLS, multiples of 16 [1024x768].")
    ] = None,
    filters: Annotated[int | None, typer.Option(help="Width f of the U-Net [16].")] = None,
    epochs: Annotated[int | None, typer.Option(help="Maximum epochs [100].")] = None,
    batch_size: Annotated[int | None, typer.Option(help="Batch size [3].")] = None,
    learning_rate: Annotated[float | None, typer.Option(help="Adam learning rate [1e-3].")] = None,
    mask_source: Annotated[
        str | None,
        typer.Option(help="Breast masks: auto (store, else labeller), store or labeller [auto]."),
    ] = None,
    augment: Annotated[
        bool | None, typer.Option("--augment/--no-augment", help="Augment training batches.")
    ] = None,
    seed: Annotated[int | None, typer.Option(help="Random seed [0].")] = None,
    resume: Annotated[
        bool | None,
        typer.Option("--resume/--no-resume", help="Continue an interrupted run [resume]."),
    ] = None,
    strategy: Annotated[
        str,
        typer.Option(help="none, mirrored (all local GPUs/CPUs) or multiworker (TF_CONFIG); "
                     "--batch-size stays the global batch. See docs/distributed.md."),
    ] = "none",
) -> None:
    """Train the breast U-Net on one fold and write a self-describing model folder.

    The folder holds model.keras, model_card.json and history.csv; the best epoch's weights
    (by validation loss on unaugmented validation cases) are kept. Start it again after an
    interruption and it continues from the last finished epoch.

    Example (CPU demo size):

        breastseg train --data data/mammograms.zarr --splits data/splits.json --fold 1
        --out models/breastseg/unet5l/fold_1 --input-size 128x96 --filters 8 --epochs 20
    """
    from breastseg.config import TrainConfig

    config = load_section(
        TrainConfig,
        params,
        "breastseg.train",
        {
            "data": data,
            "splits": splits,
            "out": out,
            "fold": fold,
            "arch": arch,
            "input_size": input_size,
            "filters": filters,
            "epochs": epochs,
            "batch_size": batch_size,
            "learning_rate": learning_rate,
            "mask_source": mask_source,
            "augment": augment,
            "seed": seed,
            "resume": resume,
        },
    )
    from breastseg.train import train as run

    result = run(config, strategy=strategy)
    dice = "n/a" if result.best_val_dice is None else f"{result.best_val_dice:.4f}"
    resumed = f", resumed after epoch {result.resumed_from}" if result.resumed_from else ""
    console.print(
        f"[green]trained[/] {result.model_id}: {result.epochs_run} epochs ({result.stop_reason}"
        f"{resumed}), best epoch {result.best_epoch}, val Dice {dice}; "
        f"masks store/labeller {result.mask_sources['store']}/{result.mask_sources['labeller']}"
        f" -> {result.out}",
        highlight=False,
    )


@app.command()
@handle_errors
def predict(
    data: Annotated[Path, typer.Option(help="mammograms store to segment.")],
    out: Annotated[Path, typer.Option(help="breast store to write.")],
    model: Annotated[
        Path | None, typer.Option(help="Model folder (from `breastseg train`), for --method unet.")
    ] = None,
    params: ParamsOpt = None,
    method: Annotated[
        str | None, typer.Option(help="unet (the network) or threshold (Otsu + morphology).")
    ] = None,
    output_size: Annotated[
        str | None, typer.Option(help="Stored image size ROWSxCOLS [640x640].")
    ] = None,
    margin: Annotated[
        float | None, typer.Option(help="Margin around the breast box, fraction of its sides.")
    ] = None,
    threshold: Annotated[float | None, typer.Option(help="Mask threshold [0.5].")] = None,
    tta: Annotated[
        bool | None, typer.Option("--tta/--no-tta", help="Average over flipped copies.")
    ] = None,
    precision: PrecisionOpt = None,
    fold_batchnorm: FoldBatchNormOpt = None,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing output store.")] = False,
) -> None:
    """Segment each mammogram, blank the background, crop to the breast and resize.

    Writes a 'breast' store: the cropped images, breast masks, ground-truth mass masks carried
    through the same transform, and each case's transform (crop box and scale) so any later
    mask maps back onto the original image.

    Example:

        breastseg predict --model models/breastseg/unet5l/fold_1
        --data data/mammograms.zarr --out data/breast.zarr --output-size 640x640

    Without a network: breastseg predict --method threshold --data data/mammograms.zarr
    --out data/breast.zarr
    """
    from breastseg.config import PredictConfig

    config = load_section(
        PredictConfig,
        params,
        "breastseg.predict",
        {
            "data": data,
            "out": out,
            "model": model,
            "method": method,
            "output_size": output_size,
            "margin": margin,
            "threshold": threshold,
            "tta": tta,
            "precision": precision,
            "fold_batchnorm": fold_batchnorm,
            "overwrite": overwrite or None,
        },
    )
    from breastseg.predict import predict as run

    result = run(config)
    console.print(
        f"[green]wrote[/] breast store of {result.n_cases} cases "
        f"({result.image_size[0]}x{result.image_size[1]}, method {result.method}, mass masks "
        f"{'carried' if result.with_mass_masks else 'absent'}) in {result.seconds:.1f} s "
        f"-> {result.out}",
        highlight=False,
    )
    sides = result.chest_wall
    console.print(
        f"breast masks: chest wall left {sides.get('left', 0)}, right {sides.get('right', 0)}, "
        f"unknown {sides.get('unknown', 0)}; {result.artefact_pixels} pixels of labels, "
        "markers, film edges and other thin parts removed",
        highlight=False,
    )
    if result.empty_cases:
        console.print(
            f"[yellow]warning:[/] no breast found in {len(result.empty_cases)} case(s), kept "
            f"whole: {', '.join(result.empty_cases[:5])}",
            highlight=False,
        )
    if result.labeller_fallback_cases:
        console.print(
            f"[yellow]warning:[/] the network's breast mask and the threshold labeller's "
            f"disagreed (part of the breast lost, or background taken in) in "
            f"{len(result.labeller_fallback_cases)} case(s); the labeller's mask was used "
            f"(breastseg.predict.labeller_fallback): "
            f"{', '.join(result.labeller_fallback_cases[:5])}. Check those masks by eye; many "
            "such cases mean the images differ from the ones the network learnt from",
            highlight=False,
        )


@app.command()
@handle_errors
def evaluate(
    data: Annotated[Path, typer.Option(help="mammograms store with the cases to score.")],
    out: Annotated[Path, typer.Option(help="Metrics JSON to write (for dvc metrics).")],
    model: Annotated[
        Path | None, typer.Option(help="Model folder, for --method unet.")
    ] = None,
    splits: Annotated[Path | None, typer.Option(help="splits.json choosing the cases.")] = None,
    part: Annotated[
        str | None, typer.Option(help="test, valid, train (of --fold) or all [test].")
    ] = None,
    fold: Annotated[
        int | None, typer.Option(help="1-based fold for valid/train [the model's fold].")
    ] = None,
    plot: Annotated[
        Path | None, typer.Option(help="PNG of the best and worst cases with contours.")
    ] = None,
    per_case: Annotated[
        Path | None, typer.Option(help="Per-case JSON [<out stem>.cases.json].")
    ] = None,
    params: ParamsOpt = None,
    method: Annotated[str | None, typer.Option(help="unet or threshold [unet].")] = None,
    reference: Annotated[
        str | None, typer.Option(help="Reference masks: auto, store or labeller [auto].")
    ] = None,
    threshold: Annotated[float | None, typer.Option(help="Mask threshold [0.5].")] = None,
    precision: PrecisionOpt = None,
    fold_batchnorm: FoldBatchNormOpt = None,
) -> None:
    """Score breast masks with Dice and Jaccard per case and on average.

    The reference is the store's breast mask, or the threshold labeller's where the store has
    none (the JSON says which). Writes flat metrics for `dvc metrics show`, a per-case JSON and
    optionally a PNG of the best and worst cases (reference cyan, prediction orange). A store
    without any ground truth (unlabelled images) is refused unless --reference labeller.

    Example:

        breastseg evaluate --model models/breastseg/unet5l/fold_1 --data data/mammograms.zarr
        --splits data/splits.json --part test --out metrics/breastseg.json
        --plot plots/breastseg_best_worst.png
    """
    from breastseg.config import EvaluateConfig

    config = load_section(
        EvaluateConfig,
        params,
        "breastseg.evaluate",
        {
            "data": data,
            "out": out,
            "model": model,
            "splits": splits,
            "part": part,
            "fold": fold,
            "plot": plot,
            "per_case": per_case,
            "method": method,
            "reference": reference,
            "threshold": threshold,
            "precision": precision,
            "fold_batchnorm": fold_batchnorm,
        },
    )
    from breastseg.evaluate import evaluate as run

    result = run(config)
    m = result.metrics
    console.print(
        f"[green]scored[/] {m['n_cases']} {m['part']} cases against {m['reference']} masks: "
        f"Dice {m['dice_mean']:.4f} (min {m['dice_min']:.4f}), Jaccard {m['jaccard_mean']:.4f}"
        f" -> {result.out}" + (f", {result.plot}" if result.plot else ""),
        highlight=False,
    )


@app.command()
@handle_errors
def export(
    model: Annotated[Path, typer.Option(help="Model folder (from `breastseg train`).")],
    out: ExportOutOpt,
    format: ExportFormatOpt = "savedmodel",
    overwrite: ExportOverwriteOpt = False,
) -> None:
    """Export a model as a TensorFlow SavedModel that takes the RAW image.

    The serving signature takes a batch of gray mammograms (uint16, uint8 or float32 in
    [0, 1], any size), scales and resizes them as training does and returns the breast
    probability map at each input's size. See docs/export.md.

    Example:

        breastseg export --model models/breastseg/unet5l/fold_1 --out exports/breastseg
    """
    from breastseg.export import export as run

    path = run(model, out, format=format, overwrite=overwrite)
    console.print(f"[green]exported[/] {model} -> {path} ({format})", highlight=False)


if __name__ == "__main__":  # pragma: no cover
    app()
