"""Training on phantoms: resume after an interruption, the model folder, and the Dice it reaches.

The session's ``trained_model`` fixture trains a tiny unet5l (64x48, f=4) on fold 1, is
interrupted after a few epochs and is started again; these tests check both halves.
"""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from breastseg_phantoms import (
    INTERRUPT_AFTER,
    TINY_EPOCHS,
    TINY_FILTERS,
    TINY_INPUT,
    write_phantom_store,
)

from breastseg.config import EvaluateConfig
from breastseg.evaluate import evaluate
from breastseg.models import build_model
from breastseg.segment import breast_mask
from breastseg.train import load_training_arrays, training_dir
from mammo_common.keras.deployment.inference import predict_probabilities
from mammo_common.keras.deployment.model_folder import load_model_folder
from mammo_common.metrics import dice
from mammo_common.schema.splits import Splits
from mammo_common.store import open_store


def test_interrupted_run_left_a_checkpoint_but_no_model(trained_model):
    state = trained_model.interrupted_state
    assert state == {"out_exists": False, "work_dir": True, "model_keras": False,
                     "history_rows": INTERRUPT_AFTER, "checkpoint": True}


def test_rerun_continues_where_it_stopped(trained_model):
    result = trained_model.result
    assert result.resumed_from == INTERRUPT_AFTER
    assert result.epochs_run == TINY_EPOCHS
    with open(trained_model.folder / "history.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [int(r["epoch"]) for r in rows] == list(range(1, TINY_EPOCHS + 1))
    assert {"loss", "dice", "iou", "val_loss", "val_dice", "val_iou", "lr"} <= set(rows[0])
    assert not training_dir(trained_model.folder).exists()
    assert sorted(p.name for p in trained_model.folder.parent.iterdir()) == ["fold_1"]


def test_model_folder_is_self_describing(trained_model, phantom_data):
    store_path, splits_path = phantom_data
    model, card = load_model_folder(trained_model.folder, expected_stage="breastseg")
    assert sorted(p.name for p in trained_model.folder.iterdir()) == [
        "dvclive",
        "history.csv",
        "model.keras",
        "model_card.json",
    ]
    assert model.input_shape == (None, *TINY_INPUT, 1)
    assert card.model_id == "breastseg/unet5l/fold_1" == trained_model.result.model_id
    assert card.input_shape == (*TINY_INPUT, 1)
    assert card.normalization == "divide_by_max"
    assert card.training["filters"] == TINY_FILTERS
    assert card.training["batch_size"] == 3 and card.training["learning_rate"] == 1e-3
    assert card.training["validation_augmented"] is False
    assert card.training["augmentation"]["rotation_range"] == 45
    splits = Splits.load(splits_path)
    fold = splits.fold(1)
    assert card.data.fold == 1
    assert card.data.n_train_cases == len(fold.train)
    assert card.data.n_valid_cases == len(fold.valid)
    assert card.data.train_store_digest == open_store(store_path).digest
    n = len(fold.train) + len(fold.valid)
    assert card.training["mask_sources"] == {"store": n, "labeller": 0}
    assert "came from the store" in card.notes
    assert card.metrics["val_dice"] == pytest.approx(trained_model.result.best_val_dice)


def test_tiny_model_segments_held_out_phantoms(trained_model, phantom_data, tmp_path):
    store_path, splits_path = phantom_data
    result = evaluate(
        EvaluateConfig(
            model=trained_model.folder,
            data=store_path,
            splits=splits_path,
            part="test",
            out=tmp_path / "metrics.json",
            plot=tmp_path / "best_worst.png",
        )
    )
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["dice_mean"] == pytest.approx(result.metrics["dice_mean"])
    print(f"tiny unet5l held-out Dice {metrics['dice_mean']:.4f}")
    assert metrics["dice_mean"] >= 0.90
    assert metrics["reference"] == "store" and metrics["n_reference_labeller"] == 0
    assert metrics["n_cases"] == len(Splits.load(splits_path).test)
    cases = json.loads((tmp_path / "metrics.cases.json").read_text())["cases"]
    assert len(cases) == metrics["n_cases"]
    assert (tmp_path / "best_worst.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    # the same network untrained scores far lower
    store = open_store(store_path, "mammograms")
    untrained = build_model("unet5l", input_shape=(*TINY_INPUT, 1), filters=TINY_FILTERS)
    scores = []
    for case_id in Splits.load(splits_path).test:
        image = store.array(case_id, "image")
        prob = predict_probabilities([untrained], image[None])[0]
        scores.append(dice(breast_mask(prob), store.array(case_id, "breast_mask")))
    print(f"untrained held-out Dice {np.mean(scores):.4f}")
    assert np.mean(scores) < metrics["dice_mean"] - 0.15


def test_labeller_fills_in_missing_breast_masks(tmp_path):
    path = write_phantom_store(tmp_path / "nomask.zarr", 3, with_breast_masks=False)
    store = open_store(path, "mammograms")
    images, masks, sources = load_training_arrays(store, store.case_ids, (64, 48))
    assert sources == ["labeller"] * 3
    assert images.shape == (3, 64, 48) and images.dtype == np.uint16
    assert masks.dtype == np.uint8 and 0.2 < masks.mean() < 0.8
