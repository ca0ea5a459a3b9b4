"""Run the whole DVC pipeline and print the headline table (``python3 dev.py pipeline``).

Steps: write the embedded synthetic dataset to ``data/raw`` if it is missing (what
``data.dvc`` tracks), run ``dvc repro`` (which runs only what changed), then print breast Dice,
mass Dice/IoU/AUC and classification accuracy/AUC from the metrics files.

Usage: ``python -m mammo_common.pipeline [--full [--smoke [SMOKE OPTIONS]]] [DVC REPRO ARGS...]``.
``--full`` first copies ``params-full.yaml`` (the reference's full protocol, for a GPU) over
``params.yaml``. ``--full --smoke`` instead runs the full protocol's smoke run in a folder of its
own (:mod:`mammo_common.full_smoke`; the checkout's params, data, lock, models and metrics are
left alone): every network, fold and classifier at the reference's sizes, one epoch of one step
each, on 32 synthetic 4000x3000 16-bit DICOM mammograms. Its options: ``--smoke-dir DIR``
(default ``.smoke-full``), ``--smoke-folds N`` (the first N folds of each network and
classifier), ``--smoke-jobs N`` (run N entries of a training matrix at once, 1),
``--smoke-cases N`` (synthetic patients, 12), ``--smoke-size ROWSxCOLS``
(4000x3000), ``--smoke-results PATH`` (the measurements, default ``DIR/full_smoke.json``).
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import subprocess
import sys
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

console = Console(soft_wrap=True)

#: Headline rows: label -> (metrics file, candidate keys in order of preference).
HEADLINE: list[tuple[str, str, tuple[str, ...]]] = [
    ("breast Dice", "metrics/breastseg.json", ("dice_mean", "dice")),
    ("breast Jaccard", "metrics/breastseg.json", ("jaccard_mean", "jaccard")),
    ("mass Dice", "metrics/massseg.json", ("dice_mean", "mean_dice", "dice")),
    ("mass IoU", "metrics/massseg.json", ("jaccard_mean", "mean_jaccard", "iou_mean", "jaccard")),
    ("mass pixel AUC", "metrics/massseg.json", ("auc_mean", "mean_auc", "pixel_auc_mean", "auc")),
    ("classification accuracy", "metrics/massclass.json", ("case.accuracy", "accuracy")),
    ("classification ROC AUC", "metrics/massclass.json", ("case.roc_auc", "roc_auc")),
    ("classification ROC AUC 95% CI", "metrics/massclass.json", ("case.roc_auc_ci",)),
]


def _dotted(data: dict, key: str) -> object:
    node: object = data
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def headline(root: Path = Path(".")) -> list[tuple[str, str, str]]:
    """(label, value, source) rows from the metrics files present under ``root``."""
    rows = []
    cache: dict[str, dict] = {}
    for label, rel, keys in HEADLINE:
        path = root / rel
        if rel not in cache:
            try:
                cache[rel] = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, json.JSONDecodeError):
                cache[rel] = {}
        data = cache[rel]
        value = next((v for v in (_dotted(data, k) for k in keys) if v is not None), None)
        if isinstance(value, int | float) and not (isinstance(value, float) and math.isnan(value)):
            text = f"{value:.3f}"
        elif isinstance(value, list) and len(value) == 2 and all(
            isinstance(v, int | float) for v in value
        ):
            text = f"{value[0]:.3f}-{value[1]:.3f}"
        else:
            text = "n/a"
        rows.append((label, text, rel))
    return rows


def print_headline(root: Path = Path(".")) -> None:
    """Print the headline table."""
    table = Table("metric (test cases)", "value", "from", title="mammo pipeline: headline")
    for row in headline(root):
        table.add_row(*row)
    console.print(table)


def _smoke_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dev.py pipeline --full --smoke", add_help=False)
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--smoke-dir", type=Path, default=None)
    parser.add_argument("--smoke-folds", type=int, default=None)
    parser.add_argument("--smoke-jobs", type=int, default=1)
    parser.add_argument("--smoke-cases", type=int, default=None)
    parser.add_argument("--smoke-size", default=None)
    parser.add_argument("--smoke-results", type=Path, default=None)
    return parser


def _smoke(root: Path, argv: list[str]) -> int:
    """``--full --smoke``: the full protocol's smoke run (mammo_common.full_smoke)."""
    from mammo_common import full_smoke

    opts, rest = _smoke_parser().parse_known_args(argv)
    size = full_smoke.SMOKE_SIZE
    if opts.smoke_size:
        parts = opts.smoke_size.lower().split("x")
        if len(parts) != 2 or not all(p.isdigit() for p in parts):
            console.print(f"[red]--smoke-size {opts.smoke_size!r} is not ROWSxCOLS "
                          "(e.g. 4000x3000)[/]")
            return 2
        size = (int(parts[0]), int(parts[1]))
    if opts.smoke_folds is not None and not 1 <= opts.smoke_folds <= 5:
        console.print(f"[red]--smoke-folds {opts.smoke_folds} must be 1 to 5[/]")
        return 2
    if opts.smoke_jobs < 1:
        console.print(f"[red]--smoke-jobs {opts.smoke_jobs} must be at least 1[/]")
        return 2
    work = opts.smoke_dir or root / full_smoke.SMOKE_DIR
    console.rule(f"full-protocol smoke run in {work}")
    try:
        code = full_smoke.run_smoke(
            root, work, cases=opts.smoke_cases or full_smoke.SMOKE_CASES, size=size,
            folds=opts.smoke_folds, jobs=opts.smoke_jobs, repro_args=rest,
            results=opts.smoke_results,
        )
    except (ValueError, RuntimeError) as exc:  # the workspace could not be set up
        console.print(f"[red]smoke run stopped before its stages: {exc}[/] "
                      "(--smoke-dir names the run's own folder, default .smoke-full)")
        return 2
    results = opts.smoke_results or Path(work).resolve() / "full_smoke.json"
    record = json.loads(results.read_text(encoding="utf-8"))
    table = Table("stage", "seconds", "peak RSS (MiB)", "exit", title="smoke run: stages")
    for row in record["stages"]:
        table.add_row(row["stage"], f"{row['seconds']:.0f}", f"{row['peak_rss_mib']:.0f}",
                      str(row["exit_code"]))
    console.print(table)
    print_headline(Path(work))
    verdict = "[green]passed[/]" if code == 0 else f"[red]failed (exit {code})[/]"
    console.print(f"smoke run {verdict} in {record.get('total_seconds', 0):.0f} s; "
                  f"measurements: {results}")
    return code


def main(argv: list[str]) -> int:
    """Synthesise data if needed, ``dvc repro``, print the headline."""
    root = Path.cwd()
    if any(a == "--smoke" or a.startswith("--smoke-") for a in argv):
        if "--full" not in argv:
            console.print("[red]--smoke cuts the full protocol: run `python3 dev.py pipeline "
                          "--full --smoke`[/]")
            return 2
        if "--smoke" not in argv:
            console.print("[red]--smoke-* options need --smoke[/]")
            return 2
        return _smoke(root, [a for a in argv if a != "--full"])
    if "--full" in argv:
        argv = [a for a in argv if a != "--full"]
        shutil.copyfile(root / "params-full.yaml", root / "params.yaml")
        console.print("[bold]params-full.yaml copied over params.yaml[/] (reference protocol)")
    start = time.perf_counter()
    if not (root / "data" / "raw").exists():
        console.rule("synthesising data/raw (mammo synth, default arguments)")
        code = subprocess.call([sys.executable, "-m", "mammo_common.cli", "synth", "data/raw"])
        if code:
            return code
    console.rule("dvc repro")
    code = subprocess.call(["dvc", "repro", *argv])
    if code:
        console.print(f"[red]dvc repro failed (exit {code})[/]")
        return code
    print_headline(root)
    console.print(
        f"finished in {time.perf_counter() - start:.0f} s; report: reports/index.html; "
        "`dvc metrics show`, `dvc plots show` for more"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
