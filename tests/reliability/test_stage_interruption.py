"""Stage commands killed with SIGKILL leave nothing that passes for a finished output.

``breastseg predict``, ``massseg predict`` and ``massseg train`` run as real subprocesses
(``python -m <stage>.cli ...``) and are killed with SIGKILL in the middle of their work. A
``sitecustomize`` on ``PYTHONPATH`` (see ``reliability_helpers.SITECUSTOMIZE``) delays each
written case, or each training batch, so that the kill lands mid-run on any machine without a
large dataset. Then:

* predict: the output path is absent (or, with ``--overwrite``, still holds the previous store,
  byte for byte); the staging folder left behind is no valid store; a rerun completes, writes
  the same bytes as an uninterrupted run and removes the stale temporary;
* train: the rerun resumes from the last checkpoint (epoch 1), runs each epoch once and, with
  deterministic training, ends with the same weights as an uninterrupted run.
"""

from __future__ import annotations

import csv
import os
import shutil
import signal
import subprocess
from pathlib import Path

import pytest
from conftest import TINY, massseg_train_args
from reliability_helpers import (
    assert_same_weights,
    hidden_siblings,
    invoke,
    staging,
    start,
    tree_digest,
    wait_for,
)

from mammo_common.errors import StoreError
from mammo_common.store import open_store

pytestmark = pytest.mark.skipif(os.name != "posix", reason="needs POSIX signals")


def n_staged_cases(final: Path) -> int:
    """Cases whose image chunk the staging store of ``final`` holds (``images/c/<i>``)."""
    tmp = staging(final)
    chunks = tmp[0] / "images" / "c" if tmp else None
    return sum(1 for _ in chunks.iterdir()) if chunks is not None and chunks.is_dir() else 0


def kill(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL


def assert_stale_staging_is_no_store(final: Path) -> None:
    stale = staging(final)
    assert len(stale) == 1, f"the kill landed mid-run, its staging folder stays: {stale}"
    with pytest.raises(StoreError):
        open_store(stale[0])


def test_sigkill_during_breastseg_predict(mammograms: Path, breast_store: Path,
                                          tmp_path: Path) -> None:
    from breastseg.cli import app

    final = tmp_path / "out" / "breast.zarr"
    args = ["predict", "--method", "threshold", "--data", mammograms, "--out", final,
            "--output-size", TINY]
    proc = start(tmp_path, "breastseg", *args, throttle="writer")
    wait_for(proc, lambda: n_staged_cases(final) >= 2)
    kill(proc)
    assert not final.exists(), "a killed predict must not leave the final store"
    with pytest.raises(StoreError, match="does not exist"):
        open_store(final)
    assert_stale_staging_is_no_store(final)

    invoke(app, *args)
    assert len(open_store(final, "breast", deep=True)) == len(open_store(mammograms))
    assert staging(final) == [], "the rerun removes the stale temporary"
    assert sorted(p.name for p in final.parent.iterdir()) == ["breast.zarr"]
    # the fixture ran the same arguments (another output path) uninterrupted
    assert tree_digest(final) == tree_digest(breast_store), "rerun equals an uninterrupted run"


def test_sigkill_during_massseg_predict_overwrite_keeps_the_old_store(
    breast_store: Path, massseg_model: Path, masses_store: Path, tmp_path: Path
) -> None:
    from massseg.cli import app

    final = tmp_path / "out" / "masses.zarr"
    shutil.copytree(masses_store, final)  # the previous output of the same arguments
    before = tree_digest(final)
    args = ["predict", "--model", massseg_model, "--data", breast_store, "--out", final,
            "--threshold", 0.3, "--min-object-pixels", 2, "--overwrite"]
    proc = start(tmp_path, "massseg", *args, throttle="writer")
    wait_for(proc, lambda: n_staged_cases(final) >= 2)
    kill(proc)
    assert tree_digest(final) == before, "the previous store is untouched"
    open_store(final, "masses", deep=True)
    assert_stale_staging_is_no_store(final)

    invoke(app, *args)
    assert hidden_siblings(final) == [], "no staging or replaced store is left"
    assert tree_digest(final) == before, "the rerun writes the same bytes"


def test_sigkill_during_massseg_train_resumes(
    breast_store: Path, splits: Path, deterministic_params: Path, massseg_reference: Path,
    tmp_path: Path,
) -> None:
    from massseg.cli import app

    out = tmp_path / "models" / "massseg" / "unet5l" / "fold_1"
    args = massseg_train_args(breast_store, splits, out, deterministic_params)
    state = out.parent / f".{out.name}.training" / "checkpoint" / "state.json"
    proc = start(tmp_path, "massseg", *args, throttle="dataset")
    wait_for(proc, state.is_file, timeout=180)  # epoch 1 is checkpointed: kill during epoch 2
    kill(proc)
    assert not out.exists(), "an interrupted training leaves no model folder"

    result = invoke(app, *args)
    assert "resumed after epoch 1" in result.output, result.output
    with (out / "history.csv").open() as f:
        epochs = [int(float(row["epoch"])) for row in csv.DictReader(f)]
    assert epochs == [1, 2], "each epoch appears once in the history"
    assert hidden_siblings(out) == [], "the working folder is removed"
    assert_same_weights(out, massseg_reference)
