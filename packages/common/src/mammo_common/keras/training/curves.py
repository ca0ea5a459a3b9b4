"""Training curves in DVCLive's format, beside the training harness's ``history.csv``.

:func:`write_curves` turns per-epoch history rows (the rows of ``history.csv``) into a DVCLive
folder, ``<folder>/dvclive/``:

* ``dvclive/plots/metrics/<name>.tsv``: one file per logged quantity (``loss``, ``val_loss``,
  the metrics and their ``val_`` twins, ``lr``), columns ``step`` and ``<name>``, one row per
  epoch; ``step`` is the *global* 1-based epoch of the row (``history.csv``'s ``epoch``
  column, which counts across the phases of a multi-phase training);
* ``dvclive/metrics.json``: the last epoch's values and its ``step``.

The training harness (:func:`~mammo_common.keras.training.harness.fit_resumable`) rewrites it after
every epoch in its working folder (``out_dir/dvclive``, beside the working ``history.csv``), so
a run can be watched while it trains (``dvc plots show <work>/dvclive/plots/metrics``, or
DVC's VS Code extension). The values are ``history.csv``'s exactly; the folder is rebuilt
from all rows each time (staged under a temporary name and renamed into place), so a resumed
run's curves hold each epoch once. The working folder goes when training ends; the finished
model folder gets its own ``dvclive/``, rebuilt from its ``history.csv``
(:func:`mammo_common.keras.deployment.model_folder.save_model_folder`), whose ``metrics.json`` the
pipeline's ``dvc.yaml`` declares as metrics (``dvc metrics show``, ``dvc exp show``) beside the
``history.csv`` curves it plots; ``write_history_csv(..., curves=True)`` or
:func:`write_curves` adds ``dvclive/`` to any folder.

The logger is :class:`dvclive.Live` with its repository side switched off: it writes files
under ``dvclive/`` and nothing else. It never opens (nor initialises) a DVC repository,
never writes a ``dvc.yaml``, never saves a DVC experiment, writes no report and never posts to
DVC Studio (no network). The pipeline's curves and training metrics are declared once, in
the repository's ``dvc.yaml`` (docs/pipeline.md).

Example:
    >>> write_curves("models/breastseg/unet5l/fold_1", rows)  # doctest: +SKIP
    >>> read_curves("models/breastseg/unet5l/fold_1")["val_loss"]  # doctest: +SKIP
    [(1, 0.47), (2, 0.26), ...]
"""

from __future__ import annotations

import contextlib
import csv
import json
import logging
import math
import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = ["CURVES_DIR", "NOT_CURVES", "curve_names", "read_curves", "read_summary", "write_curves"]

logger = logging.getLogger("mammo")

#: The DVCLive folder's name inside a model (or training work) folder.
CURVES_DIR = "dvclive"
#: ``history.csv`` columns that are bookkeeping, not curves (``epoch`` becomes the step).
NOT_CURVES = frozenset({"epoch", "seconds", "phase", "phase_name", "phase_epoch"})

_warned_missing = False


def curve_names(history: Sequence[Mapping[str, Any]]) -> list[str]:
    """The quantities of ``history`` that are logged as curves, in first-seen order."""
    names: list[str] = []
    for row in history:
        for key, value in row.items():
            if key in NOT_CURVES or key in names or isinstance(value, str):
                continue
            names.append(key)
    return names


@contextlib.contextmanager
def _studio_offline() -> Iterator[None]:
    """``DVC_STUDIO_OFFLINE=true`` while a logger is created (a second guard against posting)."""
    key = "DVC_STUDIO_OFFLINE"
    previous = os.environ.get(key)
    os.environ[key] = "true"
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = previous


def _local_live(directory: Path) -> Any:
    """A :class:`dvclive.Live` writing into ``directory`` only (see the module docs)."""
    from dvclive import Live

    class _LocalLive(Live):  # type: ignore[misc]
        def _init_dvc(self) -> None:
            # no repository: nothing opened or initialised, no experiment, no VS Code signal
            self._dvc_repo = None
            self._save_dvc_exp = False

        def _init_studio(self) -> None:
            self._dvc_studio_config = {}
            self._studio_events_to_skip.update({"start", "data", "done"})

    with _studio_offline():
        return _LocalLive(
            dir=str(directory), resume=False, report=None, save_dvc_exp=False, dvcyaml=None,
            monitor_system=False,
        )


def _log_rows(directory: Path, history: Sequence[Mapping[str, Any]]) -> None:
    live = _local_live(directory)
    for row in history:
        if "epoch" not in row:
            continue
        live.step = int(row["epoch"])
        for name in curve_names([row]):
            value = float(row[name])
            live.log_metric(name, value if math.isfinite(value) else str(value))
    live.make_summary()


def write_curves(folder: str | Path, history: Sequence[Mapping[str, Any]]) -> Path | None:
    """Writes ``history``'s curves as ``<folder>/dvclive`` (replacing an existing one).

    Args:
        folder: The folder holding (or about to hold) ``history.csv``.
        history: Per-epoch rows with a 1-based ``epoch`` (the step) and the logged values;
            ``seconds`` and the phase bookkeeping columns are left out.

    Returns:
        The DVCLive folder, or None when DVCLive is not installed (warned once; the
        training itself does not depend on it).
    """
    global _warned_missing
    try:
        import dvclive  # noqa: F401
    except ImportError:
        if not _warned_missing:
            logger.warning(
                "dvclive is not installed: no training curves in DVCLive's format "
                "(history.csv is written); `pip install 'dvclive>=3.40'`"
            )
            _warned_missing = True
        return None
    from mammo_common.store.atomic import atomic_path

    final = Path(folder) / CURVES_DIR
    with atomic_path(final) as tmp:
        _log_rows(tmp, history)
    return final


def read_curves(folder: str | Path) -> dict[str, list[tuple[int, float]]]:
    """Reads ``<folder>/dvclive/plots/metrics/*.tsv`` back: ``{name: [(step, value), ...]}``."""
    metrics = Path(folder) / CURVES_DIR / "plots" / "metrics"
    curves: dict[str, list[tuple[int, float]]] = {}
    for tsv in sorted(metrics.rglob("*.tsv")):
        name = tsv.relative_to(metrics).with_suffix("").as_posix()
        with open(tsv, newline="", encoding="utf-8") as fh:
            rows = list(csv.DictReader(fh, delimiter="\t"))
        curves[name] = [(int(r["step"]), float(r[name])) for r in rows]
    return curves


def read_summary(folder: str | Path) -> dict[str, Any]:
    """Reads ``<folder>/dvclive/metrics.json`` (the last epoch's values and ``step``)."""
    path = Path(folder) / CURVES_DIR / "metrics.json"
    return json.loads(path.read_text(encoding="utf-8"))
