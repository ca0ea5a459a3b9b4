"""The ``mammo`` command: synthesise, ingest, split, validate, inspect and show stores.

Every command parses its arguments, validates them, calls one importable function and prints.
Exit codes: 0 success, 1 unexpected failure, 2 bad input (message names the file, field and fix),
130 interrupted.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from mammo_common import __version__
from mammo_common.cli_support import console, handle_errors, version_option

if TYPE_CHECKING:
    from mammo_common.oneshot_batch import BatchRunResult

app = typer.Typer(
    name="mammo",
    help=(
        "Shared tools of the mammo pipeline: make synthetic data, ingest real datasets into a "
        "validated Zarr store, split by patient, and inspect any store.\n\n"
        "Typical start: mammo synth data/raw && mammo ingest data/raw data/mammograms.zarr "
        "&& mammo split data/mammograms.zarr -o data/splits.json"
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def main(
    version: Annotated[bool, version_option("mammo-common", __version__)] = False,
) -> None:
    """Shared tools of the mammo pipeline."""
    from mammo_common.cli_support import setup_logging

    setup_logging()


def _size(text: str | None) -> tuple[int, int] | None:
    """Parse ``HxW`` (rows x cols)."""
    if text is None:
        return None
    from mammo_common.errors import ConfigError

    try:
        rows, cols = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise ConfigError(
            f"size {text!r} is not ROWSxCOLS", field="--size", fix="write e.g. 512x384"
        ) from None
    return rows, cols


@app.command()
@handle_errors
def synth(
    out_dir: Annotated[Path, typer.Argument(help="Folder to write (CBIS-DDSM layout).")],
    cases: Annotated[int | None, typer.Option(help="Number of patients (default: 300).")] = None,
    seed: Annotated[int | None, typer.Option(help="Random seed (default: 0).")] = None,
    size: Annotated[
        str | None, typer.Option(help="Mammogram size ROWSxCOLS (default: 512x384).")
    ] = None,
    no_defects: Annotated[
        bool, typer.Option("--no-defects", help="Do not reproduce CBIS-DDSM's known defects.")
    ] = False,
    style: Annotated[
        str | None,
        typer.Option(help="film, digital or mixed (one per patient) (default: mixed)."),
    ] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing folder.")] = False,
) -> None:
    """Write synthetic mammograms in the CBIS-DDSM layout (DICOM images and ROI masks, mass case
    description CSVs), bit-for-bit identical for the same arguments.

    Phantoms are rendered from attenuation (fat, fibroglandular tissue with 1/f texture whose
    amount follows BI-RADS density, pectoral muscle on MLO, thickness roll-off at the skin)
    through a film or digital imaging chain (heel effect, scatter, film curve and grain or
    quantum noise), with labels, lead markers, rulers and film edges outside the breast.
    Masses are 5-30 mm, about as dense as glandular tissue, textured, with BI-RADS shape and
    margins (benign mostly round/oval and circumscribed, malignant mostly irregular and
    spiculated, with overlap). Exact breast, pectoral and mass masks go to OUT/truth/, which
    `mammo ingest` reads. The defaults are what data.dvc tracks.

    Example: mammo synth data/raw --cases 100 --seed 0 --style film
    """
    from mammo_common.synth import SynthConfig, run_synth

    values = {"out": out_dir, "cases": cases, "seed": seed, "size": _size(size),
              "defects": not no_defects, "style": style, "overwrite": overwrite}
    config = SynthConfig.model_validate({k: v for k, v in values.items() if v is not None})
    result = run_synth(config)
    console.print(
        f"wrote {result.out}: {result.n_patients} patients, {result.n_images} mammograms "
        f"({result.n_mass_images} with masses: {result.n_malignant} malignant, "
        f"{result.n_benign} benign), {result.size[0]}x{result.size[1]}, {result.style}, "
        f"seed {result.seed}"
    )


@app.command()
@handle_errors
def ingest(
    source: Annotated[Path, typer.Argument(help="Dataset folder as unpacked (never modified).")],
    out: Annotated[Path, typer.Argument(help="mammograms store to write (*.zarr).")],
    format: Annotated[
        str | None,
        typer.Option(
            "--format",
            help="cbis-ddsm, inbreast, bcdr, folder, or images (unlabelled DICOM/PNG/TIFF "
            "at any depth) (default: detect).",
        ),
    ] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing store.")] = False,
    folder_mask: Annotated[
        str, typer.Option(help="folder format: mask/ holds 'mass' or 'breast' masks.")
    ] = "mass",
    patients_csv: Annotated[
        Path | None,
        typer.Option(help="folder and images formats: CSV with columns file,patient_id."),
    ] = None,
    for_processing: Annotated[
        bool,
        typer.Option(
            "--for-processing",
            help="images format: also import FOR PROCESSING (raw detector) DICOM images.",
        ),
    ] = False,
    max_pixels: Annotated[
        int | None,
        typer.Option(help="Refuse images whose header claims more pixel values (default: 60M)."),
    ] = None,
) -> None:
    """Read a dataset as distributed (CBIS-DDSM, INbreast, BCDR, PNG folders in the reference's
    layout, or any folder of unlabelled DICOM/PNG/TIFF mammograms) into a validated mammograms
    store, reporting every skipped file.

    DICOM is read with pydicom: modality and VOI LUTs applied, MONOCHROME1 inverted, 16-bit
    depth kept, pixel spacing recorded; compressed pixel data (RLE, JPEG, JPEG-LS, JPEG 2000)
    needs the decoders of mammo-common[dicom]. Known dataset defects (swapped CSV columns, renamed
    files, masks of another size, stray whitespace) are repaired and noted per case.

    Example: mammo ingest data/raw data/mammograms.zarr
    """
    from mammo_common.ingest import IngestConfig, run_ingest

    limits = {} if max_pixels is None else {"max_pixels": max_pixels}
    config = IngestConfig(source=source, out=out, format=format, overwrite=overwrite,
                          folder_mask=folder_mask, patients_csv=patients_csv,
                          for_processing=for_processing, **limits)
    result = run_ingest(config)
    labels = (
        f"{result.n_mass_cases} with masses" if result.n_mass_cases
        else "unlabelled: no mass masks, ready for prediction only"
    )
    console.print(
        f"wrote {result.out}: {result.n_cases} cases ({labels}) "
        f"from {result.format}; {result.n_skipped} skipped"
    )
    if result.breast_masks_from_truth_sidecar:
        console.print(
            f"  breast masks: {result.breast_masks_from_truth_sidecar} from the synthetic truth "
            "sidecar (exact phantom truth)"
        )
    for skipped in result.skipped[:20]:
        console.print(f"  [yellow]skipped[/] {skipped.path}: {skipped.reason}", highlight=False)
    if result.n_skipped > 20:
        console.print(f"  ... and {result.n_skipped - 20} more (see `mammo info {out}`)")


@app.command()
@handle_errors
def validate(
    store: Annotated[Path, typer.Argument(help="Store to check (any kind).")],
    kind: Annotated[
        str | None, typer.Option(help="Require this kind: mammograms, breast, masses, diagnosis.")
    ] = None,
    shallow: Annotated[
        bool, typer.Option("--shallow", help="Check metadata and shapes only, not mask values.")
    ] = False,
) -> None:
    """Check that STORE follows the data contract (kind, version, arrays, mask values).

    Example: mammo validate data/mammograms.zarr --kind mammograms
    """
    from mammo_common.store import open_store

    opened = open_store(store, kind, deep=not shallow)
    console.print(
        f"[green]valid[/] {opened.kind} store, schema {opened.meta.schema_version}, "
        f"{len(opened)} cases: {store}"
    )


@app.command()
@handle_errors
def info(
    store: Annotated[Path, typer.Argument(help="Store to describe (any kind).")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")] = False,
    max_cases: Annotated[int, typer.Option(help="List at most this many cases.")] = 20,
) -> None:
    """Describe STORE: kind, schema version, cases, attributes, arrays, mask sizes, lineage.

    Example: mammo info data/breast.zarr --json
    """
    from mammo_common.store import open_store
    from mammo_common.summary import store_summary

    summary = store_summary(open_store(store), max_cases=None if as_json else max_cases)
    if as_json:
        typer.echo(json.dumps(summary, indent=2, default=str))
        return
    console.print(
        f"[bold]{summary['path']}[/]: {summary['kind']} store, schema "
        f"{summary['schema_version']}, {summary['n_cases']} cases, "
        f"{summary['counts']['patients']} patients"
    )
    prod = summary["producer"]
    console.print(f"producer: {prod['package']} {prod['version']} ({prod['command']})")
    for parent in summary["parents"]:
        console.print(f"parent: {parent['kind']} {parent['path']} {parent['digest'][:19]}")
    for key, counts in summary["counts"].items():
        if isinstance(counts, dict):
            console.print(f"{key}: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    arrays = Table("array", "shape", "dtype", title="arrays")
    for name, spec in summary["arrays"].items():
        arrays.add_row(name, str(spec.get("shape", "per case")), spec["dtype"])
    console.print(arrays)
    if summary["cases"]:
        cols = list(summary["cases"][0].keys())
        table = Table(*cols, title=f"first {len(summary['cases'])} cases")
        for case in summary["cases"]:
            table.add_row(*(str(case.get(c, "")) for c in cols))
        console.print(table)
    if summary.get("skipped"):
        console.print(f"[yellow]{len(summary['skipped'])} source files were skipped at ingest[/]")


@app.command()
@handle_errors
def show(
    store: Annotated[Path, typer.Argument(help="Store to draw (mammograms, breast or masses).")],
    out: Annotated[Path, typer.Option("-o", "--out", help="PNG file to write.")],
    max_cases: Annotated[int, typer.Option(help="Draw at most this many cases.")] = 24,
    tile: Annotated[int, typer.Option(help="Tile size in pixels.")] = 192,
    columns: Annotated[int, typer.Option(help="Tiles per row.")] = 6,
) -> None:
    """Draw a contact sheet of STORE with masks as contours (yellow breast, cyan truth, orange
    prediction).

    Example: mammo show data/mammograms.zarr -o sheet.png
    """
    from mammo_common.store import open_store
    from mammo_common.viz import write_contact_sheet

    path = write_contact_sheet(
        open_store(store), out, max_cases=max_cases, tile=tile, columns=columns
    )
    console.print(f"wrote {path}")


@app.command()
@handle_errors
def split(
    store: Annotated[Path, typer.Argument(help="Store whose cases to split (usually mammograms).")],
    out: Annotated[Path, typer.Option("-o", "--out", help="Splits JSON file to write.")],
    folds: Annotated[int | None, typer.Option(help="Cross-validation folds (default: 5).")] = None,
    test_fraction: Annotated[
        float | None, typer.Option(help="Share of patients held out as test (default: 0.2).")
    ] = None,
    seed: Annotated[int | None, typer.Option(help="Random seed (default: 0).")] = None,
    params: Annotated[
        Path | None, typer.Option(help="Read defaults from the 'split' section of this YAML.")
    ] = None,
) -> None:
    """Split cases into a fixed test set and k folds, grouped by patient and stratified by
    pathology, and check the result for leakage.

    Example: mammo split data/mammograms.zarr -o data/splits.json --folds 5 --seed 0
    """
    from mammo_common.params import load_section
    from mammo_common.splits import SplitConfig, split_store

    config = load_section(
        SplitConfig, params, "split",
        {"folds": folds, "test_fraction": test_fraction, "seed": seed},
    )
    result = split_store(store, out, config)
    sizes = ", ".join(f"fold {f.index}: {len(f.train)}/{len(f.valid)}" for f in result.folds)
    console.print(
        f"wrote {out}: {len(result.cases)} cases, test {len(result.test)}; "
        f"train/valid {sizes}"
    )


@app.command()
@handle_errors
def report(
    stores: Annotated[list[Path], typer.Argument(help="Stores whose lineage and cases to show.")],
    out: Annotated[Path, typer.Option("-o", "--out", help="Report folder to write.")] = Path(
        "reports"
    ),
    metrics_dir: Annotated[Path, typer.Option(help="Folder of metrics JSON files.")] = Path(
        "metrics"
    ),
    models_dir: Annotated[Path, typer.Option(help="Folder of model folders.")] = Path("models"),
    plots_dir: Annotated[Path, typer.Option(help="Folder of PNG figures.")] = Path("plots"),
) -> None:
    """Write the run report (report.md with PNGs and a self-contained index.html): metrics,
    training curves, figures, data lineage and contact sheets.

    Example: mammo report data/mammograms.zarr data/breast.zarr data/masses.zarr -o reports
    """
    from mammo_common.report import ReportConfig, build_report

    result = build_report(
        ReportConfig(out=out, stores=stores, metrics_dir=metrics_dir, models_dir=models_dir,
                     plots_dir=plots_dir)
    )
    console.print(
        f"wrote {result.html} and {result.markdown}: {result.n_metrics_files} metrics files, "
        f"{result.n_models} models, {result.n_images} pictures"
    )


@app.command("run")
@handle_errors
def run_cmd(
    paths: Annotated[
        list[str],
        typer.Argument(
            help="Mammograms: DICOM (any transfer syntax mammo decodes), PNG or TIFF files, "
            "folders (searched at any depth) or glob patterns (quoted: 'scans/**/*.dcm'). "
            "Several, or a folder or pattern, need --out-dir.",
            show_default=False,
        ),
    ],
    models: Annotated[
        Path, typer.Option(help="Models folder holding <stage>/<arch>/fold_<k>/ folders.")
    ] = Path("models"),
    out_dir: Annotated[
        Path | None,
        typer.Option(help="Batch: folder for overlays/<case>.png, seg/<case>.seg.dcm, "
                     "results.csv and results.json."),
    ] = None,
    seg: Annotated[
        bool, typer.Option("--seg", help="Batch: also write a DICOM SEG per DICOM input.")
    ] = False,
    out: Annotated[
        Path | None, typer.Option("-o", "--out", help="One image: overlay PNG to write.")
    ] = None,
    json_out: Annotated[
        Path | None, typer.Option("--json", help="One image: also write the result as JSON.")
    ] = None,
    work_size: Annotated[
        str | None,
        typer.Option(help="Breast crop size ROWSxCOLS the mass stages see [640x640]."),
    ] = None,
    overwrite: Annotated[
        bool, typer.Option(help="Batch: replace an existing results.csv / results.json.")
    ] = False,
    for_processing: Annotated[
        bool,
        typer.Option("--for-processing", help="Batch: also read FOR PROCESSING (raw) DICOM."),
    ] = False,
) -> None:
    """Diagnose mammograms with whichever stages are installed: breast segmentation, mass
    segmentation, mass classification. One image: prints each mass with its malignancy
    probability and writes an overlay (breast outline, mass contours, labels). Many images
    (--out-dir): loads the models once, streams the images with a progress bar and writes an
    overlay per image, results.csv + results.json (the columns of `mammo results`) and, with
    --seg, a DICOM SEG per DICOM input; a bad file is reported at the end and skipped (exit 2
    only if no image could be read).

    Stages are found through the 'mammo.stages' entry points; a stage that is not installed or
    has no model under --models is skipped with a note. Per stage, the architecture with the
    best validation metric on its model cards is used, its folds averaged.

    Examples: mammo run scan.dcm --models models --out overlay.png;
    mammo run scans/ 'more/**/*.dcm' --models models --out-dir results --seg
    """
    from mammo_common.errors import EXIT_INTERRUPTED, ConfigError

    size = _size(work_size) or (640, 640)
    if out_dir is None:
        one = Path(paths[0])
        if len(paths) > 1 or not one.is_file():
            what = "several inputs" if len(paths) > 1 else (
                "a folder" if one.is_dir() else "an input that is not a file")
            raise ConfigError(
                f"{what} given without --out-dir", path=None if len(paths) > 1 else one,
                field="--out-dir", fix="add --out-dir DIR for a batch (overlays, results.csv, "
                "SEG files), or pass one mammogram file",
            )
        for flag, value in (("--seg", seg), ("--overwrite", overwrite),
                            ("--for-processing", for_processing)):
            if value:
                raise ConfigError(f"{flag} is for batches", field=flag,
                                  fix="add --out-dir DIR, or leave it out")
        _print_one(one, models, out=out, json_out=json_out, work_size=size)
        return
    if out is not None or json_out is not None:
        raise ConfigError(
            "--out/--json are for one image", field="--out/--json",
            fix="with --out-dir the overlays go to DIR/overlays and the results to "
            "DIR/results.csv and DIR/results.json; leave --out/--json out",
        )
    from mammo_common.oneshot_batch import BatchRunConfig, run_batch

    result = run_batch(BatchRunConfig(inputs=paths, models=models, out_dir=out_dir, seg=seg,
                                      work_size=size, overwrite=overwrite,
                                      for_processing=for_processing))
    _print_batch(result)
    if result.interrupted:
        raise typer.Exit(EXIT_INTERRUPTED)


def _print_one(
    image: Path, models: Path, *, out: Path | None, json_out: Path | None,
    work_size: tuple[int, int],
) -> None:
    """``mammo run FILE``: run it and print the masses, the diagnosis and the notes."""
    from mammo_common.oneshot import run_file

    case = run_file(image, models, out=out, json_out=json_out, work_size=work_size)
    diag = case.diagnosis
    table = Table(title=f"{image.name}: {', '.join(case.stages_run) or 'no stage ran'}")
    for col in ("mass", "box (y0, x0, y1, x1)", "area (px)", "P(malignant)", "label"):
        table.add_column(col)
    for mass in case.masses:
        prob = "n/a" if mass.probability is None else f"{mass.probability:.3f}"
        area = int(case.native_mask(mass).sum())
        table.add_row(f"#{mass.index}", str(case.native_bbox(mass.bbox)), str(area), prob,
                      mass.label or "not classified")
    console.print(table)
    verdict = diag["label"].replace("_", " ")
    if diag["probability"] is not None:
        verdict += f" (most malignant mass p={diag['probability']:.3f}, threshold {case.threshold})"
    console.print(f"diagnosis: [bold]{verdict}[/]", highlight=False)
    for note in case.notes:
        console.print(f"[yellow]note:[/] {note}", highlight=False)
    for path in (out, json_out):
        if path is not None:
            console.print(f"wrote {path}")


def _print_batch(result: BatchRunResult, limit: int = 20) -> None:
    """The batch's images (the first ``limit``), notes, failures and outputs."""
    from mammo_common.ingest.report import format_skipped

    images = result.images
    if images:
        table = Table(title=f"mammo run: {', '.join(result.stages_run) or 'no stage'}")
        for col in ("image", "masses", "diagnosis", "P(malignant)", "s"):
            table.add_column(col)
        for img in images[:limit]:
            prob = "" if img.probability is None else f"{img.probability:.3f}"
            table.add_row(img.source_path, str(img.n_masses), img.label.replace("_", " "), prob,
                          f"{img.seconds:.1f}")
        if len(images) > limit:
            table.add_row(f"... and {len(images) - limit} more (results.csv)", "", "", "", "")
        console.print(table)
    steady = [img.seconds for img in images[1:]]
    pace = f"; {sum(steady) / len(steady):.2f} s per image after the first" if steady else ""
    console.print(
        f"{len(images)} of {result.n_found} image(s) done in {result.seconds:.1f} s{pace}: "
        f"{result.n_masses} mass(es), {result.n_malignant_cases} malignant case(s); "
        f"{result.model_loads} model folder(s) loaded once",
        highlight=False,
    )
    for note in result.notes:
        console.print(f"[yellow]note:[/] {note}", highlight=False)
    image_notes = [(img.source_path, note) for img in images for note in img.notes]
    for source, note in image_notes[:limit]:
        console.print(f"[yellow]note:[/] {source}: {note}", highlight=False)
    if len(image_notes) > limit:
        console.print(f"[yellow]note:[/] ... and {len(image_notes) - limit} more notes "
                      "(results.json: metadata.images)", highlight=False)
    if result.failed:
        console.print(f"[yellow]not used ({len(result.failed)}):[/]\n"
                      + format_skipped(result.failed, limit=50), highlight=False)
    if result.csv is not None:
        seg = f", {result.n_seg} SEG file(s) in {result.out_dir / 'seg'}" if result.n_seg else ""
        console.print(f"wrote {result.csv}, {result.json_out}, {len(images)} overlay(s) in "
                      f"{result.out_dir / 'overlays'}{seg}", highlight=False)
    if result.interrupted:
        console.print(f"[yellow]interrupted[/] after {len(images)} of {result.n_found} "
                      "image(s): the finished images' overlays, SEG files and results were kept; "
                      "the image being processed left nothing", highlight=False)


@app.command("results")
@handle_errors
def results_cmd(
    diagnosis: Annotated[
        Path, typer.Argument(help="diagnosis store (from massclass predict).")
    ],
    out_dir: Annotated[
        Path | None,
        typer.Option(help="Folder for results.csv and results.json."),
    ] = None,
    csv_out: Annotated[
        Path | None, typer.Option("--csv", help="CSV to write [OUT_DIR/results.csv].")
    ] = None,
    json_out: Annotated[
        Path | None, typer.Option("--json", help="JSON to write [OUT_DIR/results.json].")
    ] = None,
    masses: Annotated[
        Path | None,
        typer.Option(help="masses store the diagnosis was predicted from [its recorded parent]."),
    ] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace existing outputs.")] = False,
) -> None:
    """Write the cascade's findings as a table: one row per mass and one per case, in the
    native image's pixels and millimetres.

    Mass rows: case id, patient, source file, SOPInstanceUID (DICOM inputs), mass index,
    bounding box, centroid and area in native pixels and (when the pixel spacing is known) mm,
    mean and max mass probability of segmentation, malignancy probability and label. Case rows:
    the most malignant mass, or label no_mass_found. The JSON holds the same rows plus the
    stores, model ids and thresholds used. Works on unlabelled images: nothing here needs
    ground truth.

    Example: mammo results data/diagnosis.zarr --out-dir results
    """
    from mammo_common.results import ResultsConfig, write_results

    config = ResultsConfig(diagnosis=diagnosis, out_dir=out_dir, csv=csv_out, json_out=json_out,
                           masses=masses, overwrite=overwrite)
    result = write_results(config)
    console.print(
        f"wrote {result.csv} and {result.json_out}: {result.n_cases} cases, "
        f"{result.n_masses} masses, {result.n_malignant_cases} malignant case(s), "
        f"{result.n_no_mass_found} with no mass found (masks from {result.masses})",
        highlight=False,
    )


@app.command("schema")
@handle_errors
def schema_cmd(
    out_dir: Annotated[Path, typer.Argument(help="Folder for the *.schema.json files.")] = Path(
        "docs/schema"
    ),
) -> None:
    """Export the JSON Schema of every data-contract model (stores, case record, splits, model
    card).

    Example: mammo schema docs/schema
    """
    from mammo_common.json_schema import export_json_schemas

    for path in export_json_schemas(out_dir):
        console.print(f"wrote {path}")


if __name__ == "__main__":  # pragma: no cover
    app()
