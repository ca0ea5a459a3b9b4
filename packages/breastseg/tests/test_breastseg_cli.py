"""The ``breastseg`` command line: help that teaches, clear errors, nothing written on failure."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from breastseg.cli import app
from mammo_common.store import open_store

runner = CliRunner()


def _run(*args: str):
    result = runner.invoke(app, [str(a) for a in args])
    text = result.output + (result.stderr if result.stderr_bytes is not None else "")
    return result, " ".join(text.split())


@pytest.mark.parametrize("command", ["train", "predict", "evaluate"])
def test_help_teaches(command):
    result, text = _run(command, "--help")
    assert result.exit_code == 0
    assert "Example" in text and f"breastseg {command}" in text


def test_version():
    result, text = _run("--version")
    assert result.exit_code == 0 and "mammo-breastseg" in text


def test_train_missing_store(tmp_path, phantom_data):
    _, splits = phantom_data
    out = tmp_path / "model"
    result, text = _run(
        "train", "--data", tmp_path / "nope.zarr", "--splits", splits, "--out", out
    )
    assert result.exit_code == 2
    assert "nope.zarr" in text and "does not exist" in text
    assert not out.exists()


def test_train_wrong_kind_store(tmp_path, phantom_data):
    from breastseg.config import PredictConfig
    from breastseg.predict import predict

    store, splits = phantom_data
    breast = tmp_path / "breast.zarr"
    predict(PredictConfig(method="threshold", data=store, out=breast, output_size=(64, 64)))
    out = tmp_path / "model"
    result, text = _run("train", "--data", breast, "--splits", splits, "--out", out)
    assert result.exit_code == 2
    assert "'breast' store" in text and "mammo ingest" in text
    assert not out.exists()


def test_train_bad_fold(tmp_path, phantom_data):
    store, splits = phantom_data
    out = tmp_path / "model"
    result, text = _run(
        "train", "--data", store, "--splits", splits, "--out", out, "--fold", "9"
    )
    assert result.exit_code == 2
    assert "fold 9 does not exist" in text and "1..3" in text
    assert not out.exists()


def test_train_missing_splits(tmp_path, phantom_data):
    store, _ = phantom_data
    result, text = _run(
        "train", "--data", store, "--splits", tmp_path / "s.json", "--out", tmp_path / "m"
    )
    assert result.exit_code == 2 and "mammo split" in text


def test_train_typo_in_params(tmp_path, phantom_data):
    store, splits = phantom_data
    params = tmp_path / "params.yaml"
    params.write_text("breastseg:\n  train:\n    epoch: 3\n    filters: 4\n")
    out = tmp_path / "model"
    result, text = _run(
        "train", "--data", store, "--splits", splits, "--out", out, "--params", params
    )
    assert result.exit_code == 2
    assert "breastseg.train.epoch" in text and "epochs" in text
    assert not out.exists()


def test_train_bad_input_size(tmp_path, phantom_data):
    store, splits = phantom_data
    result, text = _run(
        "train", "--data", store, "--splits", splits, "--out", tmp_path / "m",
        "--input-size", "100x75",
    )
    assert result.exit_code == 2 and "multiples of 16" in text


def test_train_mask_source_store_without_masks(tmp_path, phantom_data):
    from breastseg_phantoms import write_phantom_store, write_splits

    src = write_phantom_store(tmp_path / "m.zarr", 8, with_breast_masks=False)
    splits = write_splits(src, tmp_path / "s.json", n_folds=2, test_fraction=0.0)
    out = tmp_path / "model"
    result, text = _run(
        "train", "--data", src, "--splits", splits, "--out", out, "--mask-source", "store"
    )
    assert result.exit_code == 2 and "no breast_mask" in text and "auto" in text
    assert not out.exists()


def test_predict_threshold_and_refusals(tmp_path, phantom_data):
    store, _ = phantom_data
    out = tmp_path / "breast.zarr"
    result, text = _run(
        "predict", "--method", "threshold", "--data", store, "--out", out,
        "--output-size", "96x96",
    )
    assert result.exit_code == 0, text
    assert "30 cases" in text and out.is_dir()
    # the output exists now: refused without --overwrite
    result, text = _run("predict", "--method", "threshold", "--data", store, "--out", out)
    assert result.exit_code == 2 and "already exists" in text
    # unet without a model folder
    result, text = _run("predict", "--data", store, "--out", tmp_path / "b2.zarr")
    assert result.exit_code == 2 and "--model" in text
    assert not (tmp_path / "b2.zarr").exists()
    # a model folder that is not one
    empty = tmp_path / "not_a_model"
    empty.mkdir()
    result, text = _run(
        "predict", "--data", store, "--out", tmp_path / "b3.zarr", "--model", empty
    )
    assert result.exit_code == 2 and "model_card.json" in text
    assert not (tmp_path / "b3.zarr").exists()


def test_evaluate_cli(trained_model, phantom_data, tmp_path):
    store, splits = phantom_data
    out = tmp_path / "metrics" / "breastseg.json"
    plot = tmp_path / "plots" / "best_worst.png"
    result, text = _run(
        "evaluate", "--model", trained_model.folder, "--data", store, "--splits", splits,
        "--part", "valid", "--out", out, "--plot", plot,
    )
    assert result.exit_code == 0, text
    metrics = json.loads(out.read_text())
    assert metrics["part"] == "valid" and metrics["fold"] == 1  # fold from the model card
    assert metrics["n_cases"] == trained_model.result.n_valid
    assert plot.is_file() and (tmp_path / "metrics" / "breastseg.cases.json").is_file()
    assert "Dice" in text


def test_evaluate_plot_draws_best_and_worst(tmp_path, phantom_data):
    """The best/worst picture (threshold labeller, no network): a grid of titled panels with
    the reference and the prediction outlined in their colours."""
    import numpy as np
    from PIL import Image

    from mammo_common.viz import COLORS

    store, splits = phantom_data
    plot = tmp_path / "best_worst.png"
    result, text = _run(
        "evaluate", "--method", "threshold", "--reference", "store", "--data", store,
        "--splits", splits, "--part", "test", "--out", tmp_path / "m.json", "--plot", plot,
    )
    assert result.exit_code == 0, text
    with Image.open(plot) as img:
        assert img.format == "PNG" and img.mode in ("RGB", "RGBA")
        assert 200 <= img.width <= 2000 and 300 <= img.height <= 1200  # 2 x 2 panels
        rgb = np.asarray(img)[..., :3].astype(np.int32)
    assert plot.stat().st_size < 400_000
    for key in ("truth", "pred"):
        assert (np.abs(rgb - np.asarray(COLORS[key])).sum(axis=-1) <= 60).sum() > 50, key


def test_evaluate_bad_part(tmp_path, phantom_data):
    store, _ = phantom_data
    result, text = _run(
        "evaluate", "--method", "threshold", "--data", store, "--out", tmp_path / "m.json",
        "--part", "tset",
    )
    assert result.exit_code == 2 and "part" in text
    assert not (tmp_path / "m.json").exists()


def test_model_folder_loads_in_a_fresh_process(trained_model, phantom_data, tmp_path):
    """Keras finds UNet5L only once its module is imported: a new process must manage that."""
    import os
    import subprocess
    import sys

    store, _ = phantom_data
    out = tmp_path / "breast.zarr"
    env = {**os.environ, "KERAS_BACKEND": "tensorflow", "TF_CPP_MIN_LOG_LEVEL": "2",
           "MAMMO_NO_PROGRESS": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "breastseg.cli", "predict", "--model", str(trained_model.folder),
         "--data", str(store), "--out", str(out), "--output-size", "64x64"],
        capture_output=True, text=True, env=env, timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert out.is_dir()
    params = open_store(out, "breast").meta.producer.params
    assert params["precision"] == "float32" and params["batchnorms_folded"] > 0

    half = tmp_path / "breast_bf16.zarr"
    proc = subprocess.run(
        [sys.executable, "-m", "breastseg.cli", "predict", "--model", str(trained_model.folder),
         "--data", str(store), "--out", str(half), "--output-size", "64x64",
         "--precision", "bfloat16", "--no-fold-batchnorm"],
        capture_output=True, text=True, env=env, timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    params = open_store(half, "breast").meta.producer.params
    assert params["precision"] == "bfloat16" and params["batchnorms_folded"] == 0
