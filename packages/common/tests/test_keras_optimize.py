"""inference_model: BatchNorm folding and bfloat16 compute give the same function, faster."""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import pytest

from mammo_common.keras.deployment.optimize import (
    FoldedBatchNormalization,
    foldable_pairs,
    inference_model,
)
from mammo_common.testing import (
    accumulated_terms,
    float32_tolerance,
    largest_activation,
    run_model_test,
)

layers = keras.layers


def _randomize_batchnorms(model: keras.Model, seed: int = 0) -> None:
    """Give every BatchNorm statistics and an affine map far from the identity."""
    rng = np.random.default_rng(seed)
    for layer in model._flatten_layers():
        if isinstance(layer, layers.BatchNormalization):
            n = layer.moving_mean.shape[0]
            layer.moving_mean.assign(rng.normal(0, 0.5, n).astype("float32"))
            layer.moving_variance.assign(rng.uniform(0.2, 3.0, n).astype("float32"))
            if layer.scale:
                layer.gamma.assign(rng.uniform(0.3, 2.0, n).astype("float32"))
            if layer.center:
                layer.beta.assign(rng.normal(0, 0.5, n).astype("float32"))


def _numpy_weights(model: keras.Model, seed: int = 0) -> None:
    """Overwrite every trainable kernel and bias with seeded NumPy draws (Glorot-uniform
    kernels, small biases), so the weights, and the activations the tolerances scale with, are
    the same on every backend (``keras.utils.set_random_seed`` draws differently per backend)."""
    rng = np.random.default_rng(seed)
    for weight in model.trainable_weights:
        shape = tuple(int(d) for d in weight.shape)
        if len(shape) >= 2:
            receptive = int(np.prod(shape[:-2])) if len(shape) > 2 else 1
            fan_in, fan_out = shape[-2] * receptive, shape[-1] * receptive
            limit = float(np.sqrt(6.0 / (fan_in + fan_out)))
            weight.assign(rng.uniform(-limit, limit, shape).astype("float32"))
        elif "gamma" not in weight.path and "beta" not in weight.path:
            weight.assign(rng.normal(0.0, 0.05, shape).astype("float32"))


def _zoo() -> keras.Model:
    """One foldable BatchNorm after each foldable layer type, and four that must be kept."""
    keras.utils.set_random_seed(0)  # weights too, on every backend
    inp = keras.Input((16, 16, 3), name="image")
    x = layers.Conv2D(8, 3, padding="same", use_bias=False, name="conv")(inp)
    x = layers.BatchNormalization(name="bn_conv")(x)
    x = layers.Activation("relu", name="relu")(x)
    x = layers.SeparableConv2D(6, 3, padding="same", name="sep")(x)
    x = layers.BatchNormalization(name="bn_sep", center=False)(x)
    x = layers.DepthwiseConv2D(3, padding="same", depth_multiplier=2, name="dw")(x)
    x = layers.BatchNormalization(name="bn_dw", scale=False)(x)
    x = layers.Conv2DTranspose(5, 2, strides=2, name="up")(x)
    x = layers.BatchNormalization(name="bn_up")(x)
    # kept: the convolution's output is used twice
    shared = layers.Conv2D(5, 1, name="shared")(x)
    y = layers.BatchNormalization(name="bn_shared")(shared)
    x = layers.Add(name="add")([y, shared])
    # kept: after an addition
    x = layers.BatchNormalization(name="bn_add")(x)
    # kept: the convolution has its own activation
    x = layers.Conv2D(4, 3, padding="same", activation="relu", name="conv_relu")(x)
    x = layers.BatchNormalization(name="bn_act")(x)
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    x = layers.Dense(7, name="dense")(x)
    x = layers.BatchNormalization(name="bn_dense")(x)
    out = layers.Dense(1, activation="sigmoid", name="head")(x)
    model = keras.Model(inp, out, name="zoo")
    _randomize_batchnorms(model)
    return model


FOLDED = {
    "bn_conv": "conv",
    "bn_sep": "sep",
    "bn_dw": "dw",
    "bn_up": "up",
    "bn_dense": "dense",
}


@pytest.fixture(scope="module")
def zoo() -> keras.Model:
    return _zoo()


@pytest.fixture(scope="module")
def x() -> np.ndarray:
    return np.random.default_rng(1).normal(size=(3, 16, 16, 3)).astype("float32")


def _logits(model: keras.Model, x: np.ndarray) -> np.ndarray:
    """Outputs before the sigmoid saturates differences: the head's input."""
    probe = keras.Model(model.input, model.get_layer("bn_dense").output)
    return np.asarray(probe(x, training=False))


def test_every_foldable_layer_type_is_folded_and_the_rest_kept(zoo: keras.Model) -> None:
    assert foldable_pairs(zoo) == FOLDED
    folded, report = inference_model(zoo)
    assert report.folded == FOLDED
    assert sorted(report.kept) == ["bn_act", "bn_add", "bn_shared"]
    for bn, producer in FOLDED.items():
        layer = folded.get_layer(bn)
        assert isinstance(layer, FoldedBatchNormalization)
        assert layer.folded_into == producer
        assert folded.get_layer(producer).use_bias
    for kept in report.kept:
        assert isinstance(folded.get_layer(kept), layers.BatchNormalization)


def test_folded_model_computes_the_same_function(zoo: keras.Model, x: np.ndarray) -> None:
    folded, _ = inference_model(zoo)
    a = _logits(zoo, x)
    b = np.asarray(keras.Model(folded.input, folded.get_layer("bn_dense").output)(x))
    # the BatchNorm moves values by O(0.1-1) (statistics set far from the identity): a
    # wrong fold would be off by that much, far beyond float32's error bound for the terms
    # accumulated (mammo_common.testing.float32_tolerance)
    pre = np.asarray(keras.Model(zoo.input, zoo.get_layer("dense").output)(x))
    assert np.abs(a - pre).max() > 0.1
    atol = float32_tolerance(largest_activation(zoo, x), accumulated_terms(zoo))
    assert atol < 0.01
    np.testing.assert_allclose(b, a, rtol=0, atol=atol)
    np.testing.assert_allclose(np.asarray(folded(x)), np.asarray(zoo(x, training=False)),
                               rtol=0, atol=atol)


def test_original_is_untouched_and_shares_no_variables(zoo: keras.Model) -> None:
    before = [np.array(w) for w in zoo.get_weights()]
    folded, _ = inference_model(zoo)
    after = zoo.get_weights()
    assert len(before) == len(after)
    for b, a in zip(before, after, strict=True):
        np.testing.assert_array_equal(a, b)
    assert isinstance(zoo.get_layer("bn_conv"), layers.BatchNormalization)
    old = {id(v) for v in zoo.weights}
    assert not any(id(v) in old for v in folded.weights)


def test_nested_model_is_folded(x: np.ndarray) -> None:
    keras.utils.set_random_seed(0)  # weights too, on every backend
    inner_in = keras.Input((16, 16, 3))
    h = layers.Conv2D(4, 3, padding="same", name="inner_conv")(inner_in)
    h = layers.BatchNormalization(name="inner_bn")(h)
    inner = keras.Model(inner_in, layers.ReLU(name="inner_relu")(h), name="backbone")
    inp = keras.Input((16, 16, 3))
    out = layers.Conv2D(1, 1, activation="sigmoid", name="out")(inner(inp))
    model = keras.Model(inp, out)
    _randomize_batchnorms(model)
    folded, report = inference_model(model)
    assert report.folded == {"inner_bn": "inner_conv"}
    assert isinstance(folded.get_layer("backbone").get_layer("inner_bn"), FoldedBatchNormalization)
    magnitude = max(largest_activation(model, x), largest_activation(inner, x))
    atol = float32_tolerance(magnitude, accumulated_terms(model))
    np.testing.assert_allclose(np.asarray(folded(x)), np.asarray(model(x)), atol=atol)


def test_unet5l_folds_completely_and_agrees() -> None:
    from mammo_common.keras.networks.unet5l import build

    keras.utils.set_random_seed(0)
    model = build(input_shape=(64, 48, 1), filters=4)
    _numpy_weights(model)  # the same weights on every backend, hence the same tolerance
    _randomize_batchnorms(model)
    folded, report = inference_model(model)
    n_bn = sum(isinstance(layer, layers.BatchNormalization) for layer in model.layers)
    assert len(report.folded) == n_bn and not report.kept
    x = np.random.default_rng(2).random((2, 64, 48, 1)).astype("float32")
    # Folding reorders float32 sums through 23 convolutions: the tolerance is float32's error
    # bound for that many accumulated terms of that magnitude (about 5e-4 here: N = 3815 terms,
    # activations up to 11.5, the same on TensorFlow and JAX since the weights are NumPy draws),
    # not one run's difference (seen: 2e-7 on both). Still sharp: a 0.05 shift left out of one
    # BatchNorm moves the outputs by 5e-3, ten times the tolerance.
    atol = float32_tolerance(largest_activation(model, x), accumulated_terms(model))
    assert atol < 1e-3
    np.testing.assert_allclose(np.asarray(folded(x)), np.asarray(model(x)), atol=atol)


def test_no_folding_when_disabled(zoo: keras.Model, x: np.ndarray) -> None:
    same, report = inference_model(zoo, fold_batchnorm=False)
    assert report.folded == {}
    assert isinstance(same.get_layer("bn_conv"), layers.BatchNormalization)
    np.testing.assert_allclose(np.asarray(same(x)), np.asarray(zoo(x)), atol=1e-6)


def test_bfloat16_computes_in_bfloat16_and_outputs_float32(
    zoo: keras.Model, x: np.ndarray
) -> None:
    half, report = inference_model(zoo, precision="bfloat16")
    assert report.precision == "bfloat16"
    assert half.get_layer("conv").compute_dtype == "bfloat16"
    assert half.get_layer("conv").variable_dtype == "float32"
    assert half.get_layer("head").compute_dtype == "float32"  # the output layer stays float32
    out = np.asarray(half(x))
    assert out.dtype == np.float32
    ref = np.asarray(zoo(x, training=False))
    assert 0 < np.abs(out - ref).max() < 0.05  # bfloat16 rounding: close, not identical


def test_float32_is_float32_for_a_model_trained_in_bfloat16(x: np.ndarray) -> None:
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        mixed = _zoo()
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert mixed.get_layer("conv").compute_dtype == "bfloat16"
    full, _ = inference_model(mixed)
    assert full.get_layer("conv").compute_dtype == "float32"
    assert full.get_layer("dense").compute_dtype == "float32"


def test_a_convolution_that_is_also_an_output_is_not_folded(x: np.ndarray) -> None:
    inp = keras.Input((16, 16, 3))
    conv = layers.Conv2D(4, 3, padding="same", name="conv")(inp)
    bn = layers.BatchNormalization(name="bn")(conv)
    model = keras.Model(inp, [conv, bn])
    _randomize_batchnorms(model)
    folded, report = inference_model(model)
    assert report.folded == {} and report.kept == ["bn"]
    for a, b in zip(folded(x), model(x), strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-5)


def test_a_batchnorm_before_a_shared_addition_is_kept(x: np.ndarray) -> None:
    """Xception's middle flow: conv -> BN -> add, the sum used by a ReLU and the next add.
    Folded, TensorFlow's remapper fails on that graph; the BN stays, the one before a plain
    addition is folded, and the function is the same."""
    inp = keras.Input((16, 16, 3))
    residual = layers.Conv2D(4, 1, name="stem")(inp)
    h = layers.Conv2D(4, 3, padding="same", use_bias=False, name="conv_a")(residual)
    h = layers.BatchNormalization(name="bn_a")(h)
    h = layers.Add(name="add_a")([h, residual])  # used twice: kept
    y = layers.Activation("relu", name="relu_a")(h)
    y = layers.Conv2D(4, 3, padding="same", use_bias=False, name="conv_b")(y)
    y = layers.BatchNormalization(name="bn_b")(y)
    out = layers.Add(name="add_b")([y, h])  # used once (a model output): folded
    model = keras.Model(inp, out)
    _randomize_batchnorms(model)
    folded, report = inference_model(model)
    assert report.folded == {"bn_b": "conv_b"} and report.kept == ["bn_a"]
    np.testing.assert_allclose(
        np.asarray(folded(x)), np.asarray(model(x, training=False)), atol=1e-4
    )


#: (total, non-trainable) parameters of the folded zoo: every producer of a folded BatchNorm
#: carries a bias (conv gains one), the folded BatchNorms have no weights, the kept ones keep
#: 4 per channel (2 of them frozen; bn_shared and bn_add 5 channels, bn_act 4).
FOLDED_ZOO_COUNTS = (
    (3 * 3 * 3 * 8 + 8)  # conv, bias added by the fold
    + (3 * 3 * 8 + 8 * 6 + 6)  # sep: depthwise, pointwise, bias
    + (3 * 3 * 6 * 2 + 12)  # dw
    + (2 * 2 * 12 * 5 + 5)  # up
    + (5 * 5 + 5)  # shared
    + 4 * 5 + 4 * 5  # bn_shared, bn_add (kept)
    + (3 * 3 * 5 * 4 + 4)  # conv_relu
    + 4 * 4  # bn_act (kept)
    + (4 * 7 + 7)  # dense
    + (7 + 1),  # head
    2 * 5 + 2 * 5 + 2 * 4,
)


def test_folded_model_passes_the_model_tester(
    zoo: keras.Model, x: np.ndarray, tmp_path: Path, fresh_process
) -> None:
    """Config and .keras round trips (safe mode), a fresh process: the shared model tester."""
    folded, _ = inference_model(zoo)
    result = run_model_test(folded, x, expected_output_shape=(3, 1),
                            expected_params=FOLDED_ZOO_COUNTS, tmp_path=tmp_path,
                            fresh_process=fresh_process)
    # the loaded model's config equals this one's, FoldedBatchNormalization class names included
    assert isinstance(result.model.get_layer("bn_up"), FoldedBatchNormalization)


def test_bad_arguments_are_refused(zoo: keras.Model) -> None:
    with pytest.raises(ValueError, match="precision"):
        inference_model(zoo, precision="float16")  # type: ignore[arg-type]

    class Sub(keras.Model):
        def call(self, inputs):
            return inputs

    with pytest.raises(ValueError, match="not a functional"):
        inference_model(Sub())
