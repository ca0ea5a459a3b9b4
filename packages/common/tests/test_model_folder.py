"""Model folders: atomic save, safe load, refusals with ModelFolderError; the model card."""

from __future__ import annotations

import json
import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import numpy as np
import pytest
from pydantic import ValidationError

from mammo_common.errors import ModelFolderError
from mammo_common.keras.deployment.model_folder import load_model_folder, save_model_folder
from mammo_common.keras.training.harness import read_history_csv
from mammo_common.keras.training.losses import DiceLoss
from mammo_common.keras.training.metrics import DiceCoefficient
from mammo_common.schema.model_card import (
    CARD_FILE,
    HISTORY_FILE,
    MODEL_FILE,
    ModelCard,
    model_id,
    read_model_card,
)


def tiny_model(lam: bool = False) -> keras.Model:
    keras.utils.set_random_seed(0)  # weights too, on every backend
    inputs = keras.Input((16, 16, 1))
    x = keras.layers.Conv2D(3, 3, padding="same", activation="relu")(inputs)
    x = keras.layers.BatchNormalization()(x)
    if lam:
        x = keras.layers.Lambda(lambda t: t * 2.0)(x)
    return keras.Model(inputs, keras.layers.Conv2D(1, 1, activation="sigmoid")(x))


def card(**update) -> ModelCard:
    fields = {
        "stage": "massseg",
        "package": "mammo-massseg",
        "package_version": "0.1.0",
        "architecture": "tiny",
        "model_id": model_id("massseg", "tiny", 1),
        "input_shape": (16, 16, 1),
        "training": {"epochs": 2, "loss": "dice"},
        "metrics": {"val_dice": 0.5},
        "weights_origin": "scratch",
        "created_by": "massseg train --fold 1",
    }
    fields.update(update)
    return ModelCard(**fields)


HISTORY = [
    {"epoch": 1, "loss": 0.5, "val_loss": 0.6, "lr": 1e-3, "seconds": 1.0},
    {"epoch": 2, "loss": 0.4, "val_loss": 0.5, "lr": 1e-3, "seconds": 1.0},
]


@pytest.fixture()
def saved(tmp_path):
    model = tiny_model()
    model.compile("adam", DiceLoss(), metrics=[DiceCoefficient()])
    folder = tmp_path / "models" / "massseg" / "tiny" / "fold_1"
    written = save_model_folder(folder, model, card(), HISTORY)
    return folder, model, written


def test_round_trip_gives_equal_predictions(saved):
    folder, model, written = saved
    assert sorted(p.name for p in folder.iterdir()) == [
        "dvclive", HISTORY_FILE, MODEL_FILE, CARD_FILE,
    ]
    assert not [p for p in folder.parent.iterdir() if p.name.startswith(".")]
    loaded, got = load_model_folder(folder, expected_stage="massseg", known_architectures={"tiny"})
    x = np.random.default_rng(0).random((2, 16, 16, 1)).astype(np.float32)
    np.testing.assert_allclose(
        loaded.predict(x, verbose=0), model.predict(x, verbose=0), rtol=0, atol=1e-7
    )
    assert got == written and got.keras_version == keras.version()
    assert got.backend == keras.backend.backend()
    assert read_history_csv(folder / HISTORY_FILE)[1]["val_loss"] == 0.5
    compiled, _ = load_model_folder(folder, compile=True)  # registered loss and metric
    assert isinstance(compiled.loss, DiceLoss)


def test_the_folder_carries_the_curves_in_dvclive_format(saved):
    """``dvclive/`` holds history.csv's values (step = epoch), its metrics.json the last
    epoch's: what ``dvc metrics show`` lists for a trained model (the working folder that
    logged them during training is gone by then)."""
    from mammo_common.keras.training.curves import read_curves, read_summary

    folder, _, _ = saved
    curves = read_curves(folder)
    assert set(curves) == {"loss", "val_loss", "lr"}  # seconds is bookkeeping
    for name in curves:
        assert curves[name] == [(row["epoch"], row[name]) for row in HISTORY]
    assert read_summary(folder) == {"step": 2, "loss": 0.4, "val_loss": 0.5, "lr": 1e-3}


def test_save_replaces_an_existing_folder(saved):
    folder, model, _ = saved
    save_model_folder(folder, model, card(notes="second"), None)
    assert read_model_card(folder).notes == "second"
    assert (folder / HISTORY_FILE).read_text().startswith("epoch")
    assert not (folder / "dvclive").exists()  # no history, no curves


def test_refusals(saved, tmp_path):
    folder, model, _ = saved
    with pytest.raises(ModelFolderError, match="does not exist"):
        load_model_folder(tmp_path / "nowhere")
    with pytest.raises(ModelFolderError, match="breastseg") as info:
        load_model_folder(folder, expected_stage="breastseg")
    assert str(folder) in str(info.value) and "Fix:" in str(info.value)
    with pytest.raises(ModelFolderError, match="unknown architecture"):
        load_model_folder(folder, known_architectures={"unet5l"})
    with pytest.raises(ModelFolderError, match="input"):
        save_model_folder(tmp_path / "bad", model, card(input_shape=(32, 32, 1)))
    assert not (tmp_path / "bad").exists()


def test_refuses_missing_card_and_model(saved):
    folder, _, _ = saved
    (folder / MODEL_FILE).rename(folder / "moved.keras")
    with pytest.raises(ModelFolderError, match="model.keras is missing"):
        load_model_folder(folder)
    (folder / "moved.keras").rename(folder / MODEL_FILE)
    (folder / CARD_FILE).unlink()
    with pytest.raises(ModelFolderError, match="model_card.json is missing"):
        load_model_folder(folder)


def test_refuses_corrupt_model_and_card(saved):
    folder, _, _ = saved
    raw = json.loads((folder / CARD_FILE).read_text())
    (folder / CARD_FILE).write_text(json.dumps({**raw, "schema_version": "2.0"}))
    with pytest.raises(ModelFolderError, match="schema version 2.0"):
        load_model_folder(folder)
    (folder / CARD_FILE).write_text(json.dumps({**raw, "threshold": 3}))
    with pytest.raises(ModelFolderError, match="threshold"):
        load_model_folder(folder)
    (folder / CARD_FILE).write_text("{not json")
    with pytest.raises(ModelFolderError, match="not valid JSON"):
        load_model_folder(folder)
    (folder / CARD_FILE).write_text(json.dumps(raw))
    (folder / MODEL_FILE).write_bytes(b"garbage")
    with pytest.raises(ModelFolderError, match="corrupt"):
        load_model_folder(folder)


def test_truncated_model_file(saved):
    folder, _, _ = saved
    blob = (folder / MODEL_FILE).read_bytes()
    (folder / MODEL_FILE).write_bytes(blob[: len(blob) // 2])
    with pytest.raises(ModelFolderError, match=MODEL_FILE):
        load_model_folder(folder)


def test_safe_mode_refuses_lambda_layers(tmp_path):
    folder = tmp_path / "massseg" / "tiny" / "fold_1"
    save_model_folder(folder, tiny_model(lam=True), card())
    with pytest.raises(ModelFolderError, match="Lambda"):
        load_model_folder(folder)


def test_model_card_validation_and_schema():
    assert model_id("breastseg", "unet5l", None) == "breastseg/unet5l/fold_all"
    with pytest.raises(ValidationError, match="model_id"):
        card(model_id="breastseg/tiny/fold_1")
    with pytest.raises(ValidationError):
        card(stage="Mass Seg")
    with pytest.raises(ValidationError):
        card(unexpected=1)
    schema = ModelCard.model_json_schema()
    assert {"stage", "architecture", "input_shape", "data", "metrics"} <= set(schema["properties"])
    c = card()
    assert ModelCard.model_validate_json(c.to_json()) == c
