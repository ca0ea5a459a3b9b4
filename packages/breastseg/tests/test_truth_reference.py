"""Breast masks of synthetic data are the phantoms' exact truth, end to end.

``mammo synth`` writes a truth sidecar, ``mammo ingest`` stores its breast masks, and
``breastseg`` then trains on and scores against them instead of the threshold labeller's
heuristic masks. The threshold segmenter is scored (no network to train), so these tests are
cheap; corrupting the stored masks must change the Dice, which proves the truth is what the
evaluation reads.
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import zarr

from breastseg.config import EvaluateConfig
from breastseg.evaluate import evaluate
from breastseg.labeller import LabellerConfig, label_breast
from mammo_common.ingest import IngestConfig, run_ingest
from mammo_common.metrics import dice
from mammo_common.store import open_store
from mammo_common.synth import DEFAULT_STYLE, render, sample_dataset, synth

CASES, SEED, SIZE = 3, 0, (128, 96)


@pytest.fixture(scope="module")
def truth_store(tmp_path_factory):
    """A ``mammograms`` store ingested from a tiny synthetic dataset (with its sidecar)."""
    root = tmp_path_factory.mktemp("truth_store")
    synth(root / "raw", cases=CASES, seed=SEED, size=SIZE)
    result = run_ingest(IngestConfig(source=root / "raw", out=root / "m.zarr", progress=False))
    assert result.n_breast_mask_cases == result.n_cases
    return root / "m.zarr"


def _truth_by_case() -> dict[str, np.ndarray]:
    return {
        f"{s.patient_id}_{s.side}_{s.view}": render(s, SIZE, SEED).breast_mask
        for s in sample_dataset(CASES, SEED, DEFAULT_STYLE)
    }


def _threshold_metrics(store, out):
    return evaluate(EvaluateConfig(data=store, out=out, method="threshold", part="all"))


def test_evaluate_scores_against_the_synthetic_truth(truth_store, tmp_path):
    result = _threshold_metrics(truth_store, tmp_path / "breastseg.json")
    truth = _truth_by_case()
    metrics = json.loads((tmp_path / "breastseg.json").read_text())
    assert metrics["reference"] == "store"
    assert metrics["n_reference_store"] == metrics["n_cases"] == len(truth)
    assert metrics["n_reference_labeller"] == 0
    store = open_store(truth_store, "mammograms")
    for score in result.cases:
        # the Dice is the labeller-made prediction against the phantom's exact breast
        pred = label_breast(store.array(score.case_id, "image"), LabellerConfig())
        assert score.reference == "store"
        assert score.reference_pixels == int(truth[score.case_id].sum())
        assert score.dice == pytest.approx(dice(pred, truth[score.case_id]), abs=1e-6)


def test_corrupted_store_truth_changes_the_dice(truth_store, tmp_path):
    before = _threshold_metrics(truth_store, tmp_path / "before.json")
    corrupted = tmp_path / "corrupted.zarr"
    shutil.copytree(truth_store, corrupted)
    group = zarr.open_group(str(corrupted), mode="r+")
    victim = before.cases[0].case_id
    mask = np.asarray(group[f"cases/{victim}/breast_mask"][...])
    group[f"cases/{victim}/breast_mask"][...] = 1 - mask  # everything but the breast
    after = _threshold_metrics(corrupted, tmp_path / "after.json")
    scores = {s.case_id: s.dice for s in after.cases}
    assert scores[victim] < before.cases[0].dice - 0.5
    assert all(scores[s.case_id] == s.dice for s in before.cases[1:])
    assert after.metrics["dice_mean"] < before.metrics["dice_mean"]


def test_training_reads_every_breast_mask_from_the_store(truth_store):
    from breastseg.train import load_training_arrays

    store = open_store(truth_store, "mammograms")
    _, masks, sources = load_training_arrays(store, store.case_ids, (64, 48))
    assert sources == ["store"] * len(store.case_ids)  # what train reports as mask_sources
    assert 0.2 < masks.mean() < 0.85
