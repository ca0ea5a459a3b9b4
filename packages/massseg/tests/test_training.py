"""Tiny trainings on synthetic phantoms: learning, model folders, resume, CV, predict (Keras).

64x64 phantoms (bright blob masses on textured background): 40 training, 8 validation and
16 held-out test images. Networks are CPU-sized (``filters=4``); the Xception encoder of
``unetpp_xception`` cannot shrink, so it trains a few short epochs at 64x64 and is built once
(its graph tracing dominates the cost). Learning rates are raised to 1e-3 for the short runs,
and the kept weights are those of the best validation Dice (``monitor="val_dice"``): in runs
this short the soft Dice loss lags far behind the thresholded Dice.

The untrained score is measured on the very model that is then trained (a callback predicts
the held-out images before the first step), so no network is built twice.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import keras
import numpy as np
import pytest
from fixtures_stores import make_splits_for, write_breast_store
from typer.testing import CliRunner

from mammo_common.keras.training.data import load_arrays
from mammo_common.metrics import dice
from mammo_common.params import load_section
from mammo_common.schema.model_card import read_model_card
from mammo_common.store import open_store
from massseg.cli import app
from massseg.config import EvaluateConfig, PredictConfig, TrainConfig, TrainSettings
from massseg.evaluate import evaluate
from massseg.predict import predict
from massseg.train import is_complete, train, training_dir

runner = CliRunner()

# Keras' TensorFlow backend converts tensors with np.array(x, copy=False) (numpy 2 warns).
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")

N_CASES, N_TEST, N_FOLDS = 64, 16, 6  # fold 1: 40 train, 8 valid; 16 test
MIN_DICE = 0.6
SMALL = {"arch": "unet5l", "arch_options": {"filters": 4}, "batch_size": 4,
         "learning_rate": 1e-3, "early_stopping_patience": None}


class UntrainedProbe(keras.callbacks.Callback):
    """Scores the held-out images once, before the first training step."""

    def __init__(self, x: np.ndarray, y: np.ndarray) -> None:
        super().__init__()
        self.x, self.y = x, y
        self.dice: float | None = None

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        if self.dice is None:
            probs = np.asarray(self.model.predict_on_batch(self.x))[..., 0]
            self.dice = float(np.mean([dice(p, t[..., 0]) for p, t in zip(probs, self.y,
                                                                           strict=True)]))


class Crash(keras.callbacks.Callback):
    """Simulates a crash at the end of the given (1-based) epoch, before its checkpoint."""

    def __init__(self, epoch: int) -> None:
        super().__init__()
        self.epoch = epoch

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        if epoch + 1 == self.epoch:
            raise RuntimeError("simulated crash")


@pytest.fixture(scope="module")
def phantoms(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("train")
    breast = root / "breast.zarr"
    ids = write_breast_store(breast, N_CASES, seed=1)
    splits = make_splits_for(ids, n_test=N_TEST, n_folds=N_FOLDS)
    splits.save(root / "splits.json")
    store = open_store(breast, "breast")
    test_idx = [store.index_of(c) for c in splits.test]
    return {"root": root, "breast": breast, "splits": root / "splits.json",
            "test_idx": test_idx, "store": store}


def _held_out(phantoms: dict[str, Any], channels: int) -> tuple[np.ndarray, np.ndarray]:
    store = phantoms["store"]
    x, y = load_arrays(store.array("images")[...], store.array("mass_masks")[...],
                       phantoms["test_idx"], channels=channels)
    return x, y


def _test_dice(
    phantoms: dict[str, Any], models: list[Path], name: str, **settings: Any
) -> dict[str, Any]:
    root = phantoms["root"]
    masses = root / f"{name}.zarr"
    predict(PredictConfig(models=models, data=phantoms["breast"], out=masses, **settings))
    result = evaluate(EvaluateConfig(data=masses, splits=phantoms["splits"], part="test",
                                     out=root / f"{name}.json"))
    return {"masses": masses, **result.metrics}


@pytest.fixture(scope="module")
def unet5l(phantoms: dict[str, Any]) -> dict[str, Any]:
    probe = UntrainedProbe(*_held_out(phantoms, channels=1))
    out = phantoms["root"] / "unet5l" / "fold_1"
    result = train(TrainConfig(**SMALL, data=phantoms["breast"], splits=phantoms["splits"],
                               fold=1, out=out, epochs=8, monitor="val_dice"),
                   callbacks=[probe])
    metrics = _test_dice(phantoms, [out], "unet5l_fold1")
    return {"result": result, "untrained": probe.dice, "metrics": metrics, "out": out}


@pytest.fixture(scope="module")
def xception(phantoms: dict[str, Any]) -> dict[str, Any]:
    keras.backend.clear_session()
    probe = UntrainedProbe(*_held_out(phantoms, channels=3))
    out = phantoms["root"] / "unetpp_xception" / "fold_1"
    result = train(
        TrainConfig(arch="unetpp_xception", arch_options={"filters": 4}, batch_size=4,
                    learning_rate=1e-3, early_stopping_patience=None, steps_multiplier=1,
                    epochs=3, monitor="val_dice", data=phantoms["breast"], splits=phantoms["splits"], fold=1,
                    out=out),
        callbacks=[probe],
    )
    metrics = _test_dice(phantoms, [out], "xception_fold1")
    return {"result": result, "untrained": probe.dice, "metrics": metrics}


def test_unet5l_learns_the_phantoms(unet5l: dict[str, Any]) -> None:
    trained, untrained = unet5l["metrics"]["dice_mean"], unet5l["untrained"]
    print(f"unet5l held-out Dice: trained {trained:.3f}, untrained {untrained:.3f}")
    assert trained >= MIN_DICE
    assert untrained < 0.35 and trained - untrained > 0.3


def test_folded_and_bfloat16_predictions_keep_the_dice(
    phantoms: dict[str, Any], unet5l: dict[str, Any]
) -> None:
    """Issue 7: BatchNorm folding changes nothing, bfloat16 keeps the Dice to two decimals."""
    folded = unet5l["metrics"]  # the default: BatchNorms folded
    unfolded = _test_dice(phantoms, [unet5l["out"]], "unet5l_unfolded", fold_batchnorm=False)
    half = _test_dice(phantoms, [unet5l["out"]], "unet5l_bf16", precision="bfloat16")
    print(f"held-out Dice: unfolded {unfolded['dice_mean']:.4f}, folded "
          f"{folded['dice_mean']:.4f}, bfloat16 {half['dice_mean']:.4f}")
    assert abs(folded["dice_mean"] - unfolded["dice_mean"]) < 1e-3
    assert round(half["dice_mean"], 2) == round(unfolded["dice_mean"], 2)
    a = np.asarray(open_store(unfolded["masses"], "masses").array("mass_probs")[...], np.float32)
    b = np.asarray(open_store(folded["masses"], "masses").array("mass_probs")[...], np.float32)
    c = np.asarray(open_store(half["masses"], "masses").array("mass_probs")[...], np.float32)
    assert np.abs(a - b).max() < 2e-3  # float16 storage rounding
    assert 0 < np.abs(a - c).max() < 0.1  # really computed in bfloat16, and close
    params = open_store(half["masses"], "masses").meta.producer.params
    assert params["precision"] == "bfloat16" and params["batchnorms_folded"] > 0


def test_unetpp_xception_learns_the_phantoms(xception: dict[str, Any]) -> None:
    trained, untrained = xception["metrics"]["dice_mean"], xception["untrained"]
    print(f"unetpp_xception held-out Dice: trained {trained:.3f}, untrained {untrained:.3f}")
    assert xception["result"].input_shape == (64, 64, 3)  # gray repeated to 3 channels
    assert trained >= MIN_DICE
    assert untrained < 0.35 and trained - untrained > 0.3


def test_model_folder_is_complete_and_described(unet5l: dict[str, Any]) -> None:
    out, result = unet5l["out"], unet5l["result"]
    assert sorted(p.name for p in out.iterdir()) == ["dvclive", "history.csv", "model.keras",
                                                     "model_card.json"]
    assert not training_dir(out).exists()
    card = read_model_card(out)
    assert card.stage == "massseg" and card.architecture == "unet5l"
    assert card.model_id == "massseg/unet5l/fold_1" and card.input_shape == (64, 64, 1)
    assert card.normalization == "divide_by_max_uint16" and card.threshold == 0.5
    assert card.training["learning_rate"] == 1e-3 and card.training["batch_size"] == 4
    assert card.training["steps_per_epoch"] == 3 * (40 // 4)
    assert card.training["validation_augmented"] is False
    assert card.training["augmentation"]["rotation_range"] == 90
    assert card.data.fold == 1 and card.data.n_train_cases == 40 and card.data.n_valid_cases == 8
    assert card.data.train_store_digest and card.data.splits_digest
    for key in ("best_val_dice", "last_val_dice", "best_epoch", "epochs_run"):
        assert key in card.metrics
    assert card.metrics["epochs_run"] == result.epochs_run == 8
    with open(out / "history.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 8
    assert {"epoch", "loss", "val_loss", "dice", "val_dice", "iou", "val_iou", "lr"} <= set(
        rows[0]
    )
    dices = [float(r["val_dice"]) for r in rows]
    assert result.best_epoch == 1 + dices.index(max(dices))  # best weights kept, not the last
    assert max(dices) == pytest.approx(card.metrics["best_val_dice"])


def test_existing_model_folder_is_not_overwritten(
    phantoms: dict[str, Any], unet5l: dict[str, Any]
) -> None:
    before = (unet5l["out"] / "model.keras").stat().st_mtime_ns
    result = runner.invoke(app, ["train", "--arch", "unet5l", "--data", str(phantoms["breast"]),
                                 "--splits", str(phantoms["splits"]), "--fold", "1",
                                 "--out", str(unet5l["out"])])
    assert result.exit_code == 2 and "already exists" in result.output
    assert (unet5l["out"] / "model.keras").stat().st_mtime_ns == before


@pytest.fixture(scope="module")
def cv_run(phantoms: dict[str, Any], unet5l: dict[str, Any]) -> dict[str, Any]:
    """Fold 2 crashes after epoch 1; ``massseg cv --folds 1,2`` reuses 1 and resumes 2."""
    root = phantoms["root"]
    params = root / "params.yaml"
    params.write_text(
        "massseg:\n  train:\n    arch: unet5l\n    arch_options: {filters: 4}\n"
        "    batch_size: 4\n    learning_rate: 0.001\n    early_stopping_patience: null\n"
        "    steps_multiplier: 1\n    epochs: 3\n",
        encoding="utf-8",
    )
    out = root / "unet5l" / "fold_2"
    config = load_section(TrainConfig, params, "massseg.train", settings_model=TrainSettings,
                          paths={"data": phantoms["breast"], "splits": phantoms["splits"],
                                 "fold": 2, "out": out})
    with pytest.raises(RuntimeError, match="simulated crash"):
        train(config, callbacks=[Crash(epoch=2)])
    crashed = {"complete": is_complete(out), "exists": out.exists()}
    with open(training_dir(out) / "history.csv", newline="") as fh:
        crashed["history"] = list(csv.DictReader(fh))
    result = runner.invoke(app, ["cv", "--params", str(params), "--data", str(phantoms["breast"]),
                                 "--splits", str(phantoms["splits"]), "--folds", "1,2",
                                 "--out", str(root / "unet5l")])
    return {"crashed": crashed, "cli": result, "cv_dir": root / "unet5l", "out": out}


def test_resume_after_interruption_and_cv_table(cv_run: dict[str, Any]) -> None:
    crashed, cli, out = cv_run["crashed"], cv_run["cli"], cv_run["out"]
    assert not crashed["exists"] and not crashed["complete"]  # complete or absent
    assert [int(r["epoch"]) for r in crashed["history"]] == [1]  # epoch 1 checkpointed
    assert cli.exit_code == 0, cli.output
    assert "reused finished folds [1]" in " ".join(cli.output.split())
    with open(out / "history.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3]
    assert rows[0]["seconds"] == crashed["history"][0]["seconds"]  # epoch 1 was not re-run
    table = json.loads((cv_run["cv_dir"] / "cv.json").read_text())
    assert table["n_folds"] == 2 and table["fold_2_epochs_run"] == 3
    assert table["fold_1_epochs_run"] == 8
    for key in ("best_val_dice_mean", "best_val_dice_sd", "last_val_dice_mean", "epochs_run_mean"):
        assert isinstance(table[key], float)
    markdown = (cv_run["cv_dir"] / "cv.md").read_text()
    assert "mean +- sd" in markdown and "| 2 |" in markdown
    summary = runner.invoke(app, ["evaluate", "--cv", str(cv_run["cv_dir"]), "--out",
                                  str(cv_run["cv_dir"] / "cv_again.json")])
    assert summary.exit_code == 0, summary.output
    again = json.loads((cv_run["cv_dir"] / "cv_again.json").read_text())
    assert again["best_val_dice_mean"] == pytest.approx(table["best_val_dice_mean"])


def test_predict_single_and_ensemble_with_tta(
    phantoms: dict[str, Any], unet5l: dict[str, Any], cv_run: dict[str, Any]
) -> None:
    root = phantoms["root"]
    single = open_store(unet5l["metrics"]["masses"], "masses", deep=True)
    assert single.meta.producer.model_ids == ["massseg/unet5l/fold_1"]
    assert single.meta.parents[0].kind == "breast" and single.meta.has_mass_masks
    assert single.array("mass_probs").dtype == np.float16
    assert single.meta.threshold == 0.5 and single.meta.min_object_pixels == 30

    fold2 = root / "fold2.zarr"
    predict(PredictConfig(models=[cv_run["out"]], data=phantoms["breast"], out=fold2))
    ensemble = root / "ensemble.zarr"
    result = runner.invoke(app, ["predict", "--model", str(unet5l["out"]), "--model",
                                 str(cv_run["out"]), "--data", str(phantoms["breast"]), "--out",
                                 str(ensemble), "--largest-component", "--batch-size", "8"])
    assert result.exit_code == 0, result.output
    ens = open_store(ensemble, "masses", deep=True)
    assert ens.meta.producer.model_ids == ["massseg/unet5l/fold_1", "massseg/unet5l/fold_2"]
    assert ens.meta.largest_component and not ens.meta.tta
    p1 = single.array("mass_probs")[...].astype(np.float32)
    p2 = open_store(fold2, "masses").array("mass_probs")[...].astype(np.float32)
    pe = ens.array("mass_probs")[...].astype(np.float32)
    np.testing.assert_allclose(pe, (p1 + p2) / 2, atol=2e-3)  # probability averaging
    from mammo_common.postprocess import label

    assert all(label(m)[1] <= 1 for m in ens.array("mass_pred")[...])
    np.testing.assert_array_equal(ens.array("images")[...], single.array("images")[...])

    tta = root / "ensemble_tta.zarr"
    summary = predict(PredictConfig(models=[unet5l["out"], cv_run["out"]],
                                    data=phantoms["breast"], out=tta, tta=True, threshold=0.4))
    store = open_store(tta, "masses", deep=True)
    assert store.meta.tta and store.meta.threshold == 0.4 and summary.n_cases == N_CASES
    assert not np.allclose(store.array("mass_probs")[...].astype(np.float32), pe, atol=1e-3)


def test_models_command() -> None:
    result = runner.invoke(app, ["models", "--json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)
    assert len(rows) == 10 and {r["name"] for r in rows} >= {"unet5l", "unetpp_xception"}


def test_unet5l_learns_from_patches(phantoms: dict[str, Any]) -> None:
    """Patch training (foreground oversampling) saves a whole-image model that segments; the
    demo's monitor (Dice over the validation images with a mass) picks the kept epoch."""
    out = phantoms["root"] / "unet5l_patches" / "fold_1"
    result = train(TrainConfig(**SMALL, data=phantoms["breast"], splits=phantoms["splits"],
                               fold=1, out=out, epochs=8, monitor="val_dice_mass",
                               patch_size=(32, 32), foreground_fraction=0.5, loss="bce_dice"))
    card = read_model_card(out)
    assert tuple(card.input_shape) == (64, 64, 1)
    assert card.training["patch_size"] == [32, 32]
    with open(out / "history.csv", newline="") as fh:
        mass_dices = [float(r["val_dice_mass"]) for r in csv.DictReader(fh)]
    assert result.best_epoch == 1 + mass_dices.index(max(mass_dices))
    assert card.metrics["best_val_dice_mass"] == pytest.approx(max(mass_dices))
    metrics = _test_dice(phantoms, [out], "unet5l_patches")
    assert metrics["dice_mean"] >= MIN_DICE


def test_patch_size_checked(phantoms: dict[str, Any], tmp_path: Path) -> None:
    from mammo_common.errors import ConfigError

    with pytest.raises(ConfigError, match="patch_size"):
        train(TrainConfig(**SMALL, data=phantoms["breast"], splits=phantoms["splits"], fold=1,
                          out=tmp_path / "m", epochs=1, patch_size=(40, 40)))
