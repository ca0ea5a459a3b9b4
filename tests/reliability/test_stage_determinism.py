"""The same arguments give byte-identical stores, and deterministic training identical weights.

Each ``predict`` runs twice with the same arguments (the second run after the first output was
moved away, so the output path is the same too) and a third time with ``--overwrite``: every
file of the three stores has the same bytes. ``breastseg predict`` is checked with both methods
(threshold and the U-Net).

Training: ``breastseg train`` and ``massseg train`` with ``deterministic: true`` (params.yaml;
neither CLI has a flag for it) twice give bit-identical weights. ``massclass train`` has no
deterministic option, so it is not checked.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import TINY, massseg_train_args
from reliability_helpers import assert_same_weights, file_digests, invoke

from breastseg.cli import app as breastseg_app
from massclass.cli import app as massclass_app
from massseg.cli import app as massseg_app


def assert_repeatable(app, args: list[object], out: Path, tmp_path: Path) -> None:
    """Run ``args`` (writing ``out``) twice and once more with ``--overwrite``: same bytes."""
    invoke(app, *args)
    first = file_digests(out)
    assert first, "the store holds files"
    out.rename(tmp_path / "first.zarr")
    invoke(app, *args)
    second = file_digests(out)
    invoke(app, *args, "--overwrite")
    third = file_digests(out)
    for name, other in (("the second run", second), ("the run with --overwrite", third)):
        assert sorted(other) == sorted(first), f"{name} wrote other files"
        differ = [f for f in first if first[f] != other[f]]
        assert differ == [], f"{name} wrote other bytes in {differ}"


@pytest.mark.parametrize("method", ["threshold", "unet"])
def test_breastseg_predict_is_byte_identical(
    method: str, mammograms: Path, breastseg_model: Path, tmp_path: Path
) -> None:
    out = tmp_path / "breast.zarr"
    args = ["predict", "--method", method, "--data", mammograms, "--out", out,
            "--output-size", TINY]
    if method == "unet":
        args += ["--model", breastseg_model]
    assert_repeatable(breastseg_app, args, out, tmp_path)


def test_massseg_predict_is_byte_identical(
    breast_store: Path, massseg_model: Path, tmp_path: Path
) -> None:
    out = tmp_path / "masses.zarr"
    args = ["predict", "--model", massseg_model, "--data", breast_store, "--out", out,
            "--threshold", 0.3, "--min-object-pixels", 2, "--tta"]
    assert_repeatable(massseg_app, args, out, tmp_path)


def test_massclass_predict_is_byte_identical(
    masses_store: Path, massclass_model: Path, tmp_path: Path
) -> None:
    out = tmp_path / "diagnosis.zarr"
    args = ["predict", "--model", massclass_model, "--data", masses_store, "--out", out]
    assert_repeatable(massclass_app, args, out, tmp_path)


def test_deterministic_breastseg_training_gives_identical_weights(
    mammograms: Path, splits: Path, deterministic_params: Path, tmp_path: Path
) -> None:
    folders = [tmp_path / run / "unet5l" / "fold_1" for run in ("a", "b")]
    for out in folders:
        invoke(breastseg_app, "train", "--data", mammograms, "--splits", splits, "--fold", 1,
               "--out", out, "--input-size", TINY, "--filters", 2, "--epochs", 1,
               "--batch-size", 2, "--seed", 3, "--params", deterministic_params)
    assert_same_weights(*folders)


def test_deterministic_massseg_training_gives_identical_weights(
    breast_store: Path, splits: Path, deterministic_params: Path, massseg_reference: Path,
    tmp_path: Path,
) -> None:
    out = tmp_path / "unet5l" / "fold_1"
    invoke(massseg_app, *massseg_train_args(breast_store, splits, out, deterministic_params))
    assert_same_weights(out, massseg_reference)
