"""Classifier registry: reference parameter counts, other backbones, serialisation."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from massclass.models import (
    REFERENCE_COUNTS,
    MassClassifier,
    build_model,
    count_parameters,
    get_backbone,
    list_backbones,
    set_trainable,
)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(REFERENCE_COUNTS))
def test_reference_parameter_counts(name: str, keras_session) -> None:
    model = build_model(name, (224, 224, 3), weights=None)
    counts = count_parameters(model)
    assert (counts["total"], counts["non_trainable"]) == REFERENCE_COUNTS[name]
    assert model.output.shape[-1] == 1
    assert model.get_layer("malignancy").dtype_policy.compute_dtype == "float32"
    # top 25 % of the base trainable, then everything
    n = set_trainable(model, 0.25)
    assert 0 < n < len(model.base.layers)
    assert count_parameters(model)["trainable"] > counts["trainable"]
    set_trainable(model, "all")
    assert all(layer.trainable for layer in model.base.layers)


def test_registry_lists_keras_applications_and_tiny() -> None:
    names = {b.name for b in list_backbones()}
    for expected in ("vgg16", "resnet50v2", "inceptionv3", "efficientnetb0", "densenet121",
                     "mobilenetv2", "tinycnn"):
        assert expected in names
    assert get_backbone("ResNet50-V2").name == "resnet50v2"
    assert get_backbone("densenet121").preprocess == "torch"
    assert get_backbone("vgg16").preprocess == "caffe"
    with pytest.raises(ValueError, match="valid names"):
        get_backbone("vgg17")


def test_head_structure_and_frozen_base(keras_session) -> None:
    model = build_model("mobilenetv2", (64, 64, 3), weights=None,
                        backbone_options={"alpha": 0.35})
    names = [layer.name for layer in model.layers]
    assert names[-6:] == ["backbone", "gap", "dense1", "dropout", "dense2", "malignancy"]
    assert model.get_layer("dense1").units == 256 and model.get_layer("dense2").units == 128
    assert model.get_layer("dropout").rate == 0.5
    assert not any(layer.trainable for layer in model.base.layers)
    head = 1280 * 256 + 256 + 256 * 128 + 128 + 129
    assert count_parameters(model)["trainable"] == head


def test_save_load_round_trip(tmp_path, keras_session) -> None:
    model = build_model("tinycnn", (32, 32, 3), backbone_options={"widths": [4, 8]})
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    assert isinstance(loaded, MassClassifier)
    assert loaded.get_config() == model.get_config()
    x = np.random.default_rng(0).random((3, 32, 32, 3), dtype=np.float32)
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0),
                               atol=1e-6)


def test_bad_input_shape_is_explained(keras_session) -> None:
    with pytest.raises(ValueError, match="inceptionv3"):
        build_model("inceptionv3", (32, 32, 3), weights=None)
