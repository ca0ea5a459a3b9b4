"""The one history.csv reader: rows, columns and phase names, without Keras."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

from mammo_common.history import read_history, read_history_rows, read_phase_names

CSV = (
    "epoch,phase,phase_name,phase_epoch,loss,val_loss,lr\n"
    "1,1,head,1,0.9,0.8,0.001\n"
    "2,1,head,2,0.7,,0.001\n"
    "3,2,all,1,0.5,0.6,1e-05\n"
)


def test_rows_columns_and_phases(tmp_path: Path) -> None:
    path = tmp_path / "history.csv"
    path.write_text(CSV)
    rows = read_history_rows(path)
    assert [r["epoch"] for r in rows] == [1, 2, 3] and isinstance(rows[0]["epoch"], int)
    assert rows[0]["phase_name"] == "head" and rows[2]["lr"] == 1e-5
    assert "val_loss" not in rows[1]  # an empty cell is left out of its row
    cols = read_history(path)
    assert list(cols) == ["epoch", "phase", "phase_name", "phase_epoch", "loss", "val_loss", "lr"]
    assert cols["loss"] == [0.9, 0.7, 0.5] and math.isnan(cols["val_loss"][1])
    assert all(math.isnan(v) for v in cols["phase_name"])  # text is no number
    assert read_phase_names(path) == ["head", "all"]


def test_reader_and_plots_import_no_keras(tmp_path: Path) -> None:
    """The reader imports no Keras (``mammo report`` runs without it)."""
    code = (
        "import sys, mammo_common.history, mammo_common.plots\n"
        "assert 'keras' not in sys.modules and 'tensorflow' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
