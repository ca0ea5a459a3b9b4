"""FusedBatchNormalization trains exactly like Keras' BatchNormalization, via the fused kernel."""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import pytest

from mammo_common.keras.training.fused_batchnorm import (
    FusedBatchNormalization,
    use_fused_batchnorm,
)
from mammo_common.testing import run_model_test

layers = keras.layers


def _model(momentum: float = 0.9, frozen: bool = False) -> keras.Model:
    keras.utils.set_random_seed(0)
    inp = keras.Input((12, 10, 3))
    x = layers.Conv2D(6, 3, padding="same", name="conv")(inp)
    bn = layers.BatchNormalization(momentum=momentum, name="bn")
    bn.trainable = not frozen
    x = layers.ReLU(name="relu")(bn(x))
    x = layers.BatchNormalization(center=False, scale=False, name="bn_plain")(x)
    out = layers.Conv2D(1, 1, activation="sigmoid", dtype="float32", name="head")(x)
    return keras.Model(inp, out)


def _data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    x = (rng.random((4, 12, 10, 3)) * 3 + 1).astype("float32")  # mean far from 0
    return x, (x[..., :1] > 2.5).astype("float32")


def _train(model: keras.Model, steps: int = 4) -> list[float]:
    x, y = _data()
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="binary_crossentropy")
    return [float(model.train_on_batch(x, y)) for _ in range(steps)]


def test_switch_is_in_place_and_keeps_weights_and_names() -> None:
    model = _model()
    before = [np.array(w) for w in model.get_weights()]
    assert use_fused_batchnorm(model) == 2
    assert type(model.get_layer("bn")) is FusedBatchNormalization
    assert isinstance(model.get_layer("bn"), layers.BatchNormalization)
    for a, b in zip(before, model.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    assert use_fused_batchnorm(model) == 0  # already switched


@pytest.mark.parametrize("policy", ["float32", "mixed_bfloat16"])
def test_training_matches_keras_batchnorm(policy: str) -> None:
    keras.mixed_precision.set_global_policy(policy)
    try:
        plain, fused = _model(), _model()
        use_fused_batchnorm(fused)
        losses_plain, losses_fused = _train(plain), _train(fused)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    tol = 1e-5 if policy == "float32" else 5e-3
    np.testing.assert_allclose(losses_fused, losses_plain, rtol=tol, atol=tol)
    for v, a, b in zip(plain.weights, plain.get_weights(), fused.get_weights(), strict=True):
        np.testing.assert_allclose(b, a, rtol=tol, atol=tol, err_msg=v.path)
    # the moving statistics really moved (momentum 0.9, inputs with mean ~2.5)
    mean = np.asarray(plain.get_layer("bn").moving_mean)
    assert np.abs(mean).max() > 0.05
    np.testing.assert_allclose(np.asarray(fused.get_layer("bn").moving_mean), mean, atol=tol)
    np.testing.assert_allclose(
        np.asarray(fused.get_layer("bn").moving_variance),
        np.asarray(plain.get_layer("bn").moving_variance), rtol=tol, atol=tol,
    )


def test_frozen_and_inference_paths_are_keras_own() -> None:
    plain, fused = _model(frozen=True), _model(frozen=True)
    use_fused_batchnorm(fused)
    _train(plain), _train(fused)
    np.testing.assert_array_equal(
        np.asarray(fused.get_layer("bn").moving_mean), np.zeros(6, np.float32)
    )
    x, _ = _data()
    np.testing.assert_allclose(np.asarray(fused(x, training=False)),
                               np.asarray(plain(x, training=False)), atol=1e-5)


#: (total, non-trainable) of :func:`_model`: conv 3x3 (3 -> 6) with bias, bn 4 per channel
#: (moving mean and variance frozen), bn_plain only its statistics, head 1x1 (6 -> 1).
MODEL_COUNTS = (3 * 3 * 3 * 6 + 6 + 4 * 6 + 2 * 6 + 6 + 1, 2 * 6 + 2 * 6)


def test_fused_model_passes_the_model_tester(tmp_path: Path, fresh_process) -> None:
    """Config and .keras round trips (safe mode), a fresh process: the shared model tester."""
    model = _model()
    use_fused_batchnorm(model)
    _train(model, steps=1)
    x, _ = _data()
    result = run_model_test(model, x, expected_output_shape=(4, 12, 10, 1),
                            expected_params=MODEL_COUNTS, tmp_path=tmp_path,
                            fresh_process=fresh_process)
    # the loaded model's config equals this one's, FusedBatchNormalization class names included
    assert type(result.model.get_layer("bn")) is FusedBatchNormalization


def test_weights_files_are_interchangeable_with_plain_batchnorm(tmp_path: Path) -> None:
    fused = _model()
    use_fused_batchnorm(fused)
    _train(fused, steps=2)
    fused.save_weights(tmp_path / "fused.weights.h5")
    plain = _model()
    plain.load_weights(tmp_path / "fused.weights.h5")
    for a, b in zip(fused.get_weights(), plain.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)


def test_network_class_round_trip_after_switching(tmp_path: Path, fresh_process) -> None:
    """A network rebuilt from its config (plain BatchNorms) loads a switched model's file.

    The shared unet5l at its reference width goes through the shared model tester (its
    from_config and load rebuild plain BatchNorms, which must give the same outputs).
    """
    from mammo_common.keras.networks.unet5l import build

    keras.utils.set_random_seed(0)
    model = build(input_shape=(32, 32, 1))
    use_fused_batchnorm(model)
    x = np.random.default_rng(0).random((2, 32, 32, 1)).astype("float32")
    run_model_test(model, x, expected_output_shape=(2, 32, 32, 1),
                   expected_params=(1_947_153, 3_168),  # ARCHITECTURES.md
                   tmp_path=tmp_path, fresh_process=fresh_process)


@pytest.mark.skipif(keras.backend.backend() != "tensorflow",
                    reason="the training harness is TensorFlow's (the jax session checks the "
                           "layer's portability, not training)")
def test_fit_resumable_trains_with_fused_batchnorm(tmp_path: Path) -> None:
    import tensorflow as tf

    from mammo_common.keras.training.harness import fit_resumable

    x, y = _data()
    data = tf.data.Dataset.from_tensor_slices((x, y)).batch(2)
    model = _model()
    fit_resumable(model, data, None, out_dir=tmp_path / "run", epochs=1, monitor="loss",
                  loss="binary_crossentropy", progress=False, reduce_lr=None)
    assert type(model.get_layer("bn")) is FusedBatchNormalization
    other = _model()
    fit_resumable(other, data, None, out_dir=tmp_path / "run2", epochs=1, monitor="loss",
                  loss="binary_crossentropy", progress=False, reduce_lr=None,
                  fused_batchnorm=False)
    assert type(other.get_layer("bn")) is layers.BatchNormalization
