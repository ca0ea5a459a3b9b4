"""The ``massseg`` command through Typer's CliRunner: help, bad input, evaluate (no training).

Every bad input must end in one clear message, a non-zero exit code and no output written.
The commands that need trained models are exercised in ``test_training.py``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fixtures_stores import make_splits_for, write_breast_store, write_masses_like
from typer.testing import CliRunner

from mammo_common.schema.model_card import ModelCard
from massseg.cli import app

runner = CliRunner()


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("cli")
    breast = root / "breast.zarr"
    ids = write_breast_store(breast, 8, seed=5)
    make_splits_for(ids, n_test=2, n_folds=2).save(root / "splits.json")
    write_masses_like(root / "masses.zarr", breast)
    return {"breast": breast, "splits": root / "splits.json", "masses": root / "masses.zarr"}


def _card_folder(folder: Path, shape: tuple[int, int, int]) -> Path:
    folder.mkdir(parents=True)
    card = ModelCard(stage="massseg", package="mammo-massseg", package_version="0.1.0",
                     architecture="unet5l", model_id="massseg/unet5l/fold_1", input_shape=shape)
    (folder / "model_card.json").write_text(card.to_json())
    return folder


@pytest.mark.parametrize("command",
                         ["train", "cv", "predict", "evaluate", "models", "refit-fp"])
def test_help_teaches(command: str) -> None:
    result = runner.invoke(app, [command, "--help"])
    assert result.exit_code == 0, result.output
    assert "Example" in result.output and "massseg" in result.output


def test_top_level_help_lists_commands() -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in ("models", "train", "cv", "predict", "evaluate", "refit-fp"):
        assert command in result.output


def _fails(args: list[str], *needles: str) -> str:
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    text = " ".join(result.output.split())
    assert "error" in text and "Traceback" not in text
    for needle in needles:
        assert needle in text, text
    return text


def test_train_refuses_a_wrong_kind_store(data: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "fold_1"
    _fails(["train", "--arch", "unet5l", "--data", str(data["masses"]), "--splits",
            str(data["splits"]), "--fold", "1", "--out", str(out)], "'masses' store", "Fix")
    assert not out.exists()


def test_train_refuses_a_missing_fold(data: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "fold_7"
    _fails(["train", "--arch", "unet5l", "--data", str(data["breast"]), "--splits",
            str(data["splits"]), "--fold", "7", "--out", str(out)], "no fold 7")
    assert not out.exists()


def test_params_typo_is_reported(data: dict[str, Path], tmp_path: Path) -> None:
    params = tmp_path / "params.yaml"
    params.write_text("massseg:\n  train:\n    arch: unet5l\n    batchsize: 4\n")
    out = tmp_path / "fold_1"
    _fails(["train", "--params", str(params), "--data", str(data["breast"]), "--splits",
            str(data["splits"]), "--fold", "1", "--out", str(out)], "batchsize", "params.yaml")
    assert not out.exists()
    _fails(["train", "--arch", "unet5l", "--data", str(data["breast"]), "--splits",
            str(data["splits"]), "--fold", "1", "--out", str(out), "--width", "filters"],
           "key=value")
    _fails(["cv", "--arch", "unet5I", "--data", str(data["breast"]), "--splits",
            str(data["splits"]), "--out", str(out)], "unknown network")
    assert not out.exists()


def test_predict_refuses_a_missing_model(data: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "masses.zarr"
    _fails(["predict", "--model", str(tmp_path / "nope"), "--data", str(data["breast"]),
            "--out", str(out)], "does not exist")
    assert not out.exists()
    incomplete = tmp_path / "incomplete"
    incomplete.mkdir()
    _fails(["predict", "--model", str(incomplete), "--data", str(data["breast"]),
            "--out", str(out)], "model_card.json is missing")
    assert not out.exists()


def test_predict_refuses_a_mismatched_ensemble(data: dict[str, Path], tmp_path: Path) -> None:
    a = _card_folder(tmp_path / "a", (64, 64, 1))
    b = _card_folder(tmp_path / "b", (32, 32, 1))
    out = tmp_path / "masses.zarr"
    _fails(["predict", "--model", str(a), "--model", str(b), "--data", str(data["breast"]),
            "--out", str(out)], "cannot ensemble", "input_shape")
    assert not out.exists()


def test_predict_refuses_a_wrong_kind_store_and_existing_output(
    data: dict[str, Path], tmp_path: Path
) -> None:
    a = _card_folder(tmp_path / "a", (64, 64, 1))
    out = tmp_path / "masses.zarr"
    _fails(["predict", "--model", str(a), "--data", str(data["masses"]), "--out", str(out)],
           "'masses' store")
    assert not out.exists()
    _fails(["predict", "--model", str(a), "--data", str(data["breast"]),
            "--out", str(data["masses"])], "already exists", "--overwrite")


def test_evaluate_command(data: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "metrics.json"
    result = runner.invoke(app, ["evaluate", "--data", str(data["masses"]), "--out", str(out),
                                 "--splits", str(data["splits"]), "--part", "test"])
    assert result.exit_code == 0, result.output
    assert json.loads(out.read_text())["dice_mean"] == 1.0
    assert "Dice" in result.output
    bad = tmp_path / "bad.json"
    _fails(["evaluate", "--data", str(data["breast"]), "--out", str(bad)], "'breast' store")
    _fails(["evaluate", "--data", str(data["masses"]), "--out", str(bad), "--part", "test"],
           "splits")
    _fails(["evaluate", "--cv", str(tmp_path), "--out", str(bad)], "no fold")
    assert not bad.exists()


def test_predict_refuses_cards_with_different_thresholds(
    data: dict[str, Path], tmp_path: Path
) -> None:
    a = _card_folder(tmp_path / "a", (64, 64, 1))
    b = _card_folder(tmp_path / "b", (64, 64, 1))
    card = json.loads((b / "model_card.json").read_text())
    (b / "model_card.json").write_text(json.dumps({**card, "threshold": 0.3}))
    out = tmp_path / "masses.zarr"
    _fails(["predict", "--model", str(a), "--model", str(b), "--data", str(data["breast"]),
            "--out", str(out)], "different thresholds", "--threshold")
    assert not out.exists()


def test_predict_refuses_a_model_of_another_stage(data: dict[str, Path], tmp_path: Path) -> None:
    folder = tmp_path / "breast_model"
    folder.mkdir()
    card = ModelCard(stage="breastseg", package="mammo-breastseg", package_version="0.1.0",
                     architecture="unet5l", model_id="breastseg/unet5l/fold_1",
                     input_shape=(64, 64, 1))
    (folder / "model_card.json").write_text(card.to_json())
    out = tmp_path / "masses.zarr"
    _fails(["predict", "--model", str(folder), "--data", str(data["breast"]), "--out", str(out)],
           "breastseg model")
    assert not out.exists()


def test_refit_fp_refuses_bad_input(data: dict[str, Path], tmp_path: Path) -> None:
    common = ["--data", str(data["breast"]), "--splits", str(data["splits"])]
    _fails(["refit-fp", "--model", str(tmp_path / "nope"), *common], "does not exist")
    folder = _card_folder(tmp_path / "fold_1", (64, 64, 1))
    _fails(["refit-fp", "--model", str(folder), *common, "--max-objects", "many"],
           "--max-objects", "auto, none or a number")
    _fails(["refit-fp", "--model", str(folder), *common], "trained on all folds", "fold")
