"""The five-level U-Net of the registry: parameter count, shapes, save/load round trip."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from breastseg.models import DEFAULT_INPUT_SHAPE, build_model, model_names


@pytest.fixture(scope="session")
def full_model():
    """The reference-size model (built once: it takes seconds)."""
    return build_model("unet5l", input_shape=DEFAULT_INPUT_SHAPE)


def _counts(model) -> tuple[int, int]:
    trainable = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    frozen = sum(int(np.prod(w.shape)) for w in model.non_trainable_weights)
    return trainable + frozen, frozen


def test_parameter_count_at_reference_size(full_model):
    assert DEFAULT_INPUT_SHAPE == (1024, 768, 1)
    assert full_model.input_shape == (None, 1024, 768, 1)
    assert full_model.output_shape == (None, 1024, 768, 1)
    assert _counts(full_model) == (1_947_153, 3_168)


@pytest.mark.parametrize(
    ("input_shape", "filters"),
    [
        ((1024, 768, 1), 2),
        ((640, 640, 1), 2),
        ((128, 96, 1), 4),
        ((96, 64, 1), 4),
        ((64, 48, 1), 8),
        ((16, 32, 1), 2),
    ],
)
def test_shape_table(input_shape, filters):
    model = build_model("unet5l", input_shape=input_shape, filters=filters)
    assert model.output_shape == (None, *input_shape[:2], 1)
    # the bottleneck is 1/16 of the input with 16f channels
    bottleneck = model.get_layer("relu5_2").output.shape
    assert tuple(bottleneck[1:]) == (input_shape[0] // 16, input_shape[1] // 16, 16 * filters)


def test_width_changes_parameters_not_input_size():
    a = build_model("unet5l", input_shape=(64, 48, 1), filters=4).count_params()
    b = build_model("unet5l", input_shape=(128, 96, 1), filters=4).count_params()
    c = build_model("unet5l", input_shape=(64, 48, 1), filters=8).count_params()
    assert a == b < c


def test_registry_errors():
    assert "unet5l" in model_names()
    with pytest.raises(ValueError, match="valid names: unet5l"):
        build_model("unet6l", input_shape=(64, 48, 1))
    with pytest.raises(ValueError, match="multiples of 16"):
        build_model("unet5l", input_shape=(100, 48, 1))


def test_keras_round_trip_equal_outputs(tmp_path):
    model = build_model("unet5l", input_shape=(64, 48, 1), filters=4)
    x = np.random.default_rng(0).random((2, 64, 48, 1), dtype=np.float32)
    before = model.predict_on_batch(x)
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    after = loaded.predict_on_batch(x)
    assert loaded.count_params() == model.count_params()
    np.testing.assert_allclose(after, before, rtol=1e-6, atol=1e-6)
    assert after.min() >= 0 and after.max() <= 1
