"""Keras losses and metrics against numpy formulas and mammo_common.metrics."""

from __future__ import annotations

import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import numpy as np
import pytest

from mammo_common.keras.training import losses as L
from mammo_common.keras.training import metrics as M

EPS = 1e-7


@pytest.fixture(scope="module")
def batch() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(3)
    y = (rng.random((3, 16, 16, 1)) > 0.7).astype(np.float32)
    p = np.clip(0.6 * y + 0.5 * rng.random(y.shape), 0, 1).astype(np.float32)
    return y, p


def np_dice(y, p, s=1.0):
    return 1 - (2 * (y * p).sum() + s) / (y.sum() + p.sum() + s)


def np_tversky(y, p, a, b, s):
    tp, fp, fn = (y * p).sum(), ((1 - y) * p).sum(), (y * (1 - p)).sum()
    return (tp + s) / (tp + a * fp + b * fn + s)


def np_gdl(y, p, s=1e-6):
    yy = np.stack([1 - y[..., 0], y[..., 0]], -1).reshape(-1, 2)
    pp = np.stack([1 - p[..., 0], p[..., 0]], -1).reshape(-1, 2)
    ref = yy.sum(0)
    with np.errstate(divide="ignore"):
        w = 1 / ref**2
    w[~np.isfinite(w)] = w[np.isfinite(w)].max()
    w = w / w.sum()
    return 1 - (2 * (w * (yy * pp).sum(0)).sum() + s) / ((w * (ref + pp.sum(0))).sum() + s)


def np_bce(y, p):
    q = np.clip(p, EPS, 1 - EPS)
    return -(y * np.log(q) + (1 - y) * np.log(1 - q)).mean()


def value(loss, y, p) -> float:
    return float(keras.ops.convert_to_numpy(loss(y, p)))


def test_dice_is_pooled_over_the_batch(batch):
    y, p = batch
    assert value(L.DiceLoss(), y, p) == pytest.approx(np_dice(y, p), rel=1e-5)
    assert value(L.DiceLoss(smooth=0.5), y, p) == pytest.approx(np_dice(y, p, 0.5), rel=1e-5)
    per_image = np.mean([np_dice(y[i], p[i]) for i in range(len(y))])
    assert abs(per_image - np_dice(y, p)) > 1e-4  # pooled, not per-image mean


def test_losses_against_numpy(batch):
    y, p = batch
    assert value(L.TverskyLoss(0.3, 0.7, 1.0), y, p) == pytest.approx(
        1 - np_tversky(y, p, 0.3, 0.7, 1.0), rel=1e-5
    )
    assert value(L.FocalTverskyLoss(0.3, 0.7, 0.75), y, p) == pytest.approx(
        (1 - np_tversky(y, p, 0.3, 0.7, 1.0)) ** 0.75, rel=1e-5
    )
    # alpha = beta = 0.5 is the soft Dice (with half the smoothing)
    assert value(L.TverskyLoss(0.5, 0.5, 0.5), y, p) == pytest.approx(np_dice(y, p), rel=1e-5)
    assert value(L.GeneralizedDiceLoss(), y, p) == pytest.approx(np_gdl(y, p), rel=1e-4)
    assert value(L.BCEDiceLoss(), y, p) == pytest.approx(np_bce(y, p) + np_dice(y, p), rel=1e-5)
    assert value(L.BCEDiceLoss(0.5, 2.0), y, p) == pytest.approx(
        0.5 * np_bce(y, p) + 2 * np_dice(y, p), rel=1e-5
    )


def test_generalized_dice_with_empty_foreground(batch):
    _, p = batch
    y = np.zeros_like(p)
    got = value(L.GeneralizedDiceLoss(), y, p)
    assert np.isfinite(got) and got == pytest.approx(np_gdl(y, p), rel=1e-4)


def test_perfect_prediction_scores_zero_loss(batch):
    y, _ = batch
    for name in ("dice", "generalized_dice", "tversky", "focal_tversky"):
        assert value(L.get_loss(name), y, y) == pytest.approx(0.0, abs=1e-5), name


def test_float16_and_rank3_inputs_are_cast(batch):
    y, p = batch
    got = value(L.DiceLoss(), y[..., 0], p.astype(np.float16))
    assert got == pytest.approx(np_dice(y, p.astype(np.float16).astype(np.float32)), rel=1e-4)


def test_get_loss_and_serialization():
    loss = L.get_loss("focal-tversky", alpha=0.4, gamma=1.0)
    assert isinstance(loss, L.FocalTverskyLoss) and loss.alpha == 0.4
    for name, cls in L.LOSSES.items():
        obj = L.get_loss(name)
        cfg = keras.saving.serialize_keras_object(obj)
        back = keras.saving.deserialize_keras_object(cfg)
        assert type(back) is cls and back.get_config() == obj.get_config()
    with pytest.raises(ValueError, match="dice, generalized_dice, tversky"):
        L.get_loss("hinge")
    with pytest.raises(ValueError, match="does not accept"):
        L.get_loss("dice", alpha=1)


def _masks(seed: int = 5):
    rng = np.random.default_rng(seed)
    y = (rng.random((6, 12, 12, 1)) > 0.8).astype(np.float32)
    p = rng.random(y.shape).astype(np.float32) * 0.9
    p[0] = 0.1  # empty prediction...
    y[0] = 0.0  # ...of an empty truth: scores 1
    y[1] = 0.0  # empty truth, non-empty prediction: scores 0
    p[2] = y[2]  # perfect
    p[3, :, :] = 0.5  # exactly the threshold counts as foreground (>=)
    return y, p


def _numpy_metrics():
    try:
        from mammo_common.metrics import dice, jaccard
    except ImportError:
        try:
            from mammo_common.metrics.segmentation import dice, jaccard
        except ImportError:
            pytest.skip("mammo_common.metrics is not available")
    return dice, jaccard


@pytest.mark.parametrize("empty", ["one", "zero", "nan"])
def test_dice_and_iou_metrics_equal_numpy_per_image_means(empty):
    dice, jaccard = _numpy_metrics()
    y, p = _masks()
    d, j = M.DiceCoefficient(empty=empty), M.IoU(empty=empty)
    for part in (slice(0, 4), slice(4, 6)):  # accumulated over batches
        d.update_state(y[part], p[part])
        j.update_state(y[part], p[part])
    want_d = np.nanmean([dice(p[i], y[i], empty=empty) for i in range(len(y))])
    want_j = np.nanmean([jaccard(p[i], y[i], empty=empty) for i in range(len(y))])
    assert float(d.result()) == pytest.approx(want_d, rel=1e-6)
    assert float(j.result()) == pytest.approx(want_j, rel=1e-6)
    d.reset_state()
    assert float(d.result()) == 0.0


def test_skip_policy_is_the_mean_over_images_with_a_mass():
    dice, jaccard = _numpy_metrics()
    y, p = _masks()
    with_mass = [i for i in range(len(y)) if y[i].any()]
    assert 0 not in with_mass and 1 not in with_mass  # the two empty truths are left out
    d, j = M.DiceCoefficient(empty="skip"), M.IoU(empty="skip")
    d.update_state(y[:3], p[:3])
    d.update_state(y[3:], p[3:])
    j.update_state(y, p)
    assert float(d.result()) == pytest.approx(np.mean([dice(p[i], y[i]) for i in with_mass]))
    assert float(j.result()) == pytest.approx(np.mean([jaccard(p[i], y[i]) for i in with_mass]))
    # a false detection on an image without a mass does not lower it
    y2, p2 = y.copy(), p.copy()
    p2[0] = 0.9
    d2 = M.DiceCoefficient(empty="skip")
    d2.update_state(y2, p2)
    assert float(d2.result()) == pytest.approx(float(d.result()))


def test_metric_formulas_and_config():
    y, p = _masks()
    pb, yb = (p >= 0.5).reshape(6, -1), (y >= 0.5).reshape(6, -1)
    inter, s = (pb & yb).sum(1), pb.sum(1) + yb.sum(1)
    want = np.where(s == 0, 1.0, 2 * inter / np.maximum(s, 1)).mean()
    metric = M.DiceCoefficient()
    metric.update_state(y, p)
    assert float(metric.result()) == pytest.approx(want, rel=1e-6)
    soft = M.SoftDice()
    soft.update_state(y[:3], p[:3])
    soft.update_state(y[3:], p[3:])
    assert float(soft.result()) == pytest.approx(1 - np_dice(y, p), rel=1e-5)
    for m in (M.DiceCoefficient(threshold=0.3, empty="zero"), M.IoU(), M.SoftDice(smooth=2)):
        back = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(m))
        assert type(back) is type(m) and back.get_config() == m.get_config()
    with pytest.raises(ValueError, match="policy"):
        M.DiceCoefficient(empty="ignore")


def test_weighted_dice_metric():
    y, p = _masks()
    w = np.array([1, 0, 0, 0, 0, 1], dtype=np.float32)
    metric = M.DiceCoefficient()
    metric.update_state(y, p, sample_weight=w)
    unweighted = M.DiceCoefficient()
    unweighted.update_state(y[[0, 5]], p[[0, 5]])
    assert float(metric.result()) == pytest.approx(float(unweighted.result()), rel=1e-6)
