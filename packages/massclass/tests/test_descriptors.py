"""The ``descriptors`` backbone: each measurement means what it says, and the model learns."""

from __future__ import annotations

import keras
import numpy as np
import pytest
from massclass_synth import roi_dataset
from scipy import ndimage

from mammo_common.metrics import roc_auc
from mammo_common.testing import run_model_test
from massclass.config import PhaseConfig, RoiConfig, TrainSettings
from massclass.descriptors import (
    DESCRIPTOR_NAMES,
    PROFILE_NAMES,
    MassDescriptors,
    descriptor_names,
)
from massclass.models import MassClassifier, build_model
from massclass.train import fit_phases, predict_rois

SIZE = 64


def _roi(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """(1, S, S, 3) in [-1, 1] (the backbone's tf scaling): image, image, mask."""
    return (np.stack([image, image, mask.astype(np.float32)], -1)[None] * 2.0 - 1.0).astype(
        np.float32
    )


def _measure(image: np.ndarray, mask: np.ndarray) -> dict[str, float]:
    values = np.asarray(MassDescriptors()(_roi(image, mask)))[0]
    return dict(zip(DESCRIPTOR_NAMES, values.tolist(), strict=True))


def _grid() -> tuple[np.ndarray, np.ndarray]:
    return np.mgrid[0:SIZE, 0:SIZE].astype(np.float32) - (SIZE - 1) / 2.0


def test_shape_descriptors_follow_the_outline() -> None:
    yy, xx = _grid()
    flat = np.full((SIZE, SIZE), 0.3, np.float32)
    disc = np.hypot(yy, xx) <= 16
    ellipse = (yy / 9.0) ** 2 + (xx / 20.0) ** 2 <= 1
    ang = np.arctan2(yy, xx)
    star = np.hypot(yy, xx) <= 16 * (1 + 0.35 * np.cos(7 * ang))
    d, e, s = _measure(flat, disc), _measure(flat, ellipse), _measure(flat, star)
    assert d["circularity"] == pytest.approx(1.0, abs=0.12)
    assert s["circularity"] < 0.6 * d["circularity"]
    assert d["elongation"] > 0.95 and e["elongation"] == pytest.approx(9 / 20, abs=0.06)
    assert d["roughness"] < 0.05 and s["roughness"] > 0.15


def test_margin_descriptors_follow_the_image() -> None:
    yy, xx = _grid()
    rng = np.random.default_rng(0)
    mask = np.hypot(yy, xx) <= 14
    background = 0.3 + 0.03 * ndimage.gaussian_filter(rng.normal(size=mask.shape), 1.0)
    sharp = background + 0.3 * mask
    blurred = background + 0.3 * ndimage.gaussian_filter(mask.astype(np.float32), 4.0)
    faint = background + 0.03 * mask
    a, b, c = _measure(sharp, mask), _measure(blurred, mask), _measure(faint, mask)
    assert a["contrast"] > 3 * c["contrast"] > 0
    assert a["relative_contrast"] > 0.5
    assert a["sharpness"] > 1.5 * b["sharpness"]
    # lines radiating from the mass: gradients across the radial direction
    spokes = background.copy()
    ang = np.arctan2(yy, xx)
    for k in range(12):
        spokes += 0.2 * (np.abs(np.angle(np.exp(1j * (ang - k * np.pi / 6)))) < 0.04)
    spokes += 0.3 * mask
    assert _measure(spokes, mask)["spiculation"] > _measure(sharp, mask)["spiculation"] + 0.15


def test_margin_signals_hold_under_grain() -> None:
    """Pixel noise (film grain, detector noise) must not swamp spicules or a sharp edge."""
    yy, xx = _grid()
    mask = np.hypot(yy, xx) <= 14
    ang = np.arctan2(yy, xx)
    spokes = sum((np.abs(np.angle(np.exp(1j * (ang - k * np.pi / 6)))) < 0.08) for k in range(12))
    spokes = ndimage.gaussian_filter(spokes.astype(np.float32), 1.0)
    blurred = ndimage.gaussian_filter(mask.astype(np.float32), 4.0)

    def measure(seed: int, body: np.ndarray, lines: bool, smooth: float) -> dict[str, float]:
        grain = 0.08 * np.random.default_rng(seed).normal(size=mask.shape)
        image = (0.3 + 0.3 * body + (0.25 * spokes if lines else 0) + grain).astype(np.float32)
        values = np.asarray(MassDescriptors(smooth=smooth)(_roi(image, mask)))[0]
        return dict(zip(DESCRIPTOR_NAMES, values.tolist(), strict=True))

    seeds = range(4)
    spiculation_gap = np.mean([measure(s, mask, True, 1.5)["spiculation"]
                               - measure(s, mask, False, 1.5)["spiculation"] for s in seeds])
    assert spiculation_gap > 0.1

    def sharpness_ratio(smooth: float) -> float:
        return np.mean([measure(s, mask, False, smooth)["sharpness"]
                        / measure(s, blurred, False, smooth)["sharpness"] for s in seeds])

    # raw gradients of the grain drown the edge; the smoothed crop tells sharp from blurred
    assert sharpness_ratio(1.5) > 1.3 and sharpness_ratio(1.5) > sharpness_ratio(0.0)
    layer = MassDescriptors(smooth=1.5)
    assert MassDescriptors.from_config(layer.get_config()).smooth == 1.5
    with pytest.raises(ValueError, match="smooth"):
        MassDescriptors(smooth=-1)


def _profile(image: np.ndarray, mask: np.ndarray) -> dict[str, float]:
    values = np.asarray(MassDescriptors(smooth=1.0, profile=True)(_roi(image, mask)))[0]
    return dict(zip(descriptor_names(True), values.tolist(), strict=True))


def test_margin_profile_follows_the_margin() -> None:
    """Sharp margins drop within a band, blurred ones over several; lines outside raise the
    outer bands' spread; the profile does not depend on the image's brightness or contrast."""
    yy, xx = _grid()
    rng = np.random.default_rng(0)
    mask = np.hypot(yy, xx) <= 14
    background = 0.3 + 0.02 * ndimage.gaussian_filter(rng.normal(size=mask.shape), 1.0)
    sharp = _profile(background + 0.3 * mask, mask)
    blurred = _profile(
        background + 0.3 * ndimage.gaussian_filter(mask.astype(np.float32), 4.0), mask
    )
    assert sharp["profile_mean_in5_2"] == pytest.approx(1.0, abs=0.1)
    assert abs(sharp["profile_mean_out2_5"]) < 0.1
    # the blurred margin: the inside fades towards the outline, the outside is lit beyond it
    assert blurred["profile_mean_in2_0"] < sharp["profile_mean_in2_0"] - 0.1
    assert blurred["profile_mean_out2_5"] > sharp["profile_mean_out2_5"] + 0.1
    # scaled by the mass-to-surround step: brightness and contrast do not move it
    rescaled = _profile(0.1 + 0.5 * (background + 0.3 * mask), mask)
    for name in PROFILE_NAMES:
        assert rescaled[name] == pytest.approx(sharp[name], abs=0.02), name
    ang = np.arctan2(yy, xx)
    spokes = sum((np.abs(np.angle(np.exp(1j * (ang - k * np.pi / 6)))) < 0.08) for k in range(12))
    lines = _profile(background + 0.3 * mask + 0.2 * spokes * ~mask, mask)
    assert lines["profile_sd_out5_9"] > sharp["profile_sd_out5_9"] + 0.1
    # the first eight are the descriptors without the profile, unchanged
    plain = _measure(background + 0.3 * mask, mask)
    assert len(sharp) == len(DESCRIPTOR_NAMES) + len(PROFILE_NAMES) == 28
    layer = MassDescriptors(profile=True)
    assert MassDescriptors.from_config(layer.get_config()).profile is True
    assert MassDescriptors.from_config({"name": "old"}).profile is False  # saved before it
    with_profile = np.asarray(MassDescriptors(profile=True)(_roi(background + 0.3 * mask, mask)))
    np.testing.assert_allclose(with_profile[0, : len(DESCRIPTOR_NAMES)],
                               [plain[n] for n in DESCRIPTOR_NAMES], rtol=1e-5, atol=1e-6)


def test_empty_and_full_masks_give_finite_values() -> None:
    image = np.random.default_rng(1).random((SIZE, SIZE)).astype(np.float32)
    for mask in (np.zeros((SIZE, SIZE), bool), np.ones((SIZE, SIZE), bool)):
        for profile in (False, True):
            values = np.asarray(MassDescriptors(profile=profile)(_roi(image, mask)))
            assert np.isfinite(values).all() and np.abs(values).max() <= 20


def test_descriptors_need_image_and_mask() -> None:
    with pytest.raises(ValueError, match="image\\+mask"):
        TrainSettings(arch="descriptors", roi=RoiConfig(representation="image"))
    assert TrainSettings(arch="descriptors", roi=RoiConfig(representation="image+mask"))


@pytest.mark.parametrize("profile", [False, True], ids=["descriptors", "with_profile"])
def test_descriptors_pass_the_model_tester(
    tmp_path, keras_session, fresh_process, profile: bool
) -> None:
    """Exact counts, config and .keras round trips, a fresh process (the shared tester)."""
    n = len(descriptor_names(profile))
    base = 4 * n  # descriptor_bn: gamma, beta, moving mean and variance; frozen
    head = n * 8 + 8 + 8 * 4 + 4 + 4 + 1  # dense_units=(8, 4) and the malignancy unit
    x = _roi(np.random.default_rng(0).random((SIZE, SIZE)).astype(np.float32),
             np.hypot(*_grid()) <= 14)
    result = run_model_test(
        lambda: build_model("descriptors", (SIZE, SIZE, 3), dense_units=(8, 4),
                            backbone_options={"profile": profile}),
        np.concatenate([x, x[:, ::-1]]),
        expected_output_shape=(2, 1),
        expected_params=(base + head, base),
        tmp_path=tmp_path,
        fresh_process=fresh_process,
        # a loaded model gets its weights from its file; massclass.train sets the trainable
        # part per phase (as in test_models.CONFIG_EXEMPT)
        config_exempt=("weights", "trainable_base"),
    )
    model = result.model
    assert isinstance(model, MassClassifier)
    assert [layer.name for layer in model.base.layers][1:] == [
        "mass_descriptors", "descriptor_bn", "descriptor_map"
    ]


def _rois(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    return roi_dataset(n, seed, size=SIZE, image_shape=(96, 96), margin=0.5,
                       representation="image+mask")


def test_descriptor_classifier_learns_from_few_masses(tmp_path, keras_session) -> None:
    """80 training masses (a small real dataset's scale) are enough to learn the task."""
    train_x, train_y = _rois(80, seed=1)
    valid_x, valid_y = _rois(30, seed=2)
    test_x, test_y = _rois(100, seed=3)
    config = TrainSettings(
        arch="descriptors", input_size=SIZE, batch_size=16, seed=0, dense_units=(16, 8),
        dropout=0.2, roi=RoiConfig(representation="image+mask", margin=0.5),
        phases=[PhaseConfig(name="all", trainable="all", learning_rate=3e-3, epochs=40)],
    )
    keras.utils.set_random_seed(0)
    model = build_model("descriptors", (SIZE, SIZE, 3), dense_units=(16, 8), dropout=0.2)
    before = roc_auc(test_y, predict_rois(model, test_x))
    fit_phases(model, train_x, train_y, valid_x, valid_y, config, tmp_path / "work",
               resume=False)
    after = roc_auc(test_y, predict_rois(model, test_x))
    print(f"held-out ROC AUC: untrained {before:.3f}, trained {after:.3f}")
    assert after >= 0.80
    # the descriptors alone rank the masses somewhat even under a random head (in either
    # direction); training must do better than that ranking read the right way round
    assert after > max(before, 1.0 - before)


@pytest.mark.parametrize("steps", [1, 3, 8])
def test_dilate_is_scipy_square_dilation(steps: int) -> None:
    from massclass.descriptors import _dilate

    rng = np.random.default_rng(steps)
    mask = (rng.random((3, 40, 33)) > 0.99).astype(np.float32)
    mask[0, 0, 0] = mask[1, -1, -1] = 1.0  # corners: the border must not spill
    square = np.ones((1, 2 * steps + 1, 2 * steps + 1), bool)
    expected = ndimage.binary_dilation(mask > 0, structure=square)
    assert np.array_equal(np.asarray(_dilate(mask, steps)) > 0.5, expected)


@pytest.mark.parametrize("sigma", [0.5, 1.5, 2.0, 9.0])
def test_gaussian_is_scipy_mirror_blur(sigma: float) -> None:
    import math

    import tensorflow as tf

    from massclass.descriptors import _gaussian

    rng = np.random.default_rng(0)
    img = rng.random((2, 24, 17)).astype(np.float32)
    radius = max(1, math.ceil(3.0 * sigma))  # sigma 9: wider than the image, mirrored twice
    expected = img.astype(np.float64)
    for axis in (1, 2):
        expected = ndimage.gaussian_filter1d(expected, sigma, axis=axis, mode="reflect",
                                             radius=radius)
    static = np.asarray(_gaussian(img, sigma))
    np.testing.assert_allclose(static, expected, atol=1e-5)
    if radius < min(img.shape[1:]):  # the convolution path (unknown size) pads once
        dynamic = tf.function(
            lambda x: _gaussian(x, sigma),
            input_signature=[tf.TensorSpec((None, None, None), tf.float32)],
        )
        np.testing.assert_allclose(np.asarray(dynamic(img)), expected, atol=1e-5)
