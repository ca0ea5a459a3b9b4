"""Tests of the non-encoder mass-segmentation networks and the model registry.

Covers ``unet5l`` (shared, :mod:`mammo_common.keras.networks.unet5l`), ``resunet``,
``multiresunet``, ``attention_unet`` and ``unetpp``: the shared model tester
(:func:`mammo_common.testing.run_model_test`: exact published parameter counts at the
reference widths, get_config/from_config, ``.keras`` round trip, loading in a fresh process,
forward shape), tiny forward passes, one training step, input validation, mixed precision,
and a short learning test of a tiny unet5l on synthetic disks. Plus the registry in
:mod:`massseg.models`.
"""

from __future__ import annotations

import importlib
import os
import subprocess
import sys

import keras
import numpy as np
import pytest

import massseg.models as registry
from mammo_common.keras.networks import unet5l as shared_unet5l
from mammo_common.keras.networks import validate_input_shape
from mammo_common.testing import run_model_test

pytestmark = pytest.mark.usefixtures("keras_session")

PLAIN = ("unet5l", "resunet", "multiresunet", "attention_unet", "unetpp")

# name -> (total, non-trainable) at the reference widths: ARCHITECTURES.md (counted there at
# 640x640); unetpp is our own design. The networks are fully convolutional, so the counts do
# not depend on the input size: the model tester builds them at TESTER_SIDES.
REFERENCE_COUNTS = {
    "unet5l": (1_947_153, 3_168),
    "resunet": (8_226_113, 6_400),
    "multiresunet": (7_269_294, 24_520),
    "attention_unet": (11_021_957, 6_720),
    "unetpp": (9_053_121, 7_296),
}
TESTER_SIDES = (64, 96)  # non-square, multiples of 32

# Tiny CPU versions: (input shape, width kwargs). Sides are registry multiples (32).
TINY = {
    "unet5l": ((64, 64, 1), {"filters": 4}),
    "resunet": ((64, 64, 1), {"filters": (4, 8, 8, 16)}),
    "multiresunet": ((64, 64, 3), {"filters": (4, 8, 8, 16, 16)}),
    "attention_unet": ((64, 64, 3), {"filters": 4}),
    "unetpp": ((64, 64, 3), {"filters": (4, 8, 8, 16, 16)}),
}


def _tiny(name: str) -> keras.Model:
    shape, kwargs = TINY[name]
    keras.utils.set_random_seed(0)
    return registry.build_model(name, shape, **kwargs)


def _batch(name: str, batch: int = 2, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    shape, _ = TINY[name]
    rng = np.random.default_rng(seed)
    x = rng.random((batch, *shape), dtype=np.float32)
    y = (rng.random((batch, *shape[:2], 1)) > 0.7).astype(np.float32)
    return x, y


def soft_dice_loss(y_true, y_pred):
    """1 - soft Dice pooled over the batch (smooth 1)."""
    y_true = keras.ops.cast(y_true, y_pred.dtype)
    inter = keras.ops.sum(y_true * y_pred)
    return 1.0 - (2.0 * inter + 1.0) / (keras.ops.sum(y_true) + keras.ops.sum(y_pred) + 1.0)


# --------------------------------------------------------------------------- registry


def test_model_names_are_the_ten_networks():
    assert len(registry.MODEL_NAMES) == 10
    assert set(registry.MODEL_NAMES) == {
        "unet5l",
        "unetpp_xception",
        "unet_xception",
        "unet_vgg16",
        "unet_resnet50",
        "deeplabv3plus",
        "resunet",
        "multiresunet",
        "attention_unet",
        "unetpp",
    }


def test_unknown_name_lists_valid_names():
    for call in (
        lambda: registry.build_model("unet3000"),
        lambda: registry.default_input_shape("unet3000"),
        lambda: registry.input_multiple("unet3000"),
        lambda: registry.describe_models(["unet3000"]),
    ):
        with pytest.raises(ValueError, match="unet3000") as info:
            call()
        for name in registry.MODEL_NAMES:
            assert name in str(info.value)


def test_registry_imports_without_keras():
    code = (
        "import sys, massseg.models as m; "
        "assert 'keras' not in sys.modules and 'tensorflow' not in sys.modules; "
        "assert m.input_multiple('unet5l') == 16; print(len(m.MODEL_NAMES))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert out.stdout.strip() == "10"


def test_input_multiples():
    assert registry.input_multiple("unet5l") == 16
    for name in registry.MODEL_NAMES:
        if name != "unet5l":
            assert registry.input_multiple(name) == 32
    for name in PLAIN:
        structural = importlib.import_module(f"massseg.models.{name}").INPUT_MULTIPLE
        assert registry.input_multiple(name) % structural == 0


@pytest.mark.parametrize("name", PLAIN)
def test_module_contract_and_default_shape(name):
    module = importlib.import_module(f"massseg.models.{name}")
    expected = (640, 640, 1) if name in ("unet5l", "resunet") else (640, 640, 3)
    assert tuple(module.DEFAULT_INPUT_SHAPE) == expected
    assert registry.default_input_shape(name) == expected
    assert callable(module.build)


def test_describe_models_without_counts_is_cheap():
    rows = registry.describe_models()
    assert [r["name"] for r in rows] == list(registry.MODEL_NAMES)
    for row in rows:
        assert row["total_params"] is None and row["non_trainable_params"] is None
        assert row["input_multiple"] == registry.input_multiple(row["name"])
    plain = {r["name"]: r for r in rows if r["name"] in PLAIN}
    assert all(r["available"] and r["error"] is None for r in plain.values())
    assert plain["unet5l"]["default_input_shape"] == (640, 640, 1)


def test_describe_models_counts_parameters():
    (row,) = registry.describe_models(["unet5l"], count_params=True)
    assert (row["total_params"], row["non_trainable_params"]) == (1_947_153, 3_168)


def test_build_model_uses_default_shape():
    model = registry.build_model("unet5l", filters=2)
    assert tuple(model.input_shape) == (None, 640, 640, 1)


def test_build_model_enforces_registry_multiple():
    # resunet itself accepts multiples of 8; the registry asks for 32 like its peers.
    with pytest.raises(ValueError, match="multiples of 32"):
        registry.build_model("resunet", (40, 64, 1), filters=(2, 2, 2, 2))
    model = importlib.import_module("massseg.models.resunet").build(
        (40, 64, 1), filters=(2, 2, 2, 2)
    )
    assert tuple(model.output_shape) == (None, 40, 64, 1)


# ---------------------------------------------------------------- the model tester


@pytest.mark.parametrize("name", PLAIN)
def test_network_passes_the_model_tester(name, fresh_process, tmp_path):
    """Reference widths: published counts, config and .keras round trips, fresh process."""
    shape = (*TESTER_SIDES, registry.default_input_shape(name)[2])
    x = np.random.default_rng(0).random((2, *shape), dtype=np.float32)
    result = run_model_test(
        lambda: registry.build_model(name, shape),
        x,
        expected_output_shape=(2, *TESTER_SIDES, 1),
        expected_params=REFERENCE_COUNTS[name],
        tmp_path=tmp_path,
        fresh_process=fresh_process,
    )
    assert registry.count_parameters(result.model) == REFERENCE_COUNTS[name]
    (y,) = result.outputs
    assert y.min() >= 0.0 and y.max() <= 1.0
    assert result.model.layers[-1].name == "output"


def test_every_plain_network_has_a_reference_count():
    assert set(REFERENCE_COUNTS) == set(PLAIN)


def test_shared_unet5l_counts_do_not_depend_on_size_or_need_registry():
    model = shared_unet5l.build((1024, 768, 1))
    assert registry.count_parameters(model) == REFERENCE_COUNTS["unet5l"]
    assert isinstance(model, shared_unet5l.UNet5L)


# ----------------------------------------------------------------- tiny behaviour


@pytest.mark.parametrize("name", PLAIN)
def test_tiny_forward_shape_and_range(name):
    model = _tiny(name)
    x, _ = _batch(name, batch=3)
    y = np.asarray(model(x, training=False))
    assert y.shape == (3, *x.shape[1:3], 1)
    assert y.dtype == np.float32
    assert np.all(np.isfinite(y)) and y.min() >= 0.0 and y.max() <= 1.0
    assert model.layers[-1].name == "output"


@pytest.mark.parametrize("name", PLAIN)
def test_tiny_train_step(name):
    """One graph-mode step moves the weights (save/load: the model tester above)."""
    model = _tiny(name)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss=soft_dice_loss)
    x, y = _batch(name)
    before = [w.numpy() for w in model.trainable_weights]
    loss = model.train_on_batch(x, y)  # graph mode, as in training
    assert np.isfinite(float(np.asarray(loss).ravel()[0]))
    after = [w.numpy() for w in model.trainable_weights]
    assert any(not np.array_equal(b, a) for b, a in zip(before, after, strict=True))


@pytest.mark.parametrize("name", PLAIN)
@pytest.mark.parametrize("bad", ["side", "rank", "channels"])
def test_bad_input_shape_is_a_clear_value_error(name, bad):
    shape, kwargs = TINY[name]
    module = importlib.import_module(f"massseg.models.{name}")
    if bad == "side":
        odd = (shape[0] + module.INPUT_MULTIPLE // 2, shape[1], shape[2])
        with pytest.raises(ValueError, match=rf"multiples of {module.INPUT_MULTIPLE}"):
            module.build(odd, **kwargs)
        with pytest.raises(ValueError, match=rf"multiples of {registry.input_multiple(name)}"):
            registry.build_model(name, odd, **kwargs)
    elif bad == "rank":
        with pytest.raises(ValueError, match=r"\(height, width, channels\)"):
            module.build(shape[:2], **kwargs)
    else:
        with pytest.raises(ValueError, match="channels"):
            module.build((*shape[:2], 0), **kwargs)


@pytest.mark.parametrize("name", PLAIN)
def test_mixed_precision_output_is_float32(name):
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_float16")
    try:
        model = _tiny(name)
        assert model.layers[1].compute_dtype == "float16"
        assert keras.backend.standardize_dtype(model.outputs[0].dtype) == "float32"
    finally:
        keras.config.set_dtype_policy(previous)


@pytest.mark.parametrize(
    ("name", "kwargs"),
    [
        ("unet5l", {"filters": 0}),
        ("unet5l", {"dropout": 1.0}),
        ("resunet", {"filters": (4, 8, 16)}),
        ("multiresunet", {"filters": (2, 4, 8, 16, 32)}),  # 2 * 1.67 * 0.167 < 1 filter
        ("attention_unet", {"filters": 0}),
        ("unetpp", {"filters": (4, 8, 16, 32)}),
    ],
)
def test_bad_widths_are_rejected(name, kwargs):
    with pytest.raises(ValueError, match=name):
        registry.build_model(name, TINY[name][0], **kwargs)


def test_weights_argument(tmp_path):
    model = _tiny("unet5l")
    x, _ = _batch("unet5l")
    path = tmp_path / "tiny.weights.h5"
    model.save_weights(path)
    again = registry.build_model("unet5l", (64, 64, 1), filters=4, weights=path)
    np.testing.assert_allclose(again(x, training=False), model(x, training=False))
    with pytest.raises(ValueError, match="no pretrained weights"):
        registry.build_model("resunet", (64, 64, 1), filters=(4, 8, 8, 16), weights="imagenet")


@pytest.mark.parametrize("name", ["unet5l", "unetpp", "attention_unet", "resunet",
                                  "multiresunet"])
def test_auto_weights_start_a_network_without_imagenet_weights_at_random(name):
    """params-full.yaml gives every mass network `weights: auto` (found by the full smoke run:
    the five networks without an ImageNet encoder refused it and the grid stopped)."""
    keras.utils.set_random_seed(0)
    auto = registry.build_model(name, TINY[name][0], weights="AUTO", **TINY[name][1])
    keras.utils.set_random_seed(0)
    scratch = registry.build_model(name, TINY[name][0], weights=None, **TINY[name][1])
    for a, b in zip(auto.get_weights(), scratch.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)


def test_unet5l_free_size_and_three_channels():
    model = registry.build_model("unet5l", (None, None, 1), filters=2)
    assert tuple(model(np.zeros((1, 32, 48, 1), np.float32)).shape) == (1, 32, 48, 1)
    three = registry.build_model("unet5l", (64, 64, 3), filters=2)
    assert tuple(three.input_shape) == (None, 64, 64, 3)
    assert shared_unet5l.DEFAULT_INPUT_SHAPE == (640, 640, 1)


def test_layer_names_follow_the_papers():
    names = {layer.name for layer in _tiny("unetpp").layers}
    for i in range(5):
        for j in range(5 - i):
            assert f"x_{i}_{j}_conv1" in names
    assert "x_0_4_concat" in names and "x_0_4_up" in names
    names = {layer.name for layer in _tiny("attention_unet").layers}
    for level in range(6, 10):
        assert {f"att{level}_W_x", f"att{level}_W_g", f"att{level}_psi"} <= names
    names = {layer.name for layer in _tiny("multiresunet").layers}
    assert {"mresblock1_conv3x3", "mresblock9_conv7x7", "respath1_4_add", "respath4_1_bn"} <= (
        names
    )
    names = {layer.name for layer in _tiny("unet5l").layers}
    assert "up6_bn" not in names and {"up7_bn", "up8_bn", "up9_bn"} <= names


def test_validate_input_shape_helper():
    assert validate_input_shape((64, None, 3), 16, "net") == (64, None, 3)
    with pytest.raises(ValueError, match="net: input height and width"):
        validate_input_shape((0, 64, 1), 16, "net")
    with pytest.raises(ValueError, match="net: input_shape"):
        validate_input_shape("abc", 16, "net")


def test_other_backend_if_available():
    """Build and run the tiny networks under JAX when JAX is installed (keras.ops only)."""
    # jax is optional here: no dependency of mammo-massseg nor of its nox session (the jax
    # session runs every network under JAX itself, tests/backends).
    pytest.importorskip("jax")
    code = (
        "import numpy as np, massseg.models as m\n"
        "for n, (s, kw) in " + repr(TINY) + ".items():\n"
        "    y = np.asarray(m.build_model(n, s, **kw)(np.zeros((1, *s), 'float32')))\n"
        "    assert y.shape == (1, *s[:2], 1), n\n"
    )
    env = dict(os.environ, KERAS_BACKEND="jax")
    subprocess.run([sys.executable, "-c", code], env=env, check=True, timeout=300)


# ---------------------------------------------------------------------- learning


def _disks(n: int, size: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Bright disks of random radius and centre on a noisy background, and their masks."""
    yy, xx = np.mgrid[:size, :size]
    images = rng.normal(0.3, 0.1, (n, size, size)).astype(np.float32)
    masks = np.zeros((n, size, size), np.float32)
    for k in range(n):
        radius = rng.uniform(5, 14)
        cy, cx = rng.uniform(radius, size - radius, 2)
        disk = (yy - cy) ** 2 + (xx - cx) ** 2 <= radius**2
        masks[k] = disk
        images[k][disk] += rng.uniform(0.3, 0.5)
    return np.clip(images, 0, 1)[..., None], masks[..., None]


def _mean_dice(model: keras.Model, x: np.ndarray, y: np.ndarray) -> float:
    pred = np.asarray(model(x, training=False)) > 0.5
    truth = y > 0.5
    inter = (pred & truth).sum(axis=(1, 2, 3))
    total = pred.sum(axis=(1, 2, 3)) + truth.sum(axis=(1, 2, 3))
    return float(np.mean(2 * inter / np.maximum(total, 1)))


def test_tiny_unet5l_learns_disks():
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    x_train, y_train = _disks(256, 64, rng)
    x_test, y_test = _disks(32, 64, rng)
    model = registry.build_model("unet5l", (64, 64, 1), filters=4)
    untrained = _mean_dice(model, x_test, y_test)
    epochs, batch = 16, 16  # 256 steps
    lr = keras.optimizers.schedules.CosineDecay(5e-3, decay_steps=epochs * 256 // batch, alpha=0.02)
    model.compile(optimizer=keras.optimizers.Adam(lr), loss=soft_dice_loss)
    model.fit(x_train, y_train, batch_size=batch, epochs=epochs, shuffle=True, verbose=0)
    trained = _mean_dice(model, x_test, y_test)
    assert untrained < 0.5
    assert trained >= 0.8, (untrained, trained)


def test_weights_origin_names_what_auto_gives(monkeypatch: pytest.MonkeyPatch) -> None:
    """The model card's ``weights_origin``: ``auto`` is random initialisation for a network
    without an ImageNet encoder, ImageNet for an encoder network only when its set can be had."""
    from mammo_common.keras.networks import weights as weights_mod

    assert [registry.encoder_of(n) for n in PLAIN] == [None] * len(PLAIN)
    assert registry.encoder_of("unet_vgg16") == "vgg16"
    assert registry.encoder_of("unet_resnet50") == "resnet50"
    assert registry.encoder_of("unetpp_xception") == "xception"
    assert registry.encoder_of("deeplabv3plus") == "resnet50"
    for name in PLAIN:
        assert registry.weights_origin(name, "auto") == "scratch"
        assert registry.weights_origin(name, None) == "scratch"
    assert registry.weights_origin("unet_vgg16", "imagenet") == "imagenet"
    assert registry.weights_origin("unet_vgg16", "/w/vgg.h5") == "/w/vgg.h5"
    monkeypatch.setattr(weights_mod, "download_allowed", lambda: True)
    assert registry.weights_origin("unet_vgg16", "auto") == "imagenet"
    monkeypatch.setattr(weights_mod, "download_allowed", lambda: False)
    monkeypatch.setattr(weights_mod.ImageNetFiles, "cached", lambda self, include_top: None)
    assert registry.weights_origin("unet_vgg16", "auto") == "scratch"
