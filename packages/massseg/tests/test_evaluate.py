"""massseg evaluate and the CV table on hand-made stores and folders (no Keras needed)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from fixtures_stores import make_splits_for, write_breast_store, write_masses_like
from PIL import Image

from mammo_common.errors import MammoError, ModelFolderError, StoreError
from mammo_common.metrics import dice, jaccard, pixel_auc
from mammo_common.store import open_store
from mammo_common.viz import COLORS
from massseg.config import EvaluateConfig
from massseg.cv import cv_markdown, summarise_cv
from massseg.evaluate import evaluate, score_store
from massseg.overlays import draw_overlay, pick_cases, write_overlay

FLAT_KEYS = {
    "n_images", "n_images_with_mass", "n_auc_defined", "threshold", "dice_mean", "dice_sd",
    "dice_median", "jaccard_mean", "auc_mean", "dice_pooled", "jaccard_pooled", "auc_pooled",
    "dice_mean_unprocessed", "jaccard_mean_unprocessed", "dice_pooled_unprocessed",
    "n_images_without_mass", "dice_mean_all_images", "empty_images_clean",
    "false_positive_pixels_mean",
    "reference",
}


@pytest.fixture(scope="module")
def stores(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("eval")
    breast = root / "breast.zarr"
    ids = write_breast_store(breast, 12, seed=3, empty_cases=2)
    make_splits_for(ids, n_test=4, n_folds=2).save(root / "splits.json")
    write_masses_like(root / "perfect.zarr", breast, perfect=True)
    write_masses_like(root / "shifted.zarr", breast, perfect=False)
    return {"root": root, "breast": breast, "perfect": root / "perfect.zarr",
            "shifted": root / "shifted.zarr", "splits": root / "splits.json"}


def test_perfect_prediction_scores_one(stores: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "metrics.json"
    result = evaluate(EvaluateConfig(data=stores["perfect"], out=out,
                                     per_case=tmp_path / "per_case.json"))
    metrics = json.loads(out.read_text())
    assert set(metrics) == FLAT_KEYS
    assert all(not isinstance(v, dict | list) for v in metrics.values())  # flat, for DVC
    assert metrics["reference"] == "store mass_masks (ground truth)"  # names what it scored
    assert metrics["n_images"] == 12 and metrics["n_images_with_mass"] == 10
    assert metrics["dice_mean"] == 1.0 and metrics["jaccard_mean"] == 1.0
    assert metrics["dice_pooled"] == 1.0 and metrics["auc_pooled"] == 1.0
    assert metrics["n_auc_defined"] == 10  # empty truths: AUC undefined, skipped
    per_case = json.loads((tmp_path / "per_case.json").read_text())
    empty = [c for c in per_case if c["truth_pixels"] == 0]
    assert len(empty) == 2 and all(c["dice"] == 1.0 and c["auc"] is None for c in empty)
    assert result.n_cases == 12 and result.mode == "store"


def test_scores_match_the_numpy_metrics(stores: dict[str, Path]) -> None:
    store = open_store(stores["shifted"], "masses")
    scores = score_store(store)
    pred, truth, prob = (store.array(n) for n in ("mass_pred", "mass_masks", "mass_probs"))
    for i, case in enumerate(scores.cases):
        assert case.dice == pytest.approx(dice(pred[i], truth[i]))
        assert case.jaccard == pytest.approx(jaccard(pred[i], truth[i]))
        auc = pixel_auc(prob[i], truth[i])
        assert (case.auc is None and np.isnan(auc)) or case.auc == pytest.approx(auc)
    # the mean is over the images with a mass (the reference's definition); the images without
    # one (2 of 12, each a perfect empty-vs-empty 1) would inflate it and are reported apart
    with_mass = [c.dice for c in scores.cases if c.truth_pixels > 0]
    assert len(with_mass) == 10
    assert scores.metrics["dice_mean"] == pytest.approx(np.mean(with_mass))
    assert 0 < scores.metrics["dice_mean"] < 1
    assert scores.metrics["dice_mean_all_images"] == pytest.approx(
        np.mean([c.dice for c in scores.cases]))
    assert scores.metrics["dice_mean_all_images"] > scores.metrics["dice_mean"]
    assert scores.metrics["n_images_without_mass"] == 2
    empty = [c for c in scores.cases if c.truth_pixels == 0]
    assert scores.metrics["empty_images_clean"] == pytest.approx(
        np.mean([c.pred_pixels == 0 for c in empty]))


def test_part_selection_and_overlays(stores: dict[str, Path], tmp_path: Path) -> None:
    result = evaluate(EvaluateConfig(
        data=stores["shifted"], splits=stores["splits"], part="test", out=tmp_path / "m.json",
        overlays_dir=tmp_path / "overlays", markdown=tmp_path / "m.md",
    ))
    assert result.metrics["n_images"] == 4
    names = sorted(p.name.split("_")[0] for p in result.overlays)
    assert names == ["best", "median", "worst"]
    for path in result.overlays:
        with Image.open(path) as img:
            assert img.format == "PNG" and img.mode == "RGB" and min(img.size) >= 256
            assert max(img.size) <= 800 and path.stat().st_size < 400_000
            assert _near(np.asarray(img), COLORS["truth"]).sum() > 20  # the truth's outline
    assert "dice_mean" in (tmp_path / "m.md").read_text()
    fold = evaluate(EvaluateConfig(data=stores["shifted"], splits=stores["splits"],
                                   part="valid", fold=2, out=tmp_path / "v.json"))
    assert fold.metrics["n_images"] == 4


def test_pick_cases() -> None:
    picks = pick_cases([0.5, 0.9, 0.1, float("nan"), 0.7], k=1)
    assert picks == {"best": [1], "median": [0], "worst": [2]}
    assert pick_cases([], k=1) == {"best": [], "median": [], "worst": []}


def test_wrong_inputs_are_refused(stores: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "m.json"
    with pytest.raises(StoreError, match="'breast' store"):
        evaluate(EvaluateConfig(data=stores["breast"], out=out))
    with pytest.raises(StoreError, match="does not exist"):
        evaluate(EvaluateConfig(data=tmp_path / "nope.zarr", out=out))
    with pytest.raises(MammoError, match="fold 9"):
        evaluate(EvaluateConfig(data=stores["perfect"], splits=stores["splits"], part="valid",
                                fold=9, out=out))
    assert not out.exists()


def _fake_fold(folder: Path, val_dice: list[float], val_loss: list[float]) -> None:
    folder.mkdir(parents=True)
    lines = ["epoch,loss,dice,iou,val_loss,val_dice,val_iou,lr"]
    for e, (d, v) in enumerate(zip(val_dice, val_loss, strict=True), start=1):
        lines.append(f"{e},0.5,0.5,0.4,{v},{d},{d / 2},0.0001")
    (folder / "history.csv").write_text("\n".join(lines) + "\n")
    (folder / "model_card.json").write_text(json.dumps({"architecture": "unet5l"}))


def test_cv_table(tmp_path: Path) -> None:
    cv = tmp_path / "unet5l"
    _fake_fold(cv / "fold_1", [0.2, 0.6, 0.5], [0.8, 0.4, 0.5])
    _fake_fold(cv / "fold_2", [0.3, 0.4, 0.8, 0.7], [0.7, 0.6, 0.3, 0.35])
    (cv / ".fold_3.training").mkdir()  # an unfinished training is not a fold
    summary = summarise_cv(cv)
    assert [r.fold for r in summary.folds] == [1, 2]
    r1, r2 = summary.folds
    assert (r1.best_epoch, r1.best_val_dice, r1.last_val_dice, r1.epochs_run) == (2, 0.6, 0.5, 3)
    assert (r2.best_epoch, r2.best_val_dice, r2.last_val_dice, r2.epochs_run) == (3, 0.8, 0.7, 4)
    assert summary.mean["best_val_dice"] == pytest.approx(0.7)
    assert summary.sd["best_val_dice"] == pytest.approx(np.std([0.6, 0.8], ddof=1))
    md = cv_markdown(summary)
    assert "| 1 | 0.6000 | 0.5000 |" in md and "0.7000 +- 0.1414" in md
    result = evaluate(EvaluateConfig(cv=cv, out=tmp_path / "cv.json",
                                     markdown=tmp_path / "cv.md"))
    flat = json.loads((tmp_path / "cv.json").read_text())
    assert flat["best_val_dice_mean"] == pytest.approx(0.7) and flat["fold_2_best_epoch"] == 3
    assert flat["reference"] == "store mass_masks (ground truth)"
    assert result.mode == "cv" and result.n_cases == 2
    with pytest.raises(ModelFolderError, match="no fold"):
        summarise_cv(tmp_path)


def test_postprocess_threshold_small_objects_largest() -> None:
    from massseg.predict import postprocess

    prob = np.zeros((32, 32), np.float32)
    prob[2:12, 2:12] = 0.9  # 100 px
    prob[20:25, 20:25] = 0.6  # 25 px: under 30, removed
    prob[20:30, 2:8] = 0.55  # 60 px
    mask = postprocess(prob, 0.5, 30)
    assert mask.dtype == np.uint8 and mask.sum() == 160
    assert postprocess(prob, 0.5, 30, keep_largest=True).sum() == 100
    assert postprocess(prob, 0.58, 0).sum() == 125
    assert postprocess(np.zeros((8, 8)), 0.5, 30).sum() == 0


def _near(rgb: np.ndarray, color: tuple[int, int, int], tol: int = 60) -> np.ndarray:
    return np.abs(rgb[..., :3].astype(np.int32) - np.asarray(color)).sum(axis=-1) <= tol


def test_overlay_outlines_truth_and_prediction(tmp_path: Path) -> None:
    """A 64x64 crop is drawn enlarged, the truth and prediction as closed outlines in their
    colours (truth left, prediction right), an empty prediction leaves no orange."""
    from scipy import ndimage

    rng = np.random.default_rng(0)
    image = (30000 + 3000 * ndimage.gaussian_filter(rng.normal(size=(64, 64)), 2)).astype(
        np.uint16)
    yy, xx = np.mgrid[:64, :64]
    truth = (yy - 32) ** 2 + (xx - 18) ** 2 <= 100
    pred = (yy - 32) ** 2 + (xx - 46) ** 2 <= 81
    picture = draw_overlay(image, truth, pred, "best 1: P_00001_LEFT_CC  Dice 0.000")
    assert picture.mode == "RGB" and min(picture.size) >= 256 and max(picture.size) <= 800
    rgb = np.asarray(picture)
    centres = []
    for color in (COLORS["truth"], COLORS["pred"]):
        found = _near(rgb, color)
        labels, n = ndimage.label(found, structure=np.ones((3, 3)))
        ring = labels == 1 + int(np.argmax(ndimage.sum(found, labels, range(1, n + 1))))
        line = ndimage.binary_dilation(ring)
        assert ndimage.binary_fill_holes(line).sum() > 3 * line.sum(), "an outline, not a fill"
        points = np.argwhere(ring)
        centres.append((points.min(axis=0) + points.max(axis=0)) / 2)
    # same row (within half an image pixel, ~3.5 px drawn), truth left of prediction
    assert centres[0][1] < centres[1][1] and abs(centres[0][0] - centres[1][0]) < 3.5
    empty = np.asarray(draw_overlay(image, truth, np.zeros_like(pred), "worst 1: x  Dice 0"))
    assert _near(empty, COLORS["truth"]).any() and not _near(empty, COLORS["pred"]).any()
    path = write_overlay(tmp_path / "o.png", picture)
    assert path.read_bytes() == write_overlay(tmp_path / "p.png", picture).read_bytes()
    assert b"tIME" not in path.read_bytes() and path.stat().st_size < 400_000
