"""The shared model tester passes a sound model and fails each kind of broken one."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import keras
import numpy as np
import pytest

from mammo_common.testing import (
    FLOAT32_RTOL,
    FLOAT32_UNIT_ROUNDOFF,
    FreshProcess,
    accumulated_terms,
    assert_outputs_close,
    count_parameters,
    float32_tolerance,
    largest_activation,
    perturb_weights,
    run_model_test,
)

layers = keras.layers
SHAPE = (8, 8, 3)


@keras.saving.register_keras_serializable(package="mammo_testing_test")
class Scale(layers.Layer):
    """Multiplies by ``factor``; ``get_config`` forgets it unless ``complete``."""

    def __init__(self, factor: float = 1.0, complete: bool = True, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.factor = float(factor)
        self.complete = complete

    def call(self, inputs):
        return inputs * self.factor

    def get_config(self) -> dict[str, Any]:
        config = {**super().get_config(), "complete": self.complete}
        if self.complete:
            config["factor"] = self.factor
        return config


def _model(scale: layers.Layer | None = None) -> keras.Model:
    """conv 3x3 (3 -> 4) + BatchNorm + global pooling + dense sigmoid, optionally scaled."""
    inputs = keras.Input(SHAPE)
    x = layers.Conv2D(4, 3, padding="same", name="conv")(inputs)
    x = layers.BatchNormalization(name="bn")(x)
    if scale is not None:
        x = scale(x)
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    outputs = layers.Dense(1, activation="sigmoid", name="head")(x)
    return keras.Model(inputs, outputs, name="probe")


#: conv 3*3*3*4 + 4; BatchNorm 4 per channel (moving mean and variance frozen); dense 4 + 1.
COUNTS = (3 * 3 * 3 * 4 + 4 + 4 * 4 + 4 + 1, 2 * 4)


@pytest.fixture(scope="module")
def fresh() -> Iterator[FreshProcess]:
    """A worker that imports this module (which registers ``Scale``)."""
    with FreshProcess(["test_testing"], paths=[Path(__file__).parent]) as worker:
        yield worker


@pytest.fixture
def x() -> np.ndarray:
    return np.random.default_rng(0).random((2, *SHAPE), dtype=np.float32)


def test_a_sound_model_passes(x: np.ndarray, tmp_path: Path, fresh: FreshProcess) -> None:
    result = run_model_test(_model, x, expected_output_shape=(2, 1), expected_params=COUNTS,
                            tmp_path=tmp_path, fresh_process=fresh)
    assert result.params == COUNTS == count_parameters(result.model)
    assert result.outputs[0].shape == (2, 1)
    assert not list(tmp_path.iterdir())  # the .keras file is removed


def test_a_sound_custom_layer_passes(x: np.ndarray, tmp_path: Path, fresh: FreshProcess) -> None:
    run_model_test(lambda: _model(Scale(2.0)), x, expected_output_shape=(2, 1),
                   expected_params=COUNTS, tmp_path=tmp_path, fresh_process=fresh,
                   keep_file=True)
    assert (tmp_path / "probe.keras").is_file()


def test_a_layer_with_derived_state_passes(
    x: np.ndarray, tmp_path: Path, fresh: FreshProcess
) -> None:
    """Normalization computes its mean and variance tensors from its variables at load."""

    def build() -> keras.Model:
        inputs = keras.Input(SHAPE)
        y = layers.Normalization(name="norm")(inputs)
        y = layers.GlobalAveragePooling2D(name="gap")(y)
        return keras.Model(inputs, layers.Dense(1, name="head")(y))

    # norm: mean 3, variance 3, sample count 1 (all frozen); head: 3 + 1
    run_model_test(build, x, expected_output_shape=(2, 1), expected_params=(11, 7),
                   tmp_path=tmp_path, fresh_process=fresh)


def test_a_constructor_argument_missing_from_get_config_fails(
    x: np.ndarray, tmp_path: Path
) -> None:
    def build() -> keras.Model:
        return _model(Scale(2.0, complete=False))

    with pytest.raises(AssertionError, match=r"Scale\(factor=\.\.\.\) is not in"):
        run_model_test(build, x, expected_output_shape=(2, 1), expected_params=COUNTS,
                       tmp_path=tmp_path, fresh_process=False)
    # Even when the argument is exempted, from_config's outputs give the bug away.
    with pytest.raises(AssertionError, match="from_config with the original's weights"):
        run_model_test(build, x, expected_output_shape=(2, 1), expected_params=COUNTS,
                       tmp_path=tmp_path, fresh_process=False, config_exempt=["factor"])


def test_a_wrong_parameter_count_fails(x: np.ndarray, tmp_path: Path) -> None:
    wrong = (COUNTS[0] + 1, COUNTS[1])
    with pytest.raises(AssertionError, match="parameters"):
        run_model_test(_model, x, expected_output_shape=(2, 1), expected_params=wrong,
                       tmp_path=tmp_path, fresh_process=False)


def test_a_wrong_output_shape_fails(x: np.ndarray, tmp_path: Path) -> None:
    with pytest.raises(AssertionError, match="output shapes"):
        run_model_test(_model, x, expected_output_shape=(2, 2), expected_params=COUNTS,
                       tmp_path=tmp_path, fresh_process=False)


def test_a_class_the_fresh_process_cannot_find_fails(x: np.ndarray, tmp_path: Path) -> None:
    # fresh_process=True: a worker of its own, importing nothing, so Scale is unknown there
    with pytest.raises(AssertionError, match="fresh process could not load"):
        run_model_test(lambda: _model(Scale(2.0)), x, expected_output_shape=(2, 1),
                       expected_params=COUNTS, tmp_path=tmp_path, fresh_process=True)


def test_the_worker_survives_a_failed_load(
    x: np.ndarray, tmp_path: Path, fresh: FreshProcess
) -> None:
    with pytest.raises(AssertionError, match="could not load nothing.keras"):
        fresh.load_and_predict(tmp_path / "nothing.keras", x)
    run_model_test(_model, x, expected_output_shape=(2, 1), expected_params=COUNTS,
                   tmp_path=tmp_path, fresh_process=fresh)


def test_perturbation_moves_every_variable_and_is_seeded() -> None:
    keras.utils.set_random_seed(0)
    a = _model()
    keras.utils.set_random_seed(0)
    b = _model()
    initial = a.get_weights()
    perturb_weights(a, seed=3)
    perturb_weights(b, seed=3)
    for before, after, again in zip(initial, a.get_weights(), b.get_weights(), strict=True):
        assert not np.any(before == after)
        np.testing.assert_array_equal(after, again)
    variance = np.asarray(a.get_layer("bn").moving_variance)
    assert np.all(variance > 1.0)  # a variance stays positive


def test_outputs_close_scales_with_the_output() -> None:
    expected = [np.array([1000.0, 0.0], np.float32)]
    assert_outputs_close([expected[0] + [0, 1000 * FLOAT32_RTOL / 2]], expected,
                         rtol=FLOAT32_RTOL, what="within")
    with pytest.raises(AssertionError, match="beyond"):
        assert_outputs_close([expected[0] * (1 + 3 * FLOAT32_RTOL)], expected,
                             rtol=FLOAT32_RTOL, what="beyond")
    with pytest.raises(AssertionError, match="bit-identical"):
        assert_outputs_close([np.nextafter(expected[0], np.inf)], expected, rtol=None,
                             what="exact")


# ------------------------------------------------------------------ float32 error bounds


def test_float32_tolerance_scales_with_magnitude_and_the_root_of_the_terms() -> None:
    assert np.finfo(np.float32).eps / 2 == FLOAT32_UNIT_ROUNDOFF
    base = float32_tolerance(1.0, 100)
    assert base == pytest.approx(2 * 6 * 10 * 2.0**-24)
    assert float32_tolerance(10.0, 100) == pytest.approx(10 * base)
    assert float32_tolerance(1.0, 400) == pytest.approx(2 * base)
    assert float32_tolerance(1.0, 100, lam=3) == pytest.approx(base / 2)


def test_float32_tolerance_bounds_reordered_float32_sums() -> None:
    """Sums of n float32 products in two orders differ by less than the tolerance (and by
    more than nothing: the bound is not vacuous)."""
    rng = np.random.default_rng(0)
    worst = 0.0
    for n in (10, 1000, 100_000):
        a = rng.normal(size=(50, n)).astype(np.float32)
        b = rng.normal(size=(50, n)).astype(np.float32)
        forward = np.array([np.float32(0)] * 50)
        for i in range(0, n, max(1, n // 100)):  # blocked, left to right
            forward = forward + np.sum(a[:, i:i + max(1, n // 100)] * b[:, i:i + max(1, n // 100)],
                                       axis=1, dtype=np.float32)
        backward = np.sum((a * b)[:, ::-1], axis=1, dtype=np.float32)
        terms = np.abs(a.astype(np.float64) * b).sum(axis=1)
        diff = np.abs(forward.astype(np.float64) - backward)
        assert np.all(diff <= float32_tolerance(1.0, n) * terms)
        worst = max(worst, float((diff / terms).max()))
    assert worst > 0


def test_accumulated_terms_counts_fan_ins() -> None:
    keras.utils.set_random_seed(0)
    inp = keras.Input((8, 8, 2))
    x = layers.Conv2D(4, 3, padding="same")(inp)  # 3*3*2 + 2
    x = layers.SeparableConv2D(3, 3, padding="same")(x)  # 3*3 + 2 + 4
    x = layers.Conv2DTranspose(5, 2, strides=2)(x)  # 2*2*3 + 2
    x = layers.GlobalAveragePooling2D()(x)
    out = layers.Dense(1)(x)  # 5 + 2
    model = keras.Model(inp, out)
    assert accumulated_terms(model) == 20 + 15 + 14 + 7
    x = np.random.default_rng(0).normal(size=(2, 8, 8, 2)).astype("float32")
    biggest = largest_activation(model, x)
    assert biggest >= float(np.abs(np.asarray(model(x))).max()) and np.isfinite(biggest)
