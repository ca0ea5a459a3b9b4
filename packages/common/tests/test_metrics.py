"""Tests of mammo_common.metrics against scikit-learn and the reference's conventions."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn import metrics as skm

from mammo_common.metrics import (
    BinnedAUC,
    ClassificationAccumulator,
    ConfusionMatrix,
    DiceAccumulator,
    SegmentationAccumulator,
    accuracy,
    binarize,
    bootstrap_ci,
    classification_report,
    cohen_kappa,
    confusion_matrix,
    dice,
    f1,
    jaccard,
    mcc,
    pixel_auc,
    pooled_dice,
    pooled_jaccard,
    pooled_pixel_auc,
    precision,
    recall,
    roc_auc,
    roc_curve,
    segmentation_report,
    sensitivity,
    specificity,
    youden_threshold,
)

pytestmark = [
    pytest.mark.filterwarnings("ignore::sklearn.exceptions.UndefinedMetricWarning"),
    pytest.mark.filterwarnings("ignore:A single label:UserWarning"),
]


def _maps(rng: np.random.Generator, n: int, size: int = 48, dtype: type = np.float16):
    """Probability maps loosely correlated with blob-like truths; some truths empty."""
    probs, truths = [], []
    yy, xx = np.mgrid[:size, :size]
    for i in range(n):
        if i % 4 == 3:
            truth = np.zeros((size, size), np.uint8)
        else:
            cy, cx, r = [*rng.integers(10, size - 10, 2).tolist(), rng.integers(3, 9)]
            truth = (((yy - cy) ** 2 + (xx - cx) ** 2) < r**2).astype(np.uint8)
        prob = np.clip(0.6 * truth + rng.normal(0.2, 0.2, truth.shape), 0, 1)
        probs.append(prob.astype(dtype))
        truths.append(truth)
    return probs, truths


# ----------------------------------------------------------------- segmentation


def test_no_tensorflow_or_keras_imported() -> None:
    code = (
        "import sys, mammo_common.metrics, mammo_common.splits, mammo_common.schema.splits\n"
        "bad = [m for m in ('tensorflow', 'keras') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_binarize_is_at_or_above_threshold() -> None:
    prob = np.array([0.2, 0.5, 0.7], dtype=np.float16)
    assert binarize(prob).tolist() == [False, True, True]
    assert binarize(prob, 0.6).tolist() == [False, False, True]
    mask = np.array([True, False])
    assert binarize(mask) is mask or binarize(mask).tolist() == [True, False]


@pytest.mark.parametrize("seed", range(20))
def test_dice_jaccard_match_sklearn(seed: int) -> None:
    rng = np.random.default_rng(seed)
    truth = rng.random((32, 24)) < rng.uniform(0.05, 0.6)
    prob = rng.random((32, 24)).astype(np.float32)
    pred = prob >= 0.5
    assert dice(prob, truth) == pytest.approx(skm.f1_score(truth.ravel(), pred.ravel()))
    assert jaccard(prob, truth) == pytest.approx(skm.jaccard_score(truth.ravel(), pred.ravel()))
    # 0/255 masks and bool masks give the same answer
    assert dice(pred.astype(np.uint8) * 255, truth.astype(np.uint8) * 255) == dice(pred, truth)


@pytest.mark.parametrize(("policy", "expected"), [("one", 1.0), ("zero", 0.0), ("nan", math.nan)])
def test_empty_policies(policy: str, expected: float) -> None:
    empty = np.zeros((8, 8))
    for fn in (dice, jaccard):
        value = fn(empty, empty, empty=policy)
        assert (math.isnan(value) and math.isnan(expected)) or value == expected
        # Only the both-empty case is undefined: empty truth, non-empty prediction -> 0.
        pred = empty.copy()
        pred[0, 0] = 1
        assert fn(pred, empty, empty=policy) == 0.0
        assert fn(empty, pred, empty=policy) == 0.0


def test_default_empty_policy_scores_one() -> None:
    empty = np.zeros((4, 4), np.uint8)
    assert dice(empty, empty) == 1.0
    assert jaccard(empty, empty) == 1.0
    assert pooled_dice([empty, empty], [empty, empty]) == 1.0


def test_bad_policy_and_shapes_raise() -> None:
    a = np.zeros((4, 4))
    with pytest.raises(ValueError, match="policy"):
        dice(a, a, empty="maybe")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="shape"):
        dice(a, np.zeros((4, 5)))
    with pytest.raises(ValueError, match="NaN"):
        pixel_auc(np.full((2, 2), np.nan), np.eye(2))


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64, np.uint8])
@pytest.mark.parametrize("seed", range(5))
def test_pixel_auc_matches_sklearn(dtype: type, seed: int) -> None:
    rng = np.random.default_rng(seed)
    truth = rng.random((40, 30)) < 0.2
    prob = np.clip(0.3 * truth + rng.random(truth.shape), 0, 1)
    if dtype is np.uint8:
        prob = prob * 255
    prob = prob.astype(dtype)
    expected = skm.roc_auc_score(truth.ravel(), prob.ravel().astype(np.float64))
    assert pixel_auc(prob, truth) == pytest.approx(expected, abs=1e-12)


def test_pixel_auc_handles_heavy_ties() -> None:
    rng = np.random.default_rng(3)
    truth = rng.random(5000) < 0.3
    prob = np.round(rng.random(5000) * 3) / 3 + 0.1 * truth  # few distinct values
    prob[:100] = 0.0
    prob[100:110] = -0.0  # -0.0 ties with 0.0
    expected = skm.roc_auc_score(truth, prob)
    assert pixel_auc(prob, truth) == pytest.approx(expected, abs=1e-12)
    assert pixel_auc(prob.astype(np.float16), truth) == pytest.approx(
        skm.roc_auc_score(truth, prob.astype(np.float16)), abs=1e-12
    )


def test_pixel_auc_undefined_policy() -> None:
    prob = np.random.default_rng(0).random((8, 8))
    for truth in (np.zeros((8, 8)), np.ones((8, 8))):
        assert math.isnan(pixel_auc(prob, truth))
        assert pixel_auc(prob, truth, empty="one") == 1.0
        assert pixel_auc(prob, truth, empty="zero") == 0.0


def test_pixel_auc_640_float16_is_fast_and_exact() -> None:
    rng = np.random.default_rng(0)
    truth = rng.random((640, 640)) < 0.05
    prob = np.clip(rng.normal(0.3, 0.2, truth.shape) + 0.3 * truth, 0, 1).astype(np.float16)
    expected = skm.roc_auc_score(truth.ravel(), prob.ravel())
    assert pixel_auc(prob, truth) == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize("dtype", [np.float16, np.float32])
def test_pooled_variants_equal_concatenation(dtype: type) -> None:
    probs, truths = _maps(np.random.default_rng(1), 9, dtype=dtype)
    flat_p = np.concatenate([p.ravel() for p in probs])
    flat_t = np.concatenate([t.ravel() for t in truths]).astype(bool)
    pred = flat_p >= 0.5
    assert pooled_dice(probs, truths) == pytest.approx(skm.f1_score(flat_t, pred))
    assert pooled_jaccard(probs, truths) == pytest.approx(skm.jaccard_score(flat_t, pred))
    assert pooled_pixel_auc(probs, truths) == pytest.approx(
        skm.roc_auc_score(flat_t, flat_p.astype(np.float64)), abs=1e-12
    )
    stacked = np.stack(probs)
    assert pooled_pixel_auc(stacked, np.stack(truths)) == pooled_pixel_auc(probs, truths)


def test_pooled_auc_undefined() -> None:
    z = np.zeros((3, 4, 4))
    assert math.isnan(pooled_pixel_auc(z, z))
    assert pooled_pixel_auc(z, z, empty="zero") == 0.0


def test_segmentation_report_values() -> None:
    probs, truths = _maps(np.random.default_rng(2), 8)
    rep = segmentation_report(probs, truths, 0.5)
    assert rep["n_images"] == 8
    assert rep["threshold"] == 0.5
    for i, (p, t) in enumerate(zip(probs, truths, strict=True)):
        assert rep["per_image"]["dice"][i] == dice(p, t)
        assert rep["per_image"]["jaccard"][i] == jaccard(p, t)
        a, b = rep["per_image"]["auc"][i], pixel_auc(p, t)
        assert (math.isnan(a) and math.isnan(b)) or a == b
    aucs = np.array(rep["per_image"]["auc"])
    assert rep["n_auc_defined"] == int(np.isfinite(aucs).sum()) == 6
    assert rep["mean"]["auc"] == pytest.approx(np.nanmean(aucs))
    assert rep["mean"]["dice"] == pytest.approx(np.mean(rep["per_image"]["dice"]))
    assert rep["pooled"]["dice"] == pooled_dice(probs, truths)
    assert rep["pooled"]["jaccard"] == pooled_jaccard(probs, truths)
    assert rep["pooled"]["auc"] == pooled_pixel_auc(probs, truths)
    # Same result from a stacked (N, H, W) array.
    stacked = segmentation_report(np.stack(probs), np.stack(truths), 0.5)
    assert stacked["pooled"] == rep["pooled"]
    assert stacked["mean"] == rep["mean"]


def test_segmentation_report_empty_policies() -> None:
    z = np.zeros((2, 6, 6))
    rep = segmentation_report(z, z)
    assert rep["mean"]["dice"] == 1.0 and rep["pooled"]["dice"] == 1.0
    assert rep["n_auc_defined"] == 0 and math.isnan(rep["mean"]["auc"])
    rep = segmentation_report(z, z, empty="nan", auc_empty="zero")
    assert math.isnan(rep["mean"]["dice"]) and rep["mean"]["auc"] == 0.0


# ----------------------------------------------------------------- classification

labels = st.lists(st.integers(0, 1), min_size=1, max_size=60)


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_label_metrics_match_sklearn(data: st.DataObject) -> None:
    y_true = np.array(data.draw(labels))
    y_pred = np.array(
        data.draw(st.lists(st.integers(0, 1), min_size=len(y_true), max_size=len(y_true)))
    )
    tn, fp, fn, tp = skm.confusion_matrix(y_true, y_pred, labels=[0, 1]).ravel()
    assert confusion_matrix(y_true, y_pred) == (tn, fp, fn, tp)
    assert accuracy(y_true, y_pred) == pytest.approx(skm.accuracy_score(y_true, y_pred))
    kw = {"zero_division": 0, "labels": [0, 1]}
    assert precision(y_true, y_pred) == pytest.approx(skm.precision_score(y_true, y_pred, **kw))
    assert sensitivity(y_true, y_pred) == pytest.approx(skm.recall_score(y_true, y_pred, **kw))
    assert recall(y_true, y_pred) == sensitivity(y_true, y_pred)
    assert specificity(y_true, y_pred) == pytest.approx(
        skm.recall_score(y_true, y_pred, pos_label=0, **kw)
    )
    assert f1(y_true, y_pred) == pytest.approx(skm.f1_score(y_true, y_pred, **kw))
    assert mcc(y_true, y_pred) == pytest.approx(skm.matthews_corrcoef(y_true, y_pred), abs=1e-12)
    assert cohen_kappa(y_true, y_pred) == pytest.approx(
        skm.cohen_kappa_score(y_true, y_pred, labels=[0, 1], replace_undefined_by=0.0),
        abs=1e-12,
    )


def test_zero_division_cases() -> None:
    y_true = np.array([0, 0, 0])
    y_pred = np.array([0, 0, 0])
    for fn_ in (precision, sensitivity, f1, mcc, cohen_kappa):
        assert fn_(y_true, y_pred) == 0.0
        assert math.isnan(fn_(y_true, y_pred, zero_division=math.nan))
    assert specificity(y_true, y_pred) == 1.0
    assert specificity([1, 1], [1, 0]) == 0.0
    assert math.isnan(specificity([1, 1], [1, 0], zero_division=math.nan))
    # scikit-learn's kappa is NaN here by default; ours follows zero_division.
    assert math.isnan(skm.cohen_kappa_score([1, 1], [1, 1]))
    assert cohen_kappa([1, 1], [1, 1]) == 0.0


def test_label_validation() -> None:
    with pytest.raises(ValueError, match="0/1"):
        accuracy([0, 2], [0, 1])
    with pytest.raises(ValueError, match="samples"):
        accuracy([0, 1], [0])
    with pytest.raises(ValueError, match="empty"):
        accuracy([], [])
    assert confusion_matrix([True, False], [True, True]) == ConfusionMatrix(0, 1, 0, 1)
    assert confusion_matrix([1, 0, 1], [1, 0, 0]).as_array().tolist() == [[1, 0], [1, 1]]


@settings(max_examples=150, deadline=None)
@given(st.data())
def test_roc_auc_and_curve_match_sklearn(data: st.DataObject) -> None:
    y_true = np.array(data.draw(labels))
    scores = np.array(
        data.draw(
            st.lists(
                st.sampled_from([0.0, 0.1, 0.25, 0.5, 0.9, 1.0]),
                min_size=len(y_true),
                max_size=len(y_true),
            )
        )
    )
    fpr, tpr, thr = roc_curve(y_true, scores)
    if 0 < y_true.sum() < len(y_true):
        assert roc_auc(y_true, scores) == pytest.approx(skm.roc_auc_score(y_true, scores))
        sk_fpr, sk_tpr, sk_thr = skm.roc_curve(y_true, scores, drop_intermediate=False)
        np.testing.assert_allclose(fpr, sk_fpr)
        np.testing.assert_allclose(tpr, sk_tpr)
        np.testing.assert_array_equal(thr, sk_thr)
        n_pos, n_neg = int(y_true.sum()), int((1 - y_true).sum())
        j = []  # J * n_pos * n_neg in integers, so that ties are exact
        for t in thr[1:]:
            cm = confusion_matrix(y_true, scores >= t)
            j.append(cm.tp * n_neg + cm.tn * n_pos - n_pos * n_neg)
        best = youden_threshold(y_true, scores)
        assert best == max(t for t, v in zip(thr[1:], j, strict=True) if v == max(j))
    else:
        assert math.isnan(roc_auc(y_true, scores))
        assert np.isnan(tpr).all() or np.isnan(fpr).all()
        with pytest.raises(ValueError, match="both classes"):
            youden_threshold(y_true, scores)


@pytest.mark.parametrize("seed", range(10))
def test_roc_auc_continuous(seed: int) -> None:
    rng = np.random.default_rng(seed)
    y = rng.random(300) < 0.4
    s = rng.random(300) + 0.3 * y
    assert roc_auc(y, s) == pytest.approx(skm.roc_auc_score(y, s), abs=1e-12)
    assert roc_auc(y, s.astype(np.float32)) == pytest.approx(
        skm.roc_auc_score(y, s.astype(np.float32)), abs=1e-12
    )


def test_classification_report() -> None:
    rng = np.random.default_rng(7)
    y = (rng.random(200) < 0.4).astype(int)
    p = np.clip(rng.random(200) * 0.7 + 0.3 * y, 0, 1)
    rep = classification_report(y, p, threshold=0.5)
    pred = (p >= 0.5).astype(int)
    tn, fp, fn, tp = skm.confusion_matrix(y, pred).ravel()
    assert (rep["tn"], rep["fp"], rep["fn"], rep["tp"]) == (tn, fp, fn, tp)
    assert rep["confusion_matrix"] == [[tn, fp], [fn, tp]]
    assert rep["n"] == 200 and rep["n_positive"] == y.sum()
    assert rep["accuracy"] == pytest.approx(skm.accuracy_score(y, pred))
    assert rep["precision"] == pytest.approx(skm.precision_score(y, pred))
    assert rep["sensitivity"] == rep["recall"] == pytest.approx(skm.recall_score(y, pred))
    assert rep["specificity"] == pytest.approx(skm.recall_score(y, pred, pos_label=0))
    assert rep["f1"] == pytest.approx(skm.f1_score(y, pred))
    assert rep["mcc"] == pytest.approx(skm.matthews_corrcoef(y, pred))
    assert rep["cohen_kappa"] == pytest.approx(skm.cohen_kappa_score(y, pred))
    assert rep["roc_auc"] == pytest.approx(skm.roc_auc_score(y, p))
    assert rep["youden_threshold"] == youden_threshold(y, p)
    one_class = classification_report([1, 1, 1], [0.2, 0.7, 0.9])
    assert math.isnan(one_class["roc_auc"]) and math.isnan(one_class["youden_threshold"])
    assert one_class["specificity"] == 0.0


# ----------------------------------------------------------------- bootstrap


def _auc_sample(seed: int = 0, n: int = 120) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.35).astype(int)
    return y, rng.random(n) + 0.5 * y


def test_bootstrap_deterministic_and_contains_estimate() -> None:
    y, s = _auc_sample()
    a = bootstrap_ci(roc_auc, y, s, n_resamples=300, seed=5)
    b = bootstrap_ci(roc_auc, y, s, n_resamples=300, seed=5)
    c = bootstrap_ci(roc_auc, y, s, n_resamples=300, seed=6)
    assert a == b and np.array_equal(a.samples, b.samples)
    assert (a.low, a.high) != (c.low, c.high)
    assert a.estimate == roc_auc(y, s)
    assert a.low < a.estimate < a.high
    assert 0.0 < a.high - a.low < 0.4
    assert a.n_valid == 300 and a.n_skipped == 0  # stratified: both classes always present
    d = a.as_dict()
    assert d["method"] == "percentile" and d["confidence"] == 0.95 and "samples" not in d


def test_bootstrap_skips_undefined_resamples() -> None:
    y = np.array([1, 0, 0, 0, 0, 0])
    s = np.linspace(0, 1, 6)
    res = bootstrap_ci(roc_auc, y, s, n_resamples=200, seed=0, stratified=False)
    assert res.n_skipped > 0 and res.n_valid + res.n_skipped == 200
    assert res.samples.size == res.n_valid and np.isfinite(res.samples).all()

    def raises(y_true: np.ndarray, score: np.ndarray) -> float:
        return skm.roc_auc_score(y_true, score)  # raises ValueError with one class

    res2 = bootstrap_ci(raises, y, s, n_resamples=200, seed=0, stratified=False)
    assert res2.n_skipped == res.n_skipped
    assert res2.low == pytest.approx(res.low) and res2.high == pytest.approx(res.high)


def test_bootstrap_single_array_and_errors() -> None:
    dice_scores = np.random.default_rng(0).random(50)
    res = bootstrap_ci(np.mean, dice_scores, n_resamples=200, stratified=False)
    assert res.low < res.estimate < res.high
    with pytest.raises(ValueError, match="continuous"):
        bootstrap_ci(np.mean, dice_scores, n_resamples=10)
    with pytest.raises(ValueError, match="same length"):
        bootstrap_ci(roc_auc, [0, 1], [0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match="confidence"):
        bootstrap_ci(np.mean, [1.0], confidence=1.5, stratified=False)
    nothing = bootstrap_ci(roc_auc, [1, 1], [0.1, 0.2], n_resamples=5)
    assert nothing.n_valid == 0 and math.isnan(nothing.low) and math.isnan(nothing.estimate)


# ----------------------------------------------------------------- accumulators


def test_segmentation_accumulator_equals_report_float16() -> None:
    probs, truths = _maps(np.random.default_rng(4), 12)
    acc = SegmentationAccumulator(0.5)
    for p, t in zip(probs[:5], truths[:5], strict=True):
        acc.update(p, t)
    acc.update_batch(np.stack(probs[5:]), np.stack(truths[5:]))
    got, want = acc.compute(), segmentation_report(probs, truths, 0.5)
    # float16 histogram is exact: the whole report is identical (NaN-aware).
    np.testing.assert_equal(got, want)
    acc.reset()
    assert acc.compute()["n_images"] == 0


@pytest.mark.parametrize("bins", ["float16", 4096, 1000])
@pytest.mark.parametrize("seed", range(3))
def test_segmentation_accumulator_binned_auc_close(bins: int | str, seed: int) -> None:
    probs, truths = _maps(np.random.default_rng(seed), 10, size=64, dtype=np.float64)
    acc = SegmentationAccumulator(auc_bins=bins)
    for p, t in zip(probs, truths, strict=True):
        acc.update(p, t)
    got, want = acc.compute(), segmentation_report(probs, truths)
    assert abs(got["pooled"]["auc"] - want["pooled"]["auc"]) < 1e-3
    assert got["pooled"]["dice"] == want["pooled"]["dice"]
    np.testing.assert_equal(got["per_image"], want["per_image"])


def test_binned_auc() -> None:
    rng = np.random.default_rng(0)
    y = rng.random(20000) < 0.3
    s = np.clip(rng.normal(0.4, 0.2, y.size) + 0.2 * y, 0, 1)
    b = BinnedAUC(4096)
    b.update(s[:7000], y[:7000])
    b.update(s[7000:], y[7000:])
    assert abs(b.compute() - skm.roc_auc_score(y, s)) < 1e-3
    b.reset()
    assert math.isnan(b.compute())
    with pytest.raises(ValueError, match="bins"):
        BinnedAUC(1)


def test_dice_accumulator_equals_pure_functions() -> None:
    probs, truths = _maps(np.random.default_rng(5), 7)
    acc = DiceAccumulator(0.5, empty="zero")
    for p, t in zip(probs, truths, strict=True):
        acc.update(p, t)
    out = acc.compute()
    assert out["per_image"] == [
        dice(p, t, empty="zero") for p, t in zip(probs, truths, strict=True)
    ]
    assert out["pooled"] == pooled_dice(probs, truths, empty="zero")
    assert out["mean"] == pytest.approx(np.mean(out["per_image"]))
    acc.reset()
    assert acc.compute()["n_images"] == 0


def test_classification_accumulator_equals_report() -> None:
    y, s = _auc_sample(3, 97)
    acc = ClassificationAccumulator(threshold=0.6)
    for start in range(0, 97, 10):
        acc.update(y[start : start + 10], s[start : start + 10])
    acc.update(y[:0], s[:0])
    np.testing.assert_equal(acc.compute(), classification_report(y, s, 0.6))
    acc.reset()
    with pytest.raises(ValueError, match="empty"):
        acc.compute()


def test_report_and_accumulator_read_zarr_arrays(tmp_path: Path) -> None:
    import zarr
    probs, truths = _maps(np.random.default_rng(6), 5, size=24)
    group = zarr.open_group(str(tmp_path / "m.zarr"), mode="w")
    zp = group.create_array("p", shape=(5, 24, 24), dtype="float16", chunks=(1, 24, 24))
    zt = group.create_array("t", shape=(5, 24, 24), dtype="uint8", chunks=(1, 24, 24))
    zp[...] = np.stack(probs)
    zt[...] = np.stack(truths)
    want = segmentation_report(probs, truths)
    np.testing.assert_equal(segmentation_report(zp, zt), want)
    acc = SegmentationAccumulator()
    acc.update_batch(zp, zt)
    np.testing.assert_equal(acc.compute(), want)


def test_bootstrap_exact_small_example() -> None:
    """Two negatives (0.1, 0.6), two positives (0.5, 0.9): the stratified bootstrap AUC
    takes 0, 0.5, 0.75, 1 with probabilities 1/16, 4/16, 4/16, 7/16 (by enumeration)."""
    y = np.array([0, 0, 1, 1])
    s = np.array([0.1, 0.6, 0.5, 0.9])
    res = bootstrap_ci(roc_auc, y, s, n_resamples=4000, seed=3, confidence=0.8)
    assert res.estimate == 0.75
    values, counts = np.unique(res.samples, return_counts=True)
    assert values.tolist() == [0.0, 0.5, 0.75, 1.0]
    np.testing.assert_allclose(counts / 4000, [1 / 16, 4 / 16, 4 / 16, 7 / 16], atol=0.025)
    # 10th and 90th percentiles of that distribution (cumulative 1/16, 5/16, 9/16, 1)
    assert (res.low, res.high) == (0.5, 1.0)
    wide = bootstrap_ci(roc_auc, y, s, n_resamples=4000, seed=3)
    assert (wide.low, wide.high) == (0.0, 1.0)


def test_bootstrap_matches_hand_written_stratified_percentile() -> None:
    """The same interval as a plain loop (resample positives and negatives apart, take
    percentiles), up to Monte Carlo error."""
    y, s = _auc_sample(seed=2, n=150)
    res = bootstrap_ci(roc_auc, y, s, n_resamples=4000, seed=1)
    rng = np.random.default_rng(123)
    pos, neg = np.flatnonzero(y == 1), np.flatnonzero(y == 0)
    values = []
    for _ in range(4000):
        idx = np.concatenate([rng.choice(neg, neg.size), rng.choice(pos, pos.size)])
        values.append(skm.roc_auc_score(y[idx], s[idx]))
    low, high = np.percentile(values, [2.5, 97.5])
    assert res.low == pytest.approx(low, abs=0.01) and res.high == pytest.approx(high, abs=0.01)
    assert res.n_valid == 4000 and res.n_skipped == 0


def test_bootstrap_is_scipy_bootstrap() -> None:
    """bootstrap_ci is scipy.stats.bootstrap over per-class row indices, seeded by default_rng."""
    from scipy import stats

    y, s = _auc_sample(seed=4, n=60)
    neg, pos = np.flatnonzero(y == 0), np.flatnonzero(y == 1)
    for method in ("percentile", "BCa"):
        ref = stats.bootstrap(
            (neg, pos),
            lambda a, b: roc_auc(y[np.r_[a, b]], s[np.r_[a, b]]),
            n_resamples=500,
            paired=False,
            vectorized=False,
            method=method,
            rng=np.random.default_rng(9),
        )
        res = bootstrap_ci(roc_auc, y, s, n_resamples=500, seed=9, method=method)  # type: ignore[arg-type]
        assert res.low == pytest.approx(ref.confidence_interval.low)
        assert res.high == pytest.approx(ref.confidence_interval.high)
        np.testing.assert_allclose(res.samples, ref.bootstrap_distribution)
        assert res.as_dict()["method"] == method


def test_bootstrap_perfect_auc_and_methods() -> None:
    y = np.array([0, 0, 0, 1, 1, 1, 1])
    s = np.array([0.1, 0.2, 0.3, 0.6, 0.7, 0.8, 0.9])
    for method in ("percentile", "basic", "BCa"):
        res = bootstrap_ci(roc_auc, y, s, n_resamples=200, method=method)  # type: ignore[arg-type]
        assert (res.estimate, res.low, res.high) == (1.0, 1.0, 1.0), method
    y2, s2 = _auc_sample(seed=7, n=100)
    bca = bootstrap_ci(roc_auc, y2, s2, n_resamples=500, seed=0, method="BCa")
    assert bca.low < bca.estimate < bca.high and bca.method == "BCa"
    with pytest.raises(ValueError, match="method"):
        bootstrap_ci(roc_auc, y2, s2, method="studentized")  # type: ignore[arg-type]


def test_bootstrap_skip_count_is_truthful() -> None:
    """Unstratified, one positive in six: a resample lacks it with probability (5/6)^6."""
    y = np.array([1, 0, 0, 0, 0, 0])
    s = np.linspace(0, 1, 6)
    res = bootstrap_ci(roc_auc, y, s, n_resamples=3000, seed=4, stratified=False)
    assert res.n_skipped / 3000 == pytest.approx((5 / 6) ** 6, abs=0.03)
    assert res.n_valid + res.n_skipped == 3000 and res.samples.size == res.n_valid
    assert 0.0 <= res.low <= res.high <= 1.0
    # the interval is the percentile interval of the defined values alone
    assert [res.low, res.high] == pytest.approx(np.percentile(res.samples, [2.5, 97.5]))
    # a one-row stratum stays in every resample; the rest is resampled
    one_pos = bootstrap_ci(roc_auc, y, s, n_resamples=300, seed=4)
    assert one_pos.n_skipped == 0 and one_pos.n_valid == 300
