"""predict_probabilities: scaling, resizing, ensembles and flip TTA with tiny fixed models."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from mammo_common.keras.deployment.inference import (
    model_input_size,
    normalize_image,
    predict_probabilities,
)


def _linear(size=(16, 16), channels=1, weight=1.0, bias=0.0):
    """A 1x1 convolution y = weight * mean(x) + bias: identity when weight=1, bias=0."""
    inp = keras.Input((*size, channels))
    conv = keras.layers.Conv2D(1, 1, use_bias=True)
    out = conv(inp)
    conv.set_weights(
        [np.full((1, 1, channels, 1), weight / channels, np.float32), np.array([bias], np.float32)]
    )
    return keras.Model(inp, out)


@pytest.fixture(scope="module")
def identity():
    return _linear()


def _ramp(shape=(32, 24), dtype=np.uint16):
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    ramp = (yy / shape[0] * 0.7 + xx / shape[1] * 0.3) * np.iinfo(dtype).max
    return ramp.astype(dtype)


def test_input_size_of_model(identity):
    assert model_input_size(identity) == (16, 16, 1)


def test_identity_model_returns_scaled_image(identity):
    img = _ramp()
    probs = predict_probabilities([identity], img[None])
    assert probs.shape == (1, 32, 24) and probs.dtype == np.float32
    assert probs.min() >= 0 and probs.max() <= 1
    expected = normalize_image(img)
    assert np.abs(probs[0] - expected).mean() < 0.03


def test_dtype_scaling_is_consistent(identity):
    a = predict_probabilities([identity], _ramp(dtype=np.uint16)[None])
    b = predict_probabilities([identity], _ramp(dtype=np.uint8)[None])
    assert np.abs(a - b).max() < 0.02


def test_tta_unflips(identity):
    img = _ramp()
    plain = predict_probabilities([identity], img[None])
    tta = predict_probabilities([identity], img[None], tta_flips=True)
    np.testing.assert_allclose(tta, plain, atol=1e-5)


def test_ensemble_averages(identity):
    inverse = _linear(weight=-1.0, bias=1.0)  # 1 - x
    probs = predict_probabilities([identity, inverse], _ramp()[None, ...])
    np.testing.assert_allclose(probs, 0.5, atol=1e-5)


def test_batches_and_mixed_sizes(identity):
    imgs = [_ramp((32, 24)), _ramp((20, 40)), _ramp((16, 16))]
    out = predict_probabilities([identity], imgs, batch_size=2)
    assert [o.shape for o in out] == [(32, 24), (20, 40), (16, 16)]
    stack = np.stack([_ramp()] * 5)
    assert predict_probabilities([identity], stack, batch_size=2).shape == (5, 32, 24)


def test_three_channels():
    model = _linear(channels=3)
    img = _ramp()
    probs = predict_probabilities([model], img[None])
    assert np.abs(probs[0] - normalize_image(img)).mean() < 0.03


def test_bad_inputs(identity):
    with pytest.raises(ValueError):
        predict_probabilities([], np.zeros((1, 8, 8)))
    with pytest.raises(ValueError):
        predict_probabilities([identity], np.zeros((8, 8)))
    with pytest.raises(ValueError):
        predict_probabilities([identity], np.zeros((1, 8, 8)), channels=2)
