"""False-positive reduction (massseg.fp_reduction): measurements, fitting, operating point, files.

No network here: objects are drawn on small images, and the scorer is fitted on measurements
whose separation is known, so the tests can say what it must learn. The model-folder path
(training, prediction, a lost file) is in test_refine.py, beside the refiner it follows.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from mammo_common.errors import ModelFolderError
from massseg.fp_reduction import (
    FEATURES,
    FORMAT_1_FEATURES,
    FP_REDUCTION_FILE,
    FPReduction,
    ObjectSet,
    collect_objects,
    fit_fp_reduction,
    load_fp_reduction,
    load_fp_reductions,
    rank_in_groups,
    reject_objects,
)


def _disc(shape: tuple[int, int], centre: tuple[int, int], r: float) -> np.ndarray:
    yy, xx = np.mgrid[0 : shape[0], 0 : shape[1]]
    return np.hypot(yy - centre[0], xx - centre[1]) <= r


def _scene(rng: np.random.Generator, n_true: int = 1, n_false: int = 2) -> dict[str, np.ndarray]:
    """A 96x96 image with bright true masses (probability 0.9) and faint small blobs (0.6)."""
    shape = (96, 96)
    image = rng.normal(0.4, 0.02, shape).astype(np.float32)
    prob = np.zeros(shape, np.float32)
    truth = np.zeros(shape, bool)
    centres = [(20, 20), (20, 70), (70, 20), (70, 70), (48, 48)]
    for k in range(n_true + n_false):
        disc = _disc(shape, centres[k], 9 if k < n_true else 4)
        if k < n_true:
            truth |= disc
            image[disc] += 0.3
            prob[disc] = 0.9
        else:
            image[disc] += 0.05
            prob[disc] = 0.6
    return {"image": np.clip(image, 0, 1), "prob": prob, "truth": truth}


def test_collect_objects_measures_and_labels_each_object() -> None:
    scene = _scene(np.random.default_rng(0))
    objs = collect_objects([scene["image"]], [scene["prob"]], [scene["prob"]], [scene["truth"]],
                           threshold=0.5, min_object_pixels=5)
    assert objs.features.shape == (3, len(FEATURES))
    assert objs.is_mass.tolist() == [True, False, False]  # raster order: the mass is first
    assert objs.overlap[0] == objs.area[0] == scene["truth"].sum()
    area = dict(zip(FEATURES, objs.features.T, strict=True))
    assert area["log_area_share"][0] > area["log_area_share"][1]
    assert area["contrast"][0] > area["contrast"][1] > 0  # brighter than their rings
    assert np.allclose(area["coarse_prob_max"], [0.9, 0.6, 0.6], atol=1e-6)
    # the mean Dice of images with a mass: all objects vs the mass alone
    assert objs.mean_dice(np.array([True, False, False])) == pytest.approx(1.0)
    assert objs.mean_dice(np.ones(3, bool)) < 1.0
    # objects under the smallest size are not measured
    few = collect_objects([scene["image"]], [scene["prob"]], [scene["prob"]], None,
                          threshold=0.5, min_object_pixels=100)
    assert len(few.area) == 1 and few.truth_area.tolist() == [0]


def _objects(rng: np.random.Generator, n_images: int) -> ObjectSet:
    imgs, probs, truths = [], [], []
    for _ in range(n_images):
        scene = _scene(rng, n_true=1, n_false=int(rng.integers(1, 4)))
        imgs.append(scene["image"])
        probs.append(scene["prob"] * rng.uniform(0.95, 1.05))
        truths.append(scene["truth"])
    return collect_objects(imgs, probs, probs, truths, threshold=0.5, min_object_pixels=5)


def test_fitted_scorer_removes_false_detections_chosen_on_validation() -> None:
    rng = np.random.default_rng(1)
    train, valid = _objects(rng, 12), _objects(rng, 8)
    scorer = fit_fp_reduction(train, valid)
    info = scorer.info
    assert info["threshold_from"] == "validation Dice"
    assert info["valid_auc"] == pytest.approx(1.0)
    # every false detection goes, every mass stays: Dice 1 on the validation images
    assert info["valid_masses_kept"] == info["valid_masses"] == 8
    assert info["valid_false_kept"] == 0
    assert info["valid_dice"] == pytest.approx(1.0)
    assert info["valid_dice_all_objects"] < 0.95
    scores = scorer.scores(valid.features)
    assert scores[valid.is_mass].min() >= scorer.threshold > scores[~valid.is_mass].max()


def test_one_kind_of_objects_keeps_everything() -> None:
    rng = np.random.default_rng(2)
    only_masses = _objects(rng, 3)
    keep = only_masses.is_mass
    masses = ObjectSet(only_masses.features[keep], only_masses.image[keep],
                       only_masses.area[keep], only_masses.overlap[keep], only_masses.truth_area)
    scorer = fit_fp_reduction(masses, masses)
    assert scorer.threshold == 0.0 and "one kind" in scorer.info["threshold_from"]
    assert np.all(scorer.scores(only_masses.features) >= scorer.threshold)


def test_reject_objects_caps_the_rejected_objects_below_the_threshold() -> None:
    scene = _scene(np.random.default_rng(3), n_true=1, n_false=2)
    # a scorer that wants large objects: log-area coefficient only
    coef = [4.0 if name == "log_area_share" else 0.0 for name in FEATURES]
    mean = [float(np.log(150 / 96**2))] + [0.0] * (len(FEATURES) - 1)
    scorer = FPReduction(mean=mean, scale=[1.0] * len(FEATURES), coef=coef, intercept=0.0,
                         threshold=0.5)
    out = scorer.apply(scene["image"], scene["prob"], scene["prob"], threshold=0.5,
                       min_object_pixels=5)
    kept = out >= 0.5
    assert np.array_equal(kept, scene["truth"])  # only the large object stays
    assert np.array_equal(out[scene["truth"]], scene["prob"][scene["truth"]])  # untouched
    small = (scene["prob"] > 0) & ~scene["truth"]
    assert out[small].max() < 0.5 and out[small].min() >= 0.0
    # objects under min_object_pixels are left to the post-processing
    left = scorer.apply(scene["image"], scene["prob"], scene["prob"], threshold=0.5,
                        min_object_pixels=100)
    assert np.array_equal(left, scene["prob"])
    # an ensemble averages its scorers: one that keeps everything halves the scores
    keep_all = FPReduction(mean=[0.0] * 7, scale=[1.0] * 7, coef=[0.0] * 7, intercept=20.0,
                           threshold=0.0, features=list(FORMAT_1_FEATURES))
    both = reject_objects([scorer, keep_all], scene["image"], scene["prob"], scene["prob"],
                          threshold=0.5, min_object_pixels=5)
    assert np.array_equal(both >= 0.5, scene["prob"] >= 0.5)


def test_save_load_round_trip_and_refusals(tmp_path: Path) -> None:
    rng = np.random.default_rng(4)
    scorer = fit_fp_reduction(_objects(rng, 6), _objects(rng, 4))
    scorer.save(tmp_path)
    back = load_fp_reduction(tmp_path)
    features = _objects(rng, 3).features
    assert np.array_equal(back.scores(features), scorer.scores(features))
    assert back.threshold == scorer.threshold and back.info == scorer.info
    raw = json.loads((tmp_path / FP_REDUCTION_FILE).read_text())
    raw["features"] = raw["features"][:-1]
    (tmp_path / FP_REDUCTION_FILE).write_text(json.dumps(raw))
    with pytest.raises(ModelFolderError, match="features"):
        load_fp_reduction(tmp_path)
    (tmp_path / FP_REDUCTION_FILE).write_text("{not json")
    with pytest.raises(ModelFolderError, match="cannot read"):
        load_fp_reduction(tmp_path)
    (tmp_path / FP_REDUCTION_FILE).unlink()
    with pytest.raises(ModelFolderError, match="no fp_reduction.json"):
        load_fp_reduction(tmp_path)


def test_an_ensemble_needs_a_scorer_in_every_fold(tmp_path: Path) -> None:
    class Card:
        def __init__(self, fp: bool) -> None:
            self.training = {"fp_reduction": {"c": 1.0} if fp else None}

    assert load_fp_reductions([tmp_path, tmp_path], [Card(False), Card(False)]) is None
    with pytest.raises(ModelFolderError, match="only some models"):
        load_fp_reductions([tmp_path / "a", tmp_path / "b"], [Card(True), Card(False)])


def test_rank_in_groups_orders_each_image_by_descending_score() -> None:
    scores = np.array([0.2, 0.9, 0.5, 0.7, 0.1, 0.7])
    groups = np.array([0, 0, 1, 1, 1, 0])
    # image 0: 0.9 (1st), 0.7 (2nd), 0.2 (3rd); image 1: 0.7, 0.5, 0.1
    assert rank_in_groups(scores, groups).tolist() == [2, 0, 1, 0, 2, 1]
    assert rank_in_groups(np.zeros(0), np.zeros(0, np.int64)).tolist() == []


def _rivals(rng: np.random.Generator, n_images: int) -> ObjectSet:
    """Images each with one mass and one smaller look-alike; sizes vary between images.

    Within an image the mass is the larger object, but a look-alike in one image can be larger
    than the mass of another: no score threshold separates them, one object per image does.
    """
    shape = (96, 96)
    imgs, probs, truths = [], [], []
    for _ in range(n_images):
        r = float(rng.uniform(6.0, 12.0))
        image = rng.normal(0.4, 0.02, shape).astype(np.float32)
        prob = np.zeros(shape, np.float32)
        mass, rival = _disc(shape, (28, 28), r), _disc(shape, (68, 68), r - 3.0)
        for disc in (mass, rival):
            image[disc] += 0.2
            prob[disc] = 0.8
        imgs.append(np.clip(image, 0, 1))
        probs.append(prob)
        truths.append(mass)
    return collect_objects(imgs, probs, probs, truths, threshold=0.5, min_object_pixels=5)


def test_auto_cap_keeps_one_object_per_image_when_no_threshold_can() -> None:
    rng = np.random.default_rng(5)
    train, valid = _rivals(rng, 16), _rivals(rng, 10)
    scorer = fit_fp_reduction(train, valid, max_objects="auto")
    by_cap = scorer.info["valid_dice_by_max_objects"]
    assert scorer.max_objects == 1
    assert by_cap["1"] == pytest.approx(1.0)
    assert by_cap["none"] < 0.95
    assert scorer.info["valid_false_kept"] == 0 and scorer.info["valid_masses_kept"] == 10
    # never capping is what the setting None gives, with the lower Dice
    uncapped = fit_fp_reduction(train, valid, max_objects=None)
    assert uncapped.max_objects is None
    assert uncapped.info["valid_dice"] == pytest.approx(by_cap["none"])
    with pytest.raises(ValueError, match="max_objects"):
        fit_fp_reduction(train, valid, max_objects=0)


def test_auto_cap_stays_off_when_the_threshold_already_separates() -> None:
    rng = np.random.default_rng(6)
    scorer = fit_fp_reduction(_objects(rng, 12), _objects(rng, 8), max_objects="auto")
    assert scorer.max_objects is None  # every cap ties at Dice 1: the loosest (none) is kept
    assert scorer.info["valid_dice"] == pytest.approx(1.0)


def test_reject_objects_keeps_the_best_scoring_objects_up_to_the_cap() -> None:
    scene = _scene(np.random.default_rng(7), n_true=1, n_false=2)
    coef = [4.0 if name == "log_area_share" else 0.0 for name in FEATURES]
    mean = [float(np.log(150 / 96**2))] + [0.0] * (len(FEATURES) - 1)
    capped = FPReduction(mean=mean, scale=[1.0] * len(FEATURES), coef=coef, intercept=0.0,
                         threshold=0.0, max_objects=1)
    out = capped.apply(scene["image"], scene["prob"], scene["prob"], threshold=0.5,
                       min_object_pixels=5)
    assert np.array_equal(out >= 0.5, scene["truth"])  # the largest (best-scoring) stays
    two = dataclasses.replace(capped, max_objects=2)
    kept = two.apply(scene["image"], scene["prob"], scene["prob"], threshold=0.5,
                     min_object_pixels=5) >= 0.5
    assert kept.sum() > scene["truth"].sum() and (kept & scene["truth"]).sum() == scene[
        "truth"].sum()
    # an ensemble caps only when every scorer does, at the loosest cap
    uncapped = dataclasses.replace(capped, max_objects=None)
    both = reject_objects([capped, uncapped], scene["image"], scene["prob"], scene["prob"],
                          threshold=0.5, min_object_pixels=5)
    assert np.array_equal(both >= 0.5, scene["prob"] >= 0.5)


def test_a_scorer_file_without_a_cap_reads_as_uncapped(tmp_path: Path) -> None:
    rng = np.random.default_rng(8)
    scorer = fit_fp_reduction(_rivals(rng, 8), _rivals(rng, 6), max_objects=2)
    assert scorer.max_objects == 2  # a number is a fixed cap
    scorer.save(tmp_path)
    assert load_fp_reduction(tmp_path).max_objects == 2
    raw = json.loads((tmp_path / FP_REDUCTION_FILE).read_text())
    del raw["max_objects"]  # a file from before the cap
    (tmp_path / FP_REDUCTION_FILE).write_text(json.dumps(raw))
    assert load_fp_reduction(tmp_path).max_objects is None


def test_boosted_trees_score_exactly_as_scikit_learn_and_survive_the_file(
    tmp_path: Path,
) -> None:
    from sklearn.ensemble import GradientBoostingClassifier

    from massseg.fp_reduction import TREE_SETTINGS

    rng = np.random.default_rng(9)
    train, valid = _objects(rng, 12), _objects(rng, 8)
    scorer = fit_fp_reduction(train, valid, scorer="boosted_trees", seed=3)
    assert scorer.kind == "boosted_trees" and scorer.features == list(FEATURES)
    assert len(scorer.trees) == TREE_SETTINGS["n_estimators"]
    assert scorer.info["scorer"] == "boosted_trees"
    assert scorer.info["valid_dice"] == pytest.approx(1.0)  # separable: every false one goes
    reference = GradientBoostingClassifier(random_state=3, **TREE_SETTINGS).fit(
        train.features, train.is_mass)
    probe = np.concatenate([valid.features, _objects(rng, 4).features])
    assert np.allclose(scorer.scores(probe), reference.predict_proba(probe)[:, 1],
                       rtol=0, atol=1e-12)
    scorer.save(tmp_path)
    back = load_fp_reduction(tmp_path)
    assert back.kind == "boosted_trees"
    assert np.array_equal(back.scores(probe), scorer.scores(probe))
    raw = json.loads((tmp_path / FP_REDUCTION_FILE).read_text())
    assert raw["format_version"] == 2
    raw["kind"] = "forest"
    (tmp_path / FP_REDUCTION_FILE).write_text(json.dumps(raw))
    with pytest.raises(ModelFolderError, match="kind"):
        load_fp_reduction(tmp_path)
    with pytest.raises(ValueError, match="scorer"):
        fit_fp_reduction(train, valid, scorer="forest")


def test_a_first_format_file_still_loads_and_reads_its_seven_measurements(
    tmp_path: Path,
) -> None:
    coef = [1.5, 0.0, 0.0, 0.0, 2.0, 0.0, 0.0]
    raw = {"format": "mammo-fp-reduction", "format_version": 1, "mean": [0.0] * 7,
           "scale": [1.0] * 7, "coef": coef, "intercept": -0.5, "threshold": 0.3,
           "features": list(FORMAT_1_FEATURES), "info": {}, "max_objects": None}
    (tmp_path / FP_REDUCTION_FILE).write_text(json.dumps(raw))
    scorer = load_fp_reduction(tmp_path)
    assert scorer.kind == "logistic" and scorer.features == list(FORMAT_1_FEATURES)
    objs = _objects(np.random.default_rng(10), 3)
    assert objs.features.shape[1] == len(FEATURES) > 7
    z = objs.features[:, :7] @ np.asarray(coef) - 0.5
    assert np.allclose(scorer.scores(objs.features), 1 / (1 + np.exp(-z)))
    # a logistic scorer of the current format reads the first seven measurements too
    fitted = fit_fp_reduction(objs, objs, scorer="logistic")
    assert fitted.features == list(FORMAT_1_FEATURES)


def test_breast_context_and_image_rank_measurements() -> None:
    """What the second format adds: the object against its breast and its image's others."""
    shape = (96, 96)
    image = np.full(shape, 0.05, np.float32)  # background
    breast = np.zeros(shape, bool)
    breast[:, :80] = True  # the chest wall at the left image edge, the skin line at x = 80
    _, xx = np.mgrid[0:96, 0:96]
    image[breast] = 0.3 + 0.4 * (xx[breast] % 2)  # a breast of dark and bright stripes
    deep = _disc(shape, (48, 30), 6)  # far from the skin line, brighter than the breast
    skin = _disc(shape, (20, 74), 4)  # at the skin line, as dark as the dark stripes
    dim = _disc(shape, (76, 40), 5)
    image[deep] = 0.95
    image[skin] = 0.3
    image[dim] = 0.3
    prob = np.zeros(shape, np.float32)
    prob[deep], prob[skin], prob[dim] = 0.95, 0.6, 0.8
    objs = collect_objects([image], [prob], [prob], None, threshold=0.5, min_object_pixels=5,
                           breasts=[breast])
    f = {name: objs.features[:, k] for k, name in enumerate(FEATURES)}
    order = np.argsort(objs.area)[::-1]  # deep (r 6), dim (r 5), skin (r 4)
    deep_i, dim_i, skin_i = order
    assert f["breast_percentile"][deep_i] > 0.95  # brighter than all the rest of its breast
    assert f["breast_percentile"][dim_i] < 0.05  # as dark as the darkest breast pixels
    assert f["breast_contrast"][deep_i] > 0 > f["breast_contrast"][dim_i]
    assert f["edge_distance"][deep_i] > 0.5 > f["edge_distance"][skin_i]
    assert f["coarse_rank"][[deep_i, dim_i, skin_i]].tolist() == [0, 1, 2]
    assert np.allclose(f["coarse_max_share"][[deep_i, dim_i, skin_i]], [1.0, 0.8 / 0.95,
                                                                      0.6 / 0.95])
    assert f["objects_in_image"].tolist() == [3, 3, 3]
    assert np.allclose(f["coarse_prob_high"][[deep_i, dim_i, skin_i]], [1.0, 0.0, 0.0])
    assert 0.9 < f["solidity"][deep_i] <= 1.0 and f["eccentricity"][deep_i] < 0.3
    # without a breast mask the whole image is the breast: the same object, other values
    plain = collect_objects([image], [prob], [prob], None, threshold=0.5, min_object_pixels=5)
    assert np.array_equal(plain.features[:, :7], objs.features[:, :7])
    assert not np.allclose(plain.features[:, 12], objs.features[:, 12])
