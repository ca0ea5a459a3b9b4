"""The exported SavedModel gives what the ``.keras`` model + the stage's preprocessing give."""

from __future__ import annotations

import json

import keras
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from mammo_common.keras.deployment.export import (
    EXPORT_INFO,
    SIGNATURES,
    export_classifier,
    export_segmentation,
    resize_like_skimage,
)
from mammo_common.keras.deployment.inference import predict_probabilities
from mammo_common.keras.training.data import prepare_image

TOL = 1e-4


@pytest.fixture(scope="module")
def seg_export(tmp_path_factory):
    from mammo_common.keras.networks import unet5l

    keras.utils.set_random_seed(1)
    model = unet5l.build((32, 32, 3), filters=2)
    out = tmp_path_factory.mktemp("export") / "seg"
    export_segmentation(model, out, info={"model_id": "x"})
    return model, tf.saved_model.load(str(out)), out


@pytest.mark.parametrize("shape", [(97, 61), (20, 50), (32, 32)])
def test_resize_matches_scikit_image(shape):
    rng = np.random.default_rng(0)
    image = rng.integers(0, 65535, shape, dtype=np.uint16)
    want = prepare_image(image, (24, 32), 1)
    x = tf.constant(image.astype(np.float32) / 65535.0)[None, ..., None]
    got = resize_like_skimage(tf, x, (24, 32)).numpy()[0]
    np.testing.assert_allclose(got, want, atol=1e-5)


@pytest.mark.parametrize("dtype", ["uint16", "uint8", "float32"])
def test_segmentation_export_matches_predict_probabilities(seg_export, dtype):
    model, loaded, _ = seg_export
    rng = np.random.default_rng(3)
    for shape in [(2, 75, 50), (1, 20, 40)]:  # shrinking and enlarging, batches of 2 and 1
        raw = rng.integers(0, 65535, shape, dtype=np.uint16)
        images = {
            "uint16": raw,
            "uint8": (raw >> 8).astype(np.uint8),
            "float32": raw.astype(np.float32) / 65535.0,
        }[dtype]
        endpoint = "serve" if dtype == "uint16" else f"serve_{dtype}"
        got = getattr(loaded, endpoint)(tf.constant(images))["probabilities"].numpy()
        want = predict_probabilities([model], images)
        assert got.shape == images.shape and got.dtype == np.float32
        np.testing.assert_allclose(got, want, atol=TOL)


def test_segmentation_export_signatures_and_info(seg_export):
    _, loaded, out = seg_export
    assert set(SIGNATURES) | {"serving_default"} <= set(loaded.signatures)
    fn = loaded.signatures["serving_default"]
    result = fn(images=tf.zeros((1, 40, 30), tf.uint16))
    assert result["probabilities"].shape == (1, 40, 30)
    info = json.loads((out / EXPORT_INFO).read_text())
    assert info["task"] == "segmentation" and info["model_input_shape"] == [32, 32, 3]
    assert info["model_id"] == "x"


def test_classifier_export_matches_model(tmp_path):
    keras.utils.set_random_seed(2)
    inputs = keras.Input((24, 24, 3))
    x = keras.layers.Conv2D(4, 3, activation="relu")(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inputs, keras.layers.Dense(1, activation="sigmoid")(x))
    export_classifier(model, tmp_path / "cls")
    loaded = tf.saved_model.load(str(tmp_path / "cls"))
    rng = np.random.default_rng(5)
    crops = rng.random((3, 57, 57)).astype(np.float32)
    got = loaded.serve_float32(tf.constant(crops))["probability"].numpy()
    resized = np.stack([
        np.asarray(Image.fromarray(c).resize((24, 24), Image.Resampling.BILINEAR)) for c in crops
    ])
    x = np.repeat(np.clip(resized, 0, 1)[..., None], 3, axis=-1)
    want = np.asarray(model.predict_on_batch(x)).reshape(-1)
    assert got.shape == (3,)
    np.testing.assert_allclose(got, want, atol=TOL)
    u16 = (crops * 65535).round().astype(np.uint16)
    got16 = loaded.serve(tf.constant(u16))["probability"].numpy()
    np.testing.assert_allclose(got16, want, atol=1e-3)


def test_existing_export_is_refused(seg_export):
    from mammo_common.errors import MammoError

    model, _, out = seg_export
    with pytest.raises(MammoError, match="exists"):
        export_segmentation(model, out)


def test_onnx_export_matches_savedmodel(seg_export, tmp_path):
    # Hard dependencies of this test: the common_keras session installs mammo-common[onnx]
    # (tf2onnx, onnx, onnxruntime), so a missing converter is an error, not a skip. Imported
    # here rather than at the top so the rest of the module runs without the extra.
    import onnxruntime as ort
    import tf2onnx  # noqa: F401  (export_onnx imports it; fail here, by name, if absent)

    from mammo_common.keras.deployment.export import export_onnx

    _, loaded, out = seg_export
    from mammo_common.errors import ConfigError

    try:
        onnx_path = export_onnx(out, tmp_path / "model.onnx")
    except ConfigError as exc:  # the converter's known, intermittent batch-dimension bug
        assert "disagrees with the SavedModel" in str(exc)
        assert not (tmp_path / "model.onnx").exists(), "a wrong conversion is never kept"
        pytest.xfail(f"tf2onnx mis-converted 3 times in a row: {exc}")
    session = ort.InferenceSession(str(onnx_path))
    images = np.random.default_rng(7).integers(0, 65535, (2, 45, 37), dtype=np.uint16)
    got = session.run(None, {"images": images})[0]
    want = loaded.serve(tf.constant(images))["probabilities"].numpy()
    np.testing.assert_allclose(got, want, atol=TOL)
