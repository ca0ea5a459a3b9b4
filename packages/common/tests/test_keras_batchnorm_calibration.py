"""Precise-BN recalibration: moving statistics become the average of whole-image batch statistics."""

from __future__ import annotations

import keras
import numpy as np

from mammo_common.keras.training.batchnorm_calibration import (
    RecalibrateBatchNorm,
    recalibrate_batchnorm,
)


def _model() -> keras.Model:
    inp = keras.Input((None, None, 1))
    x = keras.layers.Conv2D(3, 3, padding="same", name="conv", use_bias=False,
                            kernel_initializer="ones")(inp)
    x = keras.layers.Dropout(0.5, name="drop")(x)
    x = keras.layers.BatchNormalization(name="bn", momentum=0.9)(x)
    return keras.Model(inp, x)


def test_moving_statistics_are_the_mean_of_the_batch_statistics():
    model = _model()
    rng = np.random.default_rng(0)
    batches = [rng.random((2, 8, 8, 1)).astype(np.float32) + k for k in range(3)]
    n = recalibrate_batchnorm(model, batches)
    assert n == 3
    conv = keras.Model(model.input, model.get_layer("conv").output)
    stats = [np.asarray(conv(b)) for b in batches]
    want_mean = np.mean([s.mean(axis=(0, 1, 2)) for s in stats], axis=0)
    want_var = np.mean([s.var(axis=(0, 1, 2)) for s in stats], axis=0)
    bn = model.get_layer("bn")
    np.testing.assert_allclose(bn.moving_mean.numpy(), want_mean, rtol=1e-5)
    np.testing.assert_allclose(bn.moving_variance.numpy(), want_var, rtol=1e-4)
    assert bn.momentum == 0.9 and model.get_layer("drop").rate == 0.5  # restored


def test_no_batches_leave_the_model_untouched_and_callback_runs_before_evaluation():
    model = _model()
    bn = model.get_layer("bn")
    before = bn.moving_mean.numpy().copy()
    assert recalibrate_batchnorm(model, []) == 0
    np.testing.assert_array_equal(bn.moving_mean.numpy(), before)
    x = np.full((4, 8, 8, 1), 2.0, np.float32)
    model.compile(loss="mse")
    model.evaluate(x, x, verbose=0, callbacks=[RecalibrateBatchNorm(lambda: [x])])
    np.testing.assert_allclose(bn.moving_mean.numpy(), np.full(3, 15.125), rtol=1e-5)  # 3x3 ones, zero pad
