"""The one encoder registry (``mammo_common.keras.networks.encoders``) and its weights resolution.

Every registered encoder resolves by name; the segmentation encoders' taps and pyramid
levels P1..P5 have the strides they claim (built at a small input); each preprocessing mode
matches the ``preprocess_input`` of the encoder's ``keras.applications`` module; input
multiples are enforced; and ``weights="auto"`` offline (an empty temporary ``KERAS_HOME``)
says so once and builds from scratch. Nothing here downloads: every download entry point
fails the test.
"""

from __future__ import annotations

import importlib
import logging
import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import numpy as np
import pytest

# mammo-common's core session (no Keras) does not collect this module (conftest KERAS_MODULES)
from mammo_common.keras.networks import encoders as enc
from mammo_common.keras.networks import weights as wts

pytestmark = pytest.mark.keras

#: The segmentation encoders, with taps and levels P1..P5.
PYRAMID = ["resnet50", "vgg16", "xception"]
#: Encoders whose ImageNet weight files are registered (by file stem).
WEIGHT_FILES = {
    "inceptionv3": "inception_v3",
    "resnet50": "resnet50",
    "resnet50v2": "resnet50v2",
    "vgg16": "vgg16",
    "xception": "xception",
}
#: Small input, multiples of 32, not square: Xception's short maps need padding at it.
SMALL = (64, 96, 3)


@pytest.fixture(autouse=True)
def no_download(monkeypatch):
    """Make every weight download entry point fail the test."""

    def _fail(*args, **kwargs):
        raise AssertionError(f"unexpected download attempt: {args}")

    monkeypatch.setattr(keras.utils, "get_file", _fail)
    file_utils = importlib.import_module("keras.src.utils.file_utils")
    monkeypatch.setattr(file_utils, "get_file", _fail)


@pytest.fixture
def fresh_session():
    """Release the Keras graph state of the models a test builds."""
    yield
    keras.backend.clear_session()


@pytest.fixture
def offline_home(tmp_path, monkeypatch):
    """An empty Keras home, downloads not allowed, and a fresh 'logged once' state."""
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    monkeypatch.delenv(wts.ALLOW_DOWNLOAD_ENV, raising=False)
    monkeypatch.setattr(wts, "_logged_offline", set())
    return tmp_path


@pytest.fixture
def registry(monkeypatch):
    """A copy of the registry that a test may add to."""
    monkeypatch.setattr(enc, "ENCODERS", dict(enc.ENCODERS))
    return enc.ENCODERS


def _mammo_warnings(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "mammo"]


# ------------------------------------------------------------------------------ registry


def test_every_registered_encoder_resolves():
    encoders = enc.list_encoders()
    names = [e.name for e in encoders]
    assert names == sorted(names) and len(names) == len(set(names))
    for spec in encoders:
        assert enc.get_encoder(spec.name) is spec
        assert enc.get_encoder(spec.name.upper()) is spec
        assert spec.name == enc.encoder_key(spec.name)
        assert callable(spec.builder)
        assert spec.preprocessing in enc.PREPROCESSING_MODES
        assert spec.preprocess == spec.preprocessing
        assert spec.input_multiple >= 1 and spec.channels >= 1
        assert spec.imagenet is None or spec.pretrained
        if spec.source.startswith("keras.applications."):
            constructor = spec.source.removeprefix("keras.applications.")
            assert callable(getattr(keras.applications, constructor))
            assert spec.pretrained and spec.input_multiple == 32


def test_every_keras_application_is_registered():
    names = {e.name for e in enc.list_encoders()}
    for expected in ("xception", "vgg16", "vgg19", "resnet50", "resnet50v2", "inceptionv3",
                     "densenet121", "mobilenetv2", "efficientnetb0", "convnexttiny"):
        assert expected in names
    assert enc.get_encoder("ResNet50-V2").name == "resnet50v2"
    assert enc.get_encoder("inception_v3").name == "inceptionv3"
    with pytest.raises(ValueError, match="Unknown encoder 'vgg17'; valid encoders: "):
        enc.get_encoder("vgg17")


def test_pyramid_encoders_and_their_levels():
    assert [e.name for e in enc.list_encoders(pyramid=True)] == PYRAMID
    assert enc.get_encoder_spec("Xception") is enc.get_encoder("xception")
    assert enc.get_encoder("xception").pyramid == {
        "P1": "block2_sepconv2_bn",
        "P2": "block3_sepconv2_bn",
        "P3": "block4_sepconv2_bn",
        "P4": "block13_sepconv2_bn",
        "P5": "block14_sepconv2_act",
    }
    assert enc.get_encoder("vgg16").pyramid["P4"] == "block5_conv3"
    assert enc.get_encoder("resnet50").pyramid["P2"] == "conv2_block3_out"
    for name in PYRAMID:
        spec = enc.get_encoder(name)
        for k, level in enumerate(enc.LEVELS, start=1):
            assert spec.strides[level] == enc.level_stride(level) == 2**k
            assert spec.strides[spec.layer_of(level)] == 2**k
    with pytest.raises(ValueError, match="No skip taps .*'densenet121'; valid encoders: "
                                         "resnet50, vgg16, xception"):
        enc.get_encoder_spec("densenet121")
    with pytest.raises(ValueError, match="valid taps"):
        enc.get_encoder("vgg16").layer_of("P6")


def test_register_encoder_checks_and_normalises(registry):
    def builder(input_shape=None, weights=None, *, input_tensor=None):
        raise AssertionError("not built")

    spec = enc.register_encoder(enc.Encoder(name="My-Net", builder=builder))
    assert spec.name == "mynet" and enc.get_encoder("MY_NET") is spec
    assert spec.pyramid == {} and spec.resolve_weights("auto") is None
    with pytest.raises(ValueError, match="already registered"):
        enc.register_encoder(enc.Encoder(name="mynet", builder=builder))
    assert enc.register_encoder(
        enc.Encoder(name="mynet", builder=builder, input_multiple=8), overwrite=True
    ).input_multiple == 8
    with pytest.raises(ValueError, match="P2 must be a tap of stride 4"):
        enc.Encoder(name="bad", builder=builder,
                    taps=(("a", 2), ("b", 8), ("c", 8), ("d", 16), ("e", 32)),
                    levels=("a", "b", "c", "d", "e"))
    with pytest.raises(ValueError, match="P1..P5"):
        enc.Encoder(name="bad", builder=builder, taps=(("a", 2),), levels=("a",))
    with pytest.raises(ValueError, match="unknown preprocessing"):
        enc.Encoder(name="bad", builder=builder, preprocessing="bgr")


# ------------------------------------------------------------------------- taps, strides


@pytest.mark.usefixtures("fresh_session")
@pytest.mark.parametrize("name", PYRAMID)
def test_taps_have_the_strides_they_claim(name):
    """Raw taps are at their stride (a few pixels short at most); padded ones exactly."""
    spec = enc.get_encoder(name)
    h, w, _ = SMALL
    inputs = keras.Input(SMALL)
    _, raw = enc.build_encoder(name, inputs, weights=None, pad=False)
    assert set(raw) == {enc.INPUT_TAP, *dict(spec.taps)}
    for layer, stride in spec.taps:
        rh, rw = raw[layer].shape[1:3]
        assert h // (2 * stride) < rh <= h // stride, (layer, rh)
        assert w // (2 * stride) < rw <= w // stride, (layer, rw)

    keras.backend.clear_session()
    inputs = keras.Input(SMALL)
    wanted = [*enc.LEVELS, *dict(spec.taps)]
    model, taps = enc.build_encoder(name, inputs, taps=wanted, weights=None)
    for tap in wanted:
        stride = spec.strides[tap]
        assert tuple(taps[tap].shape[1:3]) == (h // stride, w // stride), tap
    for level, layer in spec.pyramid.items():
        assert taps[level] is taps[layer]
    assert model.count_params() > 0


@pytest.mark.usefixtures("fresh_session")
def test_padding_layers_keep_the_layer_names():
    inputs = keras.Input(SMALL)
    _, taps = enc.build_encoder("xception", inputs, taps=["input", "P1", "P2", "P4"],
                                weights=None)
    assert taps["input"] is inputs
    model = keras.Model(inputs, [taps["P1"], taps["P2"], taps["P4"]])
    names = {layer.name for layer in model.layers}
    assert {"block2_sepconv2_bn_pad", "block3_sepconv2_bn_pad"} <= names
    assert "block13_sepconv2_bn_pad" not in names  # stride 16 is exact


@pytest.mark.usefixtures("fresh_session")
def test_full_size_xception_levels():
    """The reference input (640x640): the short maps (317, 159) are padded to 320, 160."""
    _, raw = enc.build_encoder("xception", keras.Input((640, 640, 3)), taps=["P1", "P2"],
                               weights=None, pad=False)
    assert (raw["P1"].shape[1], raw["P2"].shape[1]) == (317, 159)


def test_classification_backbone_is_not_a_segmentation_encoder():
    with pytest.raises(ValueError, match="No skip taps"):
        enc.build_encoder("efficientnetb0", keras.Input((64, 64, 3)), weights=None)
    with pytest.raises(ValueError, match="valid taps"):
        enc.build_encoder("vgg16", keras.Input((32, 32, 3)), taps=["P6"], weights=None)


@pytest.mark.usefixtures("fresh_session")
def test_classification_backbone_builds_from_the_registry():
    spec = enc.get_encoder("mobilenetv2")
    model = spec.build((32, 32, 3), None, alpha=0.35)
    assert model.output.shape[1:3] == (1, 1)  # stride 32
    with pytest.raises(ValueError, match="'inceptionv3'.*InceptionV3.*cannot be built"):
        enc.get_encoder("inceptionv3").build((32, 32, 3), None)


# -------------------------------------------------------------------- input multiple


@pytest.mark.parametrize("name", PYRAMID)
@pytest.mark.parametrize("shape", [(48, 64, 3), (64, 80, 3)])
def test_input_multiple_is_enforced(name, shape):
    assert enc.get_encoder(name).input_multiple == 32
    with pytest.raises(ValueError, match="multiples of 32"):
        enc.build_encoder(name, keras.Input(shape), weights=None)


def test_check_input_shape():
    assert enc.check_input_shape((96, 128, 3)) == (96, 128, 3)
    assert enc.check_input_shape((24, 8, 1), multiple=8, channels=1) == (24, 8, 1)
    with pytest.raises(ValueError, match="e.g. to 128x128"):
        enc.check_input_shape((97, 128, 3))
    with pytest.raises(ValueError, match="3 input channels"):
        enc.check_input_shape((32, 32, 1), channels=3)
    with pytest.raises(ValueError, match="concrete"):
        enc.check_input_shape((None, 128, 3))


# ----------------------------------------------------------------------- preprocessing


def _keras_preprocess(spec: enc.Encoder, images: np.ndarray) -> np.ndarray:
    constructor = getattr(keras.applications, spec.source.removeprefix("keras.applications."))
    module = importlib.import_module(constructor.__module__)
    return np.asarray(module.preprocess_input(images * 255.0))


def test_preprocessing_matches_keras_preprocess_input():
    """Every keras.applications encoder: its mode on [0, 1] = its module's preprocess_input."""
    images = np.random.default_rng(0).random((2, 4, 5, 3)).astype(np.float32)
    checked = set()
    for spec in enc.list_encoders():
        if not spec.source.startswith("keras.applications."):
            continue
        expected = _keras_preprocess(spec, images.copy())
        got = keras.ops.convert_to_numpy(
            enc.preprocess_images(keras.ops.convert_to_tensor(images), spec.preprocessing)
        )
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-4, err_msg=spec.name)
        checked.add(spec.preprocessing)
    assert checked == set(enc.PREPROCESSING_MODES)


def test_preprocessing_modes():
    x = keras.ops.convert_to_tensor(np.array([[[[0.0, 0.5, 1.0]]]], np.float32))
    out = {m: keras.ops.convert_to_numpy(enc.preprocess_images(x, m))[0, 0, 0]
           for m in enc.PREPROCESSING_MODES}
    np.testing.assert_allclose(out["tf"], [-1.0, 0.0, 1.0])
    np.testing.assert_allclose(out["none"], [0.0, 127.5, 255.0])
    np.testing.assert_allclose(out["caffe"], [255.0 - 103.939, 127.5 - 116.779, -123.68],
                               rtol=1e-6)
    np.testing.assert_allclose(out["torch"], [-0.485 / 0.229, (0.5 - 0.456) / 0.224,
                                              (1.0 - 0.406) / 0.225], rtol=1e-6)
    assert enc.get_encoder("vgg16").preprocessing == "caffe"
    assert enc.get_encoder("xception").preprocessing == "tf"
    assert enc.get_encoder("densenet121").preprocessing == "torch"
    assert enc.get_encoder("efficientnetb0").preprocessing == "none"
    with pytest.raises(ValueError, match="unknown preprocessing mode"):
        enc.preprocess_images(x, "bgr")


# ----------------------------------------------------------------------------- weights


def test_registered_weight_files():
    for name, stem in WEIGHT_FILES.items():
        files = enc.get_encoder(name).imagenet
        assert files is not None and files.stem == stem
        assert wts.weights_file_name(name) == f"{stem}_weights_tf_dim_ordering_tf_kernels_notop.h5"
        assert wts.canonical_app_name(stem) == name
    assert {e.name for e in enc.list_encoders() if e.imagenet is not None} == set(WEIGHT_FILES)
    with pytest.raises(ValueError, match="valid names: inception_v3, resnet50, resnet50v2, "
                                         "vgg16, xception"):
        wts.resolve_weights("mobilenet", None)


def test_auto_offline_says_so_once_and_trains_from_scratch(offline_home, caplog):
    caplog.set_level(logging.WARNING, logger="mammo")
    vgg = enc.get_encoder("vgg16")
    assert vgg.resolve_weights("auto") is None
    assert vgg.resolve_weights() is None
    assert wts.resolve_weights("vgg16", "auto") is None
    messages = _mammo_warnings(caplog)
    assert len(messages) == 1
    assert "unavailable offline" in messages[0] and "from scratch" in messages[0]
    assert vgg.imagenet.file_name() in messages[0] and str(offline_home) in messages[0]

    # An application whose files are not registered: not looked up, scratch, said once.
    mobilenet = enc.get_encoder("mobilenetv2")
    assert mobilenet.resolve_weights("auto") is None
    assert mobilenet.resolve_weights("auto") is None
    messages = _mammo_warnings(caplog)
    assert len(messages) == 2 and "initialised randomly" in messages[1]


def test_auto_uses_the_keras_cache(offline_home):
    models = offline_home / "models"
    models.mkdir()
    cached = models / enc.get_encoder("vgg16").imagenet.file_name()
    cached.write_bytes(b"")
    assert enc.get_encoder("vgg16").resolve_weights("auto") == "imagenet"
    assert wts.cached_weights_path("vgg16") == cached
    # The cached file is used as it is (no download).
    assert wts.obtain_imagenet_file("vgg16", enc.get_encoder("vgg16").imagenet) == str(cached)
    assert enc.get_encoder("resnet50").resolve_weights("auto") is None


def test_auto_download_allowed(offline_home, monkeypatch):
    monkeypatch.setenv(wts.ALLOW_DOWNLOAD_ENV, "1")
    assert enc.get_encoder("resnet50").resolve_weights("auto") == "imagenet"
    assert enc.get_encoder("efficientnetb0").resolve_weights("auto") == "imagenet"


def test_none_imagenet_and_paths(tmp_path):
    spec = enc.get_encoder("xception")
    assert spec.resolve_weights(None) is None
    assert spec.resolve_weights("ImageNet") == "imagenet"
    with pytest.raises(FileNotFoundError, match="nothing_here.weights.h5"):
        spec.resolve_weights(tmp_path / "nothing_here.weights.h5")
    present = tmp_path / "w.h5"
    present.write_bytes(b"")
    assert spec.resolve_weights(present) == str(present)


@pytest.mark.usefixtures("fresh_session")
def test_offline_auto_builds_from_scratch(offline_home, caplog):
    caplog.set_level(logging.WARNING, logger="mammo")
    model, taps = enc.build_encoder("vgg16", keras.Input((32, 32, 3)), taps=["P5"])
    assert model.count_params() == 14_714_688
    assert tuple(taps["P5"].shape[1:3]) == (1, 1)
    assert len(_mammo_warnings(caplog)) == 1


@pytest.mark.usefixtures("fresh_session")
def test_imagenet_unobtainable_explains_the_offline_fix(offline_home):
    """The no_download fixture makes the download fail as offline."""
    with pytest.raises(RuntimeError, match="could not be obtained") as info:
        enc.get_encoder("xception").build((64, 64, 3), "imagenet")
    message = str(info.value)
    assert "xception_weights_tf_dim_ordering_tf_kernels_notop.h5" in message
    assert "~/.keras/models" in message and "weights=" in message


@pytest.mark.usefixtures("fresh_session")
def test_weight_file_loads(tmp_path):
    spec = enc.get_encoder("vgg16")
    source = spec.build((32, 32, 3), None)
    path = tmp_path / "vgg16.weights.h5"
    source.save_weights(path)
    keras.backend.clear_session()
    loaded = wts.build_application("vgg16", input_shape=(32, 32, 3), weights=path)
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(loaded.weights[0]), keras.ops.convert_to_numpy(source.weights[0])
    )


# the weights helpers' own names and argument checks (moved here from massseg's suite)


def test_weight_file_names():
    assert wts.weights_file_name("xception") == (
        "xception_weights_tf_dim_ordering_tf_kernels_notop.h5"
    )
    assert wts.weights_file_name("vgg16") == "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5"
    assert wts.weights_file_name("resnet50") == (
        "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5"
    )
    assert wts.weights_file_name("ResNet50V2") == (
        "resnet50v2_weights_tf_dim_ordering_tf_kernels_notop.h5"
    )
    assert wts.weights_file_name("inceptionv3") == (
        "inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5"
    )
    assert wts.weights_file_name("vgg16", include_top=True) == (
        "vgg16_weights_tf_dim_ordering_tf_kernels.h5"
    )


def test_resolve_none_and_imagenet():
    assert wts.resolve_weights("xception", None) is None
    assert wts.resolve_weights("xception", "imagenet") == "imagenet"


def test_resolve_paths(tmp_path):
    missing = tmp_path / "nothing_here.weights.h5"
    with pytest.raises(FileNotFoundError, match="nothing_here.weights.h5"):
        wts.resolve_weights("xception", str(missing))
    present = tmp_path / "w.h5"
    present.write_bytes(b"")
    assert wts.resolve_weights("xception", present) == str(present)
