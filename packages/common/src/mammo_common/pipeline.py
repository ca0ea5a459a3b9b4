"""Run the whole DVC pipeline and print the headline table (``python3 dev.py pipeline``).

Steps: write the embedded synthetic dataset to ``data/raw`` if it is missing (what
``data.dvc`` tracks), run ``dvc repro`` (which runs only what changed), then print breast Dice,
mass Dice/IoU/AUC and classification accuracy/AUC from the metrics files.

Usage: ``python -m mammo_common.pipeline [--full] [DVC REPRO ARGS...]``. ``--full`` first copies
``params-full.yaml`` (the reference's full protocol, for a GPU) over ``params.yaml``.
"""

from __future__ import annotations

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


def main(argv: list[str]) -> int:
    """Synthesise data if needed, ``dvc repro``, print the headline."""
    root = Path.cwd()
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
