"""Read a training ``history.csv`` (one row per epoch), without Keras.

The training harness (:func:`mammo_common.keras.training.harness.write_history_csv`) writes the
file in every model folder: ``epoch`` (1-based, counting across the phases of a multi-phase
training), ``loss``, the metrics, their ``val_`` twins, ``lr``, ``seconds`` and, for massclass's
phases, ``phase``/``phase_name``/``phase_epoch``. The report, the CV summary, the resume logic and
the DVC plots all read it through this module, so there is one reader; it needs only the standard
library, so ``mammo report`` works without Keras.
"""

from __future__ import annotations

import csv
from pathlib import Path

__all__ = ["read_history", "read_history_rows", "read_phase_names"]


def _value(key: str, text: str) -> int | float | str:
    if key == "epoch":
        return int(float(text))
    try:
        return float(text)
    except ValueError:
        return text


def _read(path: str | Path) -> tuple[list[str], list[dict[str, int | float | str]]]:
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        raw = list(reader)
        names = [n for n in (reader.fieldnames or []) if n]
    rows = [{k: _value(k, v) for k, v in row.items() if k and v not in ("", None)} for row in raw]
    return names, rows


def read_history_rows(path: str | Path) -> list[dict[str, int | float | str]]:
    """The rows of ``path``: ``epoch`` an int, numbers as floats, text (``phase_name``) as is.

    An empty cell (a value that epoch did not have) is left out of its row.
    """
    return _read(path)[1]


def read_history(path: str | Path) -> dict[str, list[float]]:
    """The columns of ``path`` as floats, one value per epoch (text and empty cells -> NaN)."""
    names, rows = _read(path)
    nan = float("nan")
    return {
        name: [float(v) if isinstance((v := row.get(name)), (int, float)) else nan for row in rows]
        for name in names
    }


def read_phase_names(path: str | Path) -> list[str]:
    """The phase names of a multi-phase ``history.csv`` (``phase_name`` column), in order."""
    names = [str(row.get("phase_name", "")) for row in read_history_rows(path)]
    return [n for i, n in enumerate(names) if n and (i == 0 or names[i - 1] != n)]
