"""A tiny breast U-Net trained on realistic synthetic mammograms finds the breast (vs truth).

``mammo synth`` (film and digital style: grainy non-zero film backgrounds, ID cards, markers,
rulers, bright film edges) -> ``mammo ingest`` (exact breast masks from the truth sidecar) ->
``breastseg train`` at 64x48 with 4 filters -> ``breastseg evaluate`` on held-out cases
against the truth. An untrained network (a fixture evaluates the same architecture with its
initial weights: a learning rate of 1e-12) scores far lower, so the threshold can only be met by learning.
The breast safeguard (``labeller_fallback``) is off here: it would hand the untrained network's
masks the threshold labeller's, and this test measures the network.
"""

from __future__ import annotations

import json

import pytest
from breastseg_phantoms import write_splits

from breastseg.config import EvaluateConfig, TrainConfig
from breastseg.evaluate import evaluate
from breastseg.train import train
from mammo_common.ingest import IngestConfig, run_ingest
from mammo_common.synth import synth

# Measured on a Zen 3 CPU (session 11; the phantoms' and the training's bits depend on the
# CPU type): trained 0.899 (seed 0, as here), 0.963 / 0.926 (seeds 1 / 2), 0.931 (seed 0, 30
# epochs); untrained 0.645. 0.90 sat at the bottom of that spread and failed there (it passed
# on Zen 5), so the bar is 0.85: still 0.10 above what the untrained network may reach.
MIN_TRAINED = 0.85
MAX_UNTRAINED = 0.75


@pytest.fixture(scope="module")
def realistic(tmp_path_factory):
    root = tmp_path_factory.mktemp("realistic")
    synth(root / "raw", cases=16, seed=3, size=(128, 96), style="mixed")
    run_ingest(IngestConfig(source=root / "raw", out=root / "m.zarr", progress=False))
    write_splits(root / "m.zarr", root / "splits.json", n_folds=3, test_fraction=0.25)
    return root


def _train(root, out, epochs, learning_rate=1e-3):
    return train(TrainConfig(data=root / "m.zarr", splits=root / "splits.json", fold=1, out=out,
                             input_size=(64, 48), filters=4, epochs=epochs, batch_size=4,
                             learning_rate=learning_rate, early_stopping_patience=100,
                             steps_multiplier=2, seed=0))


def _test_dice(root, model, name):
    evaluate(EvaluateConfig(data=root / "m.zarr", splits=root / "splits.json", model=model,
                            out=root / f"{name}.json", part="test", labeller_fallback=None))
    metrics = json.loads((root / f"{name}.json").read_text())
    assert metrics["reference"] == "store" and metrics["n_reference_labeller"] == 0
    assert metrics["n_labeller_fallback"] == 0
    return metrics["dice_mean"]


def test_tiny_breast_unet_learns_realistic_phantoms_against_truth(realistic):
    trained = _train(realistic, realistic / "trained", epochs=20)
    assert trained.mask_sources["store"] > 0 and trained.mask_sources["labeller"] == 0
    _train(realistic, realistic / "untrained", epochs=1, learning_rate=1e-12)  # initial weights
    d_trained = _test_dice(realistic, realistic / "trained", "trained")
    d_untrained = _test_dice(realistic, realistic / "untrained", "untrained")
    print(f"held-out breast Dice vs truth: trained {d_trained:.3f}, untrained {d_untrained:.3f}")
    assert d_trained >= MIN_TRAINED
    assert d_untrained <= MAX_UNTRAINED
