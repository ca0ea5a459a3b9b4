"""Tests of the encoder-based mass segmentation networks and the shared encoder code.

Covers ``unetpp_xception``, ``unet_xception``, ``unet_vgg16``, ``unet_resnet50`` and
``deeplabv3plus`` (the shared model tester :func:`mammo_common.testing.run_model_test` at
the reference widths: published parameter counts, config and ``.keras`` round trips, a fresh
process; tiny forward/backward passes, input validation) plus ``mammo_common.keras.networks.encoders``
and ``mammo_common.keras.networks.weights``. Everything is built with ``weights=None``; nothing touches
the network.
"""

from __future__ import annotations

import importlib
import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import numpy as np
import pytest

from mammo_common.keras.networks import encoders as enc
from mammo_common.testing import ModelTestResult, run_model_test

# name -> (total, non-trainable) at 640x640x3, from ARCHITECTURES.md. The networks are fully
# convolutional: the counts do not depend on the input size, and the model tester builds the
# reference widths at TINY_SHAPE.
PUBLISHED_COUNTS = {
    "unetpp_xception": (17_222_989, 46_560),
    "unet_xception": (23_159_489, 53_376),
    "unet_vgg16": (25_862_337, 3_840),
    "unet_resnet50": (20_676_545, 34_432),
    "deeplabv3plus": (17_869_697, 34_784),
}

# Small widths for CPU tests; the encoders keep their ImageNet architecture.
TINY_KWARGS = {
    "unetpp_xception": {"filters": 2},
    "unet_xception": {"start_filters": 2},
    "unet_vgg16": {"decoder_filters": (8, 8, 4, 4)},
    "unet_resnet50": {"decoder_filters": (8, 8, 4, 4)},
    "deeplabv3plus": {"aspp_filters": 16, "low_level_filters": 8},
}
TINY_SHAPE = (64, 96, 3)  # non-square, multiples of 32: exercises the tap padding

MODELS = sorted(PUBLISHED_COUNTS)


def _module(name: str):
    return importlib.import_module(f"massseg.models.{name}")


@pytest.fixture
def fresh_session():
    """Release the Keras graph state of the models a test builds."""
    yield
    keras.backend.clear_session()


@pytest.fixture(scope="module")
def tested(fresh_process, tmp_path_factory):
    """``tested(name)``: the network at its reference width through the model tester.

    Built (and tested) once per module: the full-width Xception networks take seconds to
    build, and the node-name tests reuse them.
    """
    results: dict[str, ModelTestResult] = {}

    def get(name: str) -> ModelTestResult:
        if name not in results:
            x = np.random.default_rng(0).random((2, *TINY_SHAPE), dtype=np.float32)
            results[name] = run_model_test(
                lambda: _module(name).build(TINY_SHAPE, weights=None),
                x,
                expected_output_shape=(2, *TINY_SHAPE[:2], 1),
                expected_params=PUBLISHED_COUNTS[name],
                tmp_path=tmp_path_factory.mktemp(name),
                fresh_process=fresh_process,
            )
        return results[name]

    yield get
    results.clear()
    keras.backend.clear_session()


def _predict(model: keras.Model, x: np.ndarray) -> np.ndarray:
    # Eager calls: tracing a tf.function for these deep encoders costs far more on a CPU.
    return keras.ops.convert_to_numpy(model(x, training=False))


@pytest.fixture
def no_download(monkeypatch):
    """Make any weight download attempt fail loudly."""

    def _fail(*args, **kwargs):
        raise AssertionError(f"unexpected download attempt: {args}")

    monkeypatch.setattr(keras.utils, "get_file", _fail)


# --------------------------------------------------------------------------- networks


@pytest.mark.parametrize("name", MODELS)
def test_network_passes_the_model_tester(name, tested):
    """Reference widths: published counts, config and .keras round trips, fresh process."""
    assert _module(name).DEFAULT_INPUT_SHAPE == (640, 640, 3)
    result = tested(name)
    (y,) = result.outputs
    assert y.min() >= 0.0 and y.max() <= 1.0
    assert result.model.get_layer("mask").dtype_policy.compute_dtype == "float32"


@pytest.mark.usefixtures("fresh_session")
@pytest.mark.parametrize("name", MODELS)
def test_tiny_forward_backward(name):
    """Forward range and one training step (save/load: the model tester above)."""
    keras.utils.set_random_seed(0)
    model = _module(name).build(TINY_SHAPE, weights=None, **TINY_KWARGS[name])
    assert model.get_layer("mask").dtype_policy.compute_dtype == "float32"
    rng = np.random.default_rng(0)
    x = rng.random((2, *TINY_SHAPE), dtype=np.float32)
    y = (rng.random((2, *TINY_SHAPE[:2], 1)) > 0.7).astype(np.float32)

    pred = _predict(model, x)
    assert pred.shape == (2, *TINY_SHAPE[:2], 1)
    assert np.all(pred >= 0.0) and np.all(pred <= 1.0)

    model.compile(
        optimizer=keras.optimizers.Adam(1e-4), loss="binary_crossentropy", run_eagerly=True
    )
    before = [w.numpy() for w in model.trainable_weights]
    loss = model.train_on_batch(x, y)
    assert np.isfinite(float(np.ravel(loss)[0]))
    after = [w.numpy() for w in model.trainable_weights]
    assert any(not np.array_equal(b, a) for b, a in zip(before, after, strict=True))


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize("shape", [(100, 100, 3), (64, 80, 3)])
def test_input_not_multiple_of_32_is_rejected(name, shape):
    with pytest.raises(ValueError, match="multiples of 32"):
        _module(name).build(shape, weights=None)


@pytest.mark.parametrize("name", MODELS)
def test_wrong_channel_count_is_rejected(name):
    with pytest.raises(ValueError, match="3 input channels"):
        _module(name).build((64, 64, 1), weights=None)


@pytest.mark.usefixtures("fresh_session")
def test_from_config_never_fetches_imagenet(no_download):
    module = _module("unet_vgg16")
    model = module.build((32, 32, 3), weights=None, decoder_filters=(4, 4, 4, 4))
    config = {**model.get_config(), "weights": "imagenet"}
    keras.backend.clear_session()
    rebuilt = type(model).from_config(config)
    assert rebuilt.count_params() == model.count_params()


@pytest.mark.usefixtures("fresh_session")
def test_unetpp_deep_supervision_outputs():
    model = _module("unetpp_xception").build((32, 32, 3), filters=2, deep_supervision=True)
    assert [tuple(t.shape) for t in model.outputs] == [(None, 32, 32, 1)] * 4
    for head in ("mask_1_2", "mask_1_3", "mask_1_4", "mask"):
        assert model.get_layer(head).dtype_policy.compute_dtype == "float32"


def test_unetpp_node_names(tested):
    model = tested("unetpp_xception").model
    names = {layer.name for layer in model.layers}
    for j in range(2, 6):
        for i in range(1, 7 - j):
            for part in ("up", "concat", "conv1", "bn1", "drop1", "conv2", "bn2", "drop2"):
                assert f"x_{i}_{j}_{part}" in names
    assert {"block2_sepconv2_bn_pad", "block3_sepconv2_bn_pad"} <= names


@pytest.mark.usefixtures("fresh_session")
def test_mixed_precision_output_is_float32():
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_float16")
    try:
        model = _module("deeplabv3plus").build((32, 32, 3), aspp_filters=8, low_level_filters=8)
        assert model.get_layer("decoder_conv1").dtype_policy.compute_dtype == "float16"
        assert keras.backend.standardize_dtype(model.outputs[0].dtype) == "float32"
    finally:
        keras.config.set_dtype_policy(previous)


# --------------------------------------------------------------------------- encoders


def test_unknown_encoder_lists_valid_names():
    with pytest.raises(ValueError, match="valid encoders: resnet50, vgg16, xception"):
        enc.get_encoder_spec("efficientnet")
    with pytest.raises(ValueError, match="xception"):
        enc.build_encoder("nope", keras.Input((64, 64, 3)), weights=None)


def test_encoder_specs_have_published_taps():
    assert enc.get_encoder_spec("Xception").taps_at(2) == ["block2_sepconv2_bn"]
    vgg = enc.get_encoder_spec("vgg16")
    assert [vgg.taps_at(s)[0] for s in (1, 2, 4, 8, 16)] == [
        "block1_conv2",
        "block2_conv2",
        "block3_conv3",
        "block4_conv3",
        "block5_conv3",
    ]
    resnet = enc.get_encoder_spec("resnet50")
    assert resnet.taps_at(4) == ["conv2_block2_out", "conv2_block3_out"]
    assert resnet.preprocessing == "caffe" and enc.get_encoder_spec("xception").input_multiple == 32


@pytest.mark.usefixtures("fresh_session")
@pytest.mark.parametrize("shape", [(96, 128, 3), (640, 640, 3)])
def test_xception_taps_padded_to_stride(shape):
    h, w, _ = shape
    _, taps = enc.build_encoder("xception", keras.Input(shape), weights=None)
    strides = enc.get_encoder_spec("xception").strides
    for tap, tensor in taps.items():
        assert tuple(tensor.shape[1:3]) == (h // strides[tap], w // strides[tap]), tap
    assert taps["block2_sepconv2_bn"].shape[-1] == 128


@pytest.mark.usefixtures("fresh_session")
def test_xception_raw_taps_are_short_without_padding():
    _, taps = enc.build_encoder(
        "xception", keras.Input((96, 128, 3)), taps=["block2_sepconv2_bn"], weights=None, pad=False
    )
    assert tuple(taps["block2_sepconv2_bn"].shape[1:3]) == (45, 61)


@pytest.mark.usefixtures("fresh_session")
def test_pad_to_stride_top_left_and_errors():
    x = keras.Input((45, 61, 2))
    padded = enc.pad_to_stride(x, (96, 128), 2, name="p")
    assert tuple(padded.shape[1:]) == (48, 64, 2)
    probe = keras.Model(x, padded)
    out = _predict(probe, np.ones((1, 45, 61, 2), np.float32))
    assert out[0, :3].sum() == 0 and out[0, :, :3].sum() == 0  # zeros on top and left
    assert out[0, 3:, 3:].min() == 1.0
    assert enc.pad_to_stride(x, (90, 122), 2) is x  # already the target size
    with pytest.raises(ValueError, match="larger"):
        enc.pad_to_stride(x, (64, 64), 2)


def test_unknown_tap_is_rejected():
    with pytest.raises(ValueError, match="valid taps"):
        enc.build_encoder("vgg16", keras.Input((32, 32, 3)), taps=["block9_conv1"], weights=None)


def test_check_input_shape():
    assert enc.check_input_shape((96, 128, 3)) == (96, 128, 3)
    with pytest.raises(ValueError, match="multiples of 32"):
        enc.check_input_shape((97, 128, 3))
    with pytest.raises(ValueError, match="concrete"):
        enc.check_input_shape((None, 128, 3))
