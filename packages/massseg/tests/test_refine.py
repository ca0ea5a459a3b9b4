"""The second-look refiner (massseg.refine) and the false-positive scorer after it
(massseg.fp_reduction): squares, redrawing, training, model folders (Keras).

The geometry and the redrawing are checked with a stand-in model whose output is known; the
training test trains a tiny refiner beside a tiny whole-image network on 64x64 phantoms and
asserts a validation Dice that an untrained network (about 0.5 everywhere: the whole square)
cannot reach, then that prediction uses it, records it, and refuses a folder that lost it.
The same training fits a false-positive scorer; prediction uses it, only removes objects, and
refuses a folder that lost it.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fixtures_stores import make_splits_for, write_breast_store

from mammo_common.errors import ModelFolderError
from mammo_common.store import open_store
from massseg.config import FPReductionSettings, PredictConfig, RefineSettings, TrainConfig
from massseg.fp_reduction import FP_REDUCTION_FILE, load_fp_reduction
from massseg.predict import predict
from massseg.refine import (
    CropSampler,
    crop_square,
    refine_probabilities,
    refiner_folder,
    square_box,
)
from massseg.train import is_complete, train

pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")


class DiscModel:
    """Stands in for a refiner: a centred disc of radius ``r`` (share of the side), or nothing."""

    def __init__(self, r: float) -> None:
        self.r = r
        self.calls = 0

    def predict_on_batch(self, x: np.ndarray) -> np.ndarray:
        self.calls += 1
        n, s = x.shape[0], x.shape[1]
        yy, xx = np.mgrid[0:s, 0:s]
        disc = (np.hypot(yy - (s - 1) / 2, xx - (s - 1) / 2) <= self.r * s).astype(np.float32)
        return np.repeat(disc[None, ..., None], n, axis=0)


def test_square_box_and_crop() -> None:
    assert square_box((10, 20, 20, 30), 0.5) == (5, 15, 25, 35)  # 10 px box + 5 px a side
    assert square_box((10, 20, 20, 40), 0.0) == (5, 20, 25, 40)  # the longer side, centred
    assert square_box((10, 10, 12, 12), 0.0, min_side=16) == (3, 3, 19, 19)  # at least 16
    top, left, bottom, right = square_box((10, 10, 20, 20), 0.5, shift=(0.25, 0.0))
    assert (bottom - top, right - left) == (20, 20) and top == 10  # moved down by 5 px
    image = np.arange(100, dtype=np.float32).reshape(10, 10)
    crop = crop_square(image, (-2, -2, 4, 4), 6)
    assert crop.shape == (6, 6)
    assert np.all(crop[:2] == 0) and np.all(crop[:, :2] == 0)  # outside the image: zero
    assert crop[2, 2] == image[0, 0] and crop[5, 5] == image[3, 3]


def test_refine_redraws_confirms_and_removes() -> None:
    image = np.zeros((64, 64), np.uint16)
    prob = np.zeros((64, 64), np.float32)
    prob[10:30, 10:30] = 0.9  # a square blob: the refiner redraws it as a disc
    prob[50:52, 50:52] = 0.9  # too small to be an object: left as it is
    out = refine_probabilities([DiscModel(0.25)], image, prob, threshold=0.5,
                               min_object_pixels=10, margin=0.5, size=32)
    assert out.shape == prob.shape and out.dtype == np.float32
    assert out[20, 20] == pytest.approx(1.0) and out[10, 10] == 0.0  # corner cut off
    assert np.all(out[50:52, 50:52] == 0.9) and prob[10, 10] == 0.9  # input not modified
    gone = refine_probabilities([DiscModel(0.0)], image, prob, threshold=0.5,
                                min_object_pixels=10, margin=0.5, size=32)
    assert gone[10:30, 10:30].max() < 0.5  # not confirmed: the detection disappears
    model = DiscModel(0.25)
    empty = np.zeros_like(prob)
    assert refine_probabilities([model], image, empty, threshold=0.5, min_object_pixels=10,
                                margin=0.5, size=32) is empty
    assert model.calls == 0  # nothing detected, nothing run


def test_sampler_draws_masses_and_negatives() -> None:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 65535, (3, 64, 64)).astype(np.uint16)
    masks = np.zeros((3, 64, 64), np.uint8)
    masks[0, 20:30, 20:30] = 1  # one mass, in case 0
    breasts = np.zeros_like(masks)
    breasts[:, 8:56, 8:56] = 1
    only = CropSampler(images, masks, [0, 1, 2], size=16)
    assert len(only) == 1 and sorted(only._images) == [0]  # cases without a mass: unused
    x, y = only.sample(20, np.random.default_rng(1))
    assert x.shape == (20, 16, 16, 1) and all(y[k].any() for k in range(20))
    both = CropSampler(images, masks, [0, 1, 2], size=16, breasts=breasts,
                       negative_fraction=0.5)
    x, y = both.sample(200, np.random.default_rng(1))
    empty = np.mean([not y[k].any() for k in range(200)])
    assert 0.3 < empty < 0.6  # about half the squares are placed elsewhere: no mass in them
    assert x.min() >= 0.0 and x.max() <= 1.0


@pytest.fixture(scope="module")
def refined(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("refine")
    breast = root / "breast.zarr"
    ids = write_breast_store(breast, 40, seed=2)
    make_splits_for(ids, n_test=8, n_folds=4).save(root / "splits.json")
    out = root / "unet5l" / "fold_1"
    settings = RefineSettings(size=32, filters=4, epochs=8, samples_per_epoch=256,
                              batch_size=16, learning_rate=3e-3)
    result = train(TrainConfig(arch="unet5l", arch_options={"filters": 4}, batch_size=4,
                               learning_rate=1e-3, epochs=4, early_stopping_patience=None,
                               monitor="val_dice", data=breast, splits=root / "splits.json",
                               fold=1, out=out, refine=settings,
                               fp_reduction=FPReductionSettings(min_object_pixels=5)))
    return {"root": root, "breast": breast, "out": out, "result": result}


def test_refiner_learns_and_is_saved(refined: dict[str, Any]) -> None:
    out = refined["out"]
    sub = refiner_folder(out)
    card = json.loads((sub / "model_card.json").read_text())
    assert card["model_id"] == "massseg/unet5l/fold_1/refiner"
    assert card["input_shape"] == [32, 32, 1] and card["training"]["refine"]["size"] == 32
    whole = json.loads((out / "model_card.json").read_text())
    assert whole["training"]["refine"]["filters"] == 4
    print(f"refiner validation Dice {card['metrics']['best_val_dice']:.3f}")
    # untrained: ~0.5 everywhere, the whole square (a mass fills ~1/5 of it): Dice ~0.3
    assert card["metrics"]["best_val_dice"] >= 0.6
    assert whole["metrics"]["refiner_best_val_dice"] == card["metrics"]["best_val_dice"]
    assert is_complete(out)


def test_predict_uses_the_refiner_and_refuses_a_lost_one(
    refined: dict[str, Any], tmp_path: Path
) -> None:
    out, breast = refined["out"], refined["breast"]
    with_ref = tmp_path / "with.zarr"
    predict(PredictConfig(models=[out], data=breast, out=with_ref))
    store = open_store(with_ref, "masses")
    assert store.meta.producer.params["refine"] == {"margin": 0.5, "size": 32}
    assert "massseg/unet5l/fold_1/refiner" in store.meta.producer.model_ids
    without = tmp_path / "without.zarr"
    predict(PredictConfig(models=[out], data=breast, out=without, refine=False))
    plain = open_store(without, "masses")
    assert plain.meta.producer.params["refine"] is None
    assert not np.array_equal(store.array("mass_probs")[...], plain.array("mass_probs")[...])
    copy = tmp_path / "copy" / "fold_1"
    shutil.copytree(out, copy)
    shutil.rmtree(refiner_folder(copy))
    assert not is_complete(copy)  # cv would retrain it
    with pytest.raises(ModelFolderError, match="refiner"):
        predict(PredictConfig(models=[copy], data=breast, out=tmp_path / "bad.zarr"))
    assert not (tmp_path / "bad.zarr").exists()


def test_fp_reduction_is_fitted_used_and_refused_when_lost(
    refined: dict[str, Any], tmp_path: Path
) -> None:
    out, breast = refined["out"], refined["breast"]
    card = json.loads((out / "model_card.json").read_text())
    assert card["training"]["fp_reduction"]["min_object_pixels"] == 5
    scorer = load_fp_reduction(out)
    assert card["metrics"]["fp_reduction_threshold"] == scorer.threshold
    assert scorer.info["train_objects"] > 0
    print(f"fp reduction: {scorer.info}")
    kept = tmp_path / "kept.zarr"
    predict(PredictConfig(models=[out], data=breast, out=kept, min_object_pixels=5))
    store = open_store(kept, "masses")
    assert store.meta.producer.params["fp_reduction"] == {
        "thresholds": [scorer.threshold], "max_objects": [scorer.max_objects]}
    every = tmp_path / "every.zarr"
    predict(PredictConfig(models=[out], data=breast, out=every, min_object_pixels=5,
                          fp_reduction=False))
    plain = open_store(every, "masses")
    assert plain.meta.producer.params["fp_reduction"] is None
    # the scorer only removes objects: what it keeps was predicted without it too
    with_fp, without = store.array("mass_pred")[...] > 0, plain.array("mass_pred")[...] > 0
    assert not (with_fp & ~without).any()
    copy = tmp_path / "copy" / "fold_1"
    shutil.copytree(out, copy)
    (copy / FP_REDUCTION_FILE).unlink()
    assert not is_complete(copy)
    with pytest.raises(ModelFolderError, match="fp_reduction.json"):
        predict(PredictConfig(models=[copy], data=breast, out=tmp_path / "bad.zarr"))
    assert not (tmp_path / "bad.zarr").exists()


def test_refit_replaces_only_the_scorer_and_reproduces_training(
    refined: dict[str, Any], tmp_path: Path
) -> None:
    from mammo_common.errors import ConfigError
    from massseg.fp_refit import RefitConfig, refit_fp_reduction

    out, breast = refined["out"], refined["breast"]
    copy = tmp_path / "fold_1"
    shutil.copytree(out, copy)
    network = (copy / "model.keras").read_bytes()
    trained = load_fp_reduction(out)
    # the tiny network finds only masses: training kept every object (and refitting must too)
    assert "one kind" in trained.info["threshold_from"]
    config = RefitConfig(model=copy, data=breast, splits=refined["root"] / "splits.json",
                         settings={"scorer": "logistic"})
    result = refit_fp_reduction(config)
    assert result.scorer == "logistic"
    scorer = load_fp_reduction(copy)
    card = json.loads((copy / "model_card.json").read_text())
    assert scorer.kind == "logistic" and card["training"]["fp_reduction"]["scorer"] == "logistic"
    assert card["training"]["fp_reduction"]["min_object_pixels"] == 5  # the card's, kept
    assert card["metrics"]["fp_reduction_threshold"] == scorer.threshold
    assert (copy / "model.keras").read_bytes() == network  # the network is untouched
    # refitting the training's own settings gives the scorer training fitted
    back = refit_fp_reduction(config.model_copy(update={"settings": {"scorer": "boosted_trees"}}))
    again = load_fp_reduction(copy)
    assert back.valid_dice == trained.info.get("valid_dice")
    assert again.info == trained.info  # the same objects, counts and operating point
    assert again.trees == trained.trees and again.threshold == trained.threshold
    with pytest.raises(ConfigError, match="scorer"):
        refit_fp_reduction(config.model_copy(update={"settings": {"scorer": "forest"}}))
    other = tmp_path / "other.zarr"
    write_breast_store(other, 30, seed=2)  # other cases: another metadata digest
    with pytest.raises(ModelFolderError, match="another store"):
        refit_fp_reduction(config.model_copy(update={"data": other}))
