"""The networks of the registry (the five-level U-Net): the shared model tester, shapes."""

from __future__ import annotations

import numpy as np
import pytest

from breastseg.models import DEFAULT_INPUT_SHAPE, build_model, model_names
from mammo_common.testing import count_parameters, run_model_test

#: name -> (total, non-trainable) parameters at the reference width (ARCHITECTURES.md); the
#: count does not depend on the input size.
REFERENCE_COUNTS = {"unet5l": (1_947_153, 3_168)}


@pytest.fixture(scope="session")
def full_model():
    """The reference-size model (built once: it takes seconds)."""
    return build_model("unet5l", input_shape=DEFAULT_INPUT_SHAPE)


def test_parameter_count_at_reference_size(full_model):
    assert DEFAULT_INPUT_SHAPE == (1024, 768, 1)
    assert full_model.input_shape == (None, 1024, 768, 1)
    assert full_model.output_shape == (None, 1024, 768, 1)
    assert count_parameters(full_model) == REFERENCE_COUNTS["unet5l"]


def test_every_network_has_a_reference_count():
    assert sorted(REFERENCE_COUNTS) == model_names()


@pytest.mark.parametrize("name", model_names())
def test_network_passes_the_model_tester(name, fresh_process, tmp_path):
    """Reference width at 64x48: exact count, config and .keras round trips, fresh process."""
    x = np.random.default_rng(0).random((2, 64, 48, 1), dtype=np.float32)
    result = run_model_test(
        lambda: build_model(name, input_shape=(64, 48, 1)),
        x,
        expected_output_shape=(2, 64, 48, 1),
        expected_params=REFERENCE_COUNTS[name],
        tmp_path=tmp_path,
        fresh_process=fresh_process,
    )
    (y,) = result.outputs
    assert y.min() >= 0 and y.max() <= 1


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
