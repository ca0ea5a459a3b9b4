"""The model cache behind ``mammo run``'s cascade: a model folder is loaded once and its
inference copy built once while a cache is active; without one nothing changes."""

from __future__ import annotations

import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import pytest

from mammo_common.keras.deployment.model_folder import load_model_folder, save_model_folder
from mammo_common.keras.deployment.optimize import inference_model
from mammo_common.model_cache import ModelCache
from mammo_common.schema.model_card import ModelCard, model_id


def _folder(tmp_path):
    inputs = keras.Input((8, 8, 1))
    x = keras.layers.Conv2D(2, 3, padding="same")(inputs)
    x = keras.layers.BatchNormalization()(x)
    model = keras.Model(inputs, keras.layers.Conv2D(1, 1, activation="sigmoid")(x))
    card = ModelCard(stage="massseg", package="mammo-massseg", package_version="0.1.0",
                     architecture="tiny", model_id=model_id("massseg", "tiny", 1),
                     input_shape=(8, 8, 1))
    folder = tmp_path / "massseg" / "tiny" / "fold_1"
    save_model_folder(folder, model, card)
    return folder


def test_load_and_inference_copy_once_per_cache(tmp_path, monkeypatch):
    folder = _folder(tmp_path)
    loads = []
    real = keras.saving.load_model
    monkeypatch.setattr(keras.saving, "load_model",
                        lambda *a, **k: loads.append(1) or real(*a, **k))
    first, _ = load_model_folder(folder, "massseg")
    second, _ = load_model_folder(folder, "massseg")
    assert first is not second and len(loads) == 2  # no cache: as before
    cache = ModelCache()
    with cache.active():
        a, card_a = load_model_folder(folder, "massseg")
        b, card_b = load_model_folder(folder, "massseg")
        fa, fb = inference_model(a)[0], inference_model(b)[0]
        other = inference_model(a, precision="bfloat16")[0]
    assert a is b and card_a is card_b and fa is fb and other is not fa
    assert len(loads) == 3
    assert cache.builds_by_kind == {"load_model_folder": 1, "inference_model": 2}
    with cache.active():  # a rewritten model.keras is a new entry
        save_model_folder(folder, a, card_a)
        c, _ = load_model_folder(folder, "massseg")
    assert c is not a and len(loads) == 4
    with pytest.raises(Exception, match="massclass"), cache.active():
        load_model_folder(folder, "massclass")  # errors are not cached
