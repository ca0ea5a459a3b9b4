"""Cross-validation of one network over the folds of ``splits.json``, and the per-fold table.

``massseg cv`` trains fold ``k`` into ``OUT/fold_<k>`` (a complete model folder is reused
unless ``overwrite``; an interrupted one resumes), then summarises every ``fold_<k>`` folder
from its ``history.csv``: the best epoch is the one whose weights were kept (the card's
``training.monitor``: lowest validation loss by default), with its validation Dice; the last epoch's
validation Dice and the number of epochs run are reported beside it, as the reference's
tables do. Mean and sample standard deviation (ddof=1; 0 for one fold) over folds.
"""

from __future__ import annotations

import json
import logging
import math
import re
import statistics
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from mammo_common.errors import ModelFolderError
from mammo_common.store import write_json_atomic, write_text_atomic
from massseg.config import CVConfig

logger = logging.getLogger("mammo")

__all__ = [
    "CVResult",
    "CVSummary",
    "FoldRow",
    "cross_validate",
    "cv_markdown",
    "fold_row",
    "read_history",
    "summarise_cv",
]

_FOLD_DIR = re.compile(r"^fold_(\d+)$")


class FoldRow(BaseModel):
    """One fold's line of the CV table.

    Attributes:
        fold: 1-based fold number.
        best_val_dice: Validation Dice at the best epoch (the kept weights).
        last_val_dice: Validation Dice at the last epoch run.
        max_val_dice: Highest validation Dice of any epoch.
        best_epoch: 1-based best epoch (best ``monitor``: the kept weights).
        epochs_run: Epochs run (early stopping may end before the maximum).
        best_val_loss: Validation loss at the best epoch.
        model_dir: The fold's model folder.
    """

    model_config = ConfigDict(extra="forbid")

    fold: int
    best_val_dice: float
    last_val_dice: float
    max_val_dice: float
    best_epoch: int
    epochs_run: int
    best_val_loss: float
    model_dir: Path


class CVSummary(BaseModel):
    """The CV table of one network: a row per fold and mean +- sd."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    arch: str
    folds: list[FoldRow]
    mean: dict[str, float]
    sd: dict[str, float]

    def flat_metrics(self) -> dict[str, Any]:
        """Flat keys for ``dvc metrics``: ``best_val_dice_mean``, ``fold_1_best_val_dice``..."""
        out: dict[str, Any] = {"arch": self.arch, "n_folds": len(self.folds)}
        for key in _COLUMNS:
            out[f"{key}_mean"] = self.mean[key]
            out[f"{key}_sd"] = self.sd[key]
        for row in self.folds:
            for key in _COLUMNS:
                out[f"fold_{row.fold}_{key}"] = getattr(row, key)
        return out


class CVResult(BaseModel):
    """What ``massseg cv`` did.

    Attributes:
        summary: The CV table.
        trained: Folds trained (or resumed) in this run.
        reused: Folds whose finished model folder was reused.
        json_path: ``OUT/cv.json``.
        markdown_path: ``OUT/cv.md``.
    """

    model_config = ConfigDict(extra="forbid")

    summary: CVSummary
    trained: list[int] = Field(default_factory=list)
    reused: list[int] = Field(default_factory=list)
    json_path: Path
    markdown_path: Path


_COLUMNS = ("best_val_dice", "last_val_dice", "max_val_dice", "best_epoch", "epochs_run")


def read_history(path: str | Path) -> list[dict[str, float]]:
    """Rows of a ``history.csv`` (epoch, loss, val_loss, dice, val_dice, ...) as numbers.

    The file is read by :func:`mammo_common.history.read_history_rows` (``epoch`` an int, the
    other columns floats); a value missing from a row (an empty cell) is NaN here, so every row
    has every column.

    Raises:
        ModelFolderError: If the file is missing, unreadable, empty or lacks
            ``val_loss``/``val_dice``.
    """
    from mammo_common.history import read_history_rows

    path = Path(path)
    if not path.is_file():
        raise ModelFolderError(
            "history.csv is missing", path=path, fix="train the fold with `massseg train`"
        )
    try:
        rows = read_history_rows(path)
    except (ValueError, TypeError) as exc:
        raise ModelFolderError(
            f"history.csv holds a value that is not a number ({exc})", path=path,
            fix="re-train the fold",
        ) from None
    if not rows:
        raise ModelFolderError("history.csv has no epoch", path=path, fix="re-train the fold")
    columns = list(dict.fromkeys(k for row in rows for k in row))
    rows = [{k: row.get(k, math.nan) for k in columns} for row in rows]
    for column in ("val_loss", "val_dice"):
        if column not in rows[0]:
            raise ModelFolderError(
                f"history.csv has no {column!r} column", path=path, fix="re-train the fold"
            )
    return rows


def fold_row(model_dir: str | Path, fold: int, monitor: str | None = None) -> FoldRow:
    """Summarise one fold's model folder from its ``history.csv``.

    Args:
        model_dir: The fold's model folder.
        fold: Its number.
        monitor: The key whose best epoch's weights were kept; default: the card's
            ``training.monitor``, else ``val_loss`` (lowest; ``*dice`` keys: highest).
    """
    model_dir = Path(model_dir)
    rows = read_history(model_dir / "history.csv")
    monitor = monitor or str(_card(model_dir).get("training", {}).get("monitor", "val_loss"))
    sign = -1.0 if "dice" in monitor or "iou" in monitor else 1.0
    values = [r.get(monitor, math.nan) for r in rows]
    finite = [k for k, v in enumerate(values) if not math.isnan(v)]
    best = min(finite, key=lambda k: (sign * values[k], k)) if finite else len(rows) - 1
    dices = [r["val_dice"] for r in rows]
    return FoldRow(
        fold=fold,
        best_val_dice=dices[best],
        last_val_dice=dices[-1],
        max_val_dice=max((d for d in dices if not math.isnan(d)), default=math.nan),
        best_epoch=int(rows[best].get("epoch", best + 1)),
        epochs_run=len(rows),
        best_val_loss=rows[best]["val_loss"],
        model_dir=model_dir,
    )


def _card(model_dir: Path) -> dict[str, Any]:
    """The raw model card (``{}`` when unreadable; the table needs only a few fields)."""
    try:
        card = json.loads((model_dir / "model_card.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return card if isinstance(card, dict) else {}


def _arch_of(model_dir: Path, default: str) -> str:
    return str(_card(model_dir).get("architecture", default))


def summarise_cv(cv_dir: str | Path, folds: list[int] | None = None) -> CVSummary:
    """The CV table of the ``fold_<k>`` model folders in ``cv_dir``.

    Args:
        cv_dir: A network's folder, e.g. ``models/massseg/unet5l``.
        folds: Only these folds (default: every ``fold_<k>`` folder found).

    Raises:
        ModelFolderError: If there is no fold folder, or one lacks its history.
    """
    cv_dir = Path(cv_dir)
    if not cv_dir.is_dir():
        raise ModelFolderError(
            "CV folder does not exist", path=cv_dir, fix="run `massseg cv` or `massseg train` first"
        )
    found = {
        int(m.group(1)): p
        for p in cv_dir.iterdir()
        if p.is_dir() and (m := _FOLD_DIR.match(p.name))
    }
    wanted = sorted(found) if folds is None else sorted(folds)
    missing = [k for k in wanted if k not in found]
    if not wanted or missing:
        raise ModelFolderError(
            f"no fold_<k> model folder{' for folds ' + str(missing) if missing else ''}",
            path=cv_dir,
            fix="point --cv at a network's folder holding fold_1, fold_2, ...",
        )
    rows = [fold_row(found[k], k) for k in wanted]
    mean: dict[str, float] = {}
    sd: dict[str, float] = {}
    for key in _COLUMNS:
        values = [float(getattr(r, key)) for r in rows]
        mean[key] = statistics.fmean(values)
        sd[key] = statistics.stdev(values) if len(values) > 1 else 0.0
    return CVSummary(
        arch=_arch_of(found[wanted[0]], cv_dir.name), folds=rows, mean=mean, sd=sd
    )


def cv_markdown(summary: CVSummary) -> str:
    """The CV table as Markdown (one line per fold, then mean +- sd)."""
    lines = [
        f"# Cross-validation: {summary.arch}",
        "",
        "| fold | best val Dice | last val Dice | max val Dice | best epoch | epochs run |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for r in summary.folds:
        lines.append(
            f"| {r.fold} | {r.best_val_dice:.4f} | {r.last_val_dice:.4f} | "
            f"{r.max_val_dice:.4f} | {r.best_epoch} | {r.epochs_run} |"
        )
    m, s = summary.mean, summary.sd
    lines.append(
        f"| mean +- sd | {m['best_val_dice']:.4f} +- {s['best_val_dice']:.4f} | "
        f"{m['last_val_dice']:.4f} +- {s['last_val_dice']:.4f} | "
        f"{m['max_val_dice']:.4f} +- {s['max_val_dice']:.4f} | "
        f"{m['best_epoch']:.1f} +- {s['best_epoch']:.1f} | "
        f"{m['epochs_run']:.1f} +- {s['epochs_run']:.1f} |"
    )
    lines += ["", "Best epoch = the kept weights' epoch (best monitored value, by default the "
              "lowest validation loss); sd is the sample sd (ddof=1)."]
    return "\n".join(lines) + "\n"


def cross_validate(config: CVConfig) -> CVResult:
    """Train every requested fold of one network, then write ``cv.json`` and ``cv.md``.

    Finished fold folders are reused unless ``config.overwrite``; an interrupted fold resumes
    from its checkpoint. Returns the table.

    Raises:
        MammoError: On bad inputs (store, splits, fold numbers), before any training.
    """
    from massseg.train import is_complete, train, validate_inputs

    splits = validate_inputs(config.fold_config(1) if not config.folds else
                             config.fold_config(config.folds[0]))
    folds = config.folds or [f.index for f in splits.folds]
    bad = [k for k in folds if k > splits.n_folds]
    if bad:
        raise ModelFolderError(
            f"folds {bad} do not exist (the splits have {splits.n_folds})",
            path=config.splits, fix=f"choose folds in 1..{splits.n_folds}",
        )
    trained: list[int] = []
    reused: list[int] = []
    for n, k in enumerate(folds, start=1):
        fold_config = config.fold_config(k)
        if is_complete(fold_config.out) and not config.overwrite:
            logger.info("fold %d (%d of %d): already trained, reused", k, n, len(folds))
            reused.append(k)
            continue
        logger.info("fold %d (%d of %d): training", k, n, len(folds))
        train(fold_config)
        trained.append(k)
    summary = summarise_cv(config.out, folds)
    json_path, md_path = config.out / "cv.json", config.out / "cv.md"
    table = summary.model_dump(mode="json")
    write_json_atomic(json_path, {**summary.flat_metrics(), "table": table})
    write_text_atomic(md_path, cv_markdown(summary))
    return CVResult(
        summary=summary, trained=trained, reused=reused, json_path=json_path, markdown_path=md_path
    )
