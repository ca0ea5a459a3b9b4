"""Unlabelled mammograms: ``massclass predict`` works without pathology, ``evaluate`` says why not.

The ``masses`` store is what ``massseg predict`` writes for images ingested without labels: no
``mass_masks``, every pathology unknown, one case where segmentation found nothing. Tiny random
classifiers (the ``tinycnn`` on the image, the demo's ``descriptors`` on image + mask) classify
its masses; the ``diagnosis`` store has every truth ``unknown``. ``massclass evaluate`` then
stops with a message naming the store and saying there is nothing to compare against.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from massclass_synth import PRODUCER, blob_mask, render
from typer.testing import CliRunner

from mammo_common.errors import NoGroundTruthError
from mammo_common.schema import CaseRecord, CaseTransform
from mammo_common.schema.splits import Fold, Splits
from mammo_common.store import StackedStoreWriter, open_store
from massclass.cli import app
from massclass.config import EvaluateConfig, PredictConfig
from massclass.evaluate import evaluate
from massclass.predict import predict

SIZE = 64
N_CASES = 5
runner = CliRunner()


def write_unlabelled_masses_store(path: Path) -> list[str]:
    """A ``masses`` store without ground truth; case ``scan_0`` has no predicted mass."""
    rng = np.random.default_rng(3)
    ids = [f"scan_{k}" for k in range(N_CASES)]
    with StackedStoreWriter(path, kind="masses", n_cases=N_CASES, image_size=(SIZE, SIZE),
                            producer=PRODUCER, meta_fields={"min_object_pixels": 10}) as writer:
        for k, case_id in enumerate(ids):
            mask = np.zeros((SIZE, SIZE), bool)
            if k:
                mask = blob_mask(rng, (SIZE, SIZE), (30.0, 28.0 + k), 7.0, malignant=k % 2 == 1)
            image = (np.clip(render(rng, mask), 0, 1) * 60000).astype(np.uint16)
            record = CaseRecord(case_id=case_id, patient_id=case_id, source_dataset="images",
                                source_path=f"clinic/{case_id}.dcm", original_shape=(SIZE, SIZE))
            transform = CaseTransform(original_shape=(SIZE, SIZE), crop_box=(0, 0, SIZE, SIZE),
                                      output_shape=(SIZE, SIZE))
            probs = np.where(mask, 0.9, 0.05).astype(np.float16)
            writer.write_case(k, record, transform, images=image,
                              breast_masks=np.ones((SIZE, SIZE), np.uint8),
                              mass_probs=probs, mass_pred=mask.astype(np.uint8))
    return ids


def _tiny_classifier(folder: Path, backbone: str) -> Path:
    import keras

    from mammo_common.keras.deployment.model_folder import save_model_folder
    from mammo_common.schema.model_card import ModelCard, model_id
    from massclass.models import build_model

    keras.utils.set_random_seed(2)
    if backbone == "tinycnn":
        model = build_model("tinycnn", (32, 32, 3), weights=None,
                            backbone_options={"widths": [4]}, dense_units=(4, 4))
        representation = "image"
    else:
        model = build_model("descriptors", (32, 32, 3), dense_units=(8, 4))
        representation = "image+mask"
    roi = {"source": "truth", "representation": representation, "margin": 0.5, "min_side": 8}
    card = ModelCard(stage="massclass", package="mammo-massclass", package_version="0.1.0",
                     architecture=backbone, model_id=model_id("massclass", backbone, 1),
                     input_shape=(32, 32, 3), task="classification", threshold=0.4,
                     normalization="divide_by_image_max", training={"roi": roi})
    save_model_folder(folder, model, card)
    return folder


@pytest.fixture(scope="module")
def masses(tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("unlabelled")
    ids = write_unlabelled_masses_store(root / "masses.zarr")
    return {"root": root, "store": root / "masses.zarr", "ids": ids}


@pytest.fixture(scope="module")
def diagnosis(masses: dict) -> Path:
    folder = _tiny_classifier(masses["root"] / "models" / "tinycnn" / "fold_1", "tinycnn")
    out = masses["root"] / "diagnosis.zarr"
    predict(PredictConfig(models=[folder], data=masses["store"], out=out))
    return out


@pytest.mark.parametrize("backbone", ["tinycnn", "descriptors"])
def test_predict_on_an_unlabelled_store(masses: dict, tmp_path: Path, backbone: str) -> None:
    folder = _tiny_classifier(tmp_path / backbone / "fold_1", backbone)
    out = tmp_path / "diagnosis.zarr"
    summary = predict(PredictConfig(models=[folder], data=masses["store"], out=out,
                                    threshold="card"))
    assert summary.n_cases == N_CASES and summary.n_masses == N_CASES - 1
    assert summary.no_mass_found == ["scan_0"] and summary.threshold == 0.4
    store = open_store(out, "diagnosis")
    assert store.case_ids == masses["ids"]
    assert all(d.truth == "unknown" for d in store.meta.diagnoses)
    by_id = {d.case_id: d for d in store.meta.diagnoses}
    assert by_id["scan_0"].label == "no_mass_found" and np.isnan(store.probabilities[0])
    for case_id in masses["ids"][1:]:
        diag = by_id[case_id]
        assert len(diag.masses) == 1 and 0.0 <= diag.probability <= 1.0
        assert diag.label == ("malignant" if diag.probability >= 0.4 else "benign")


def test_evaluate_says_there_is_nothing_to_compare_against(
    diagnosis: Path, masses: dict, tmp_path: Path
) -> None:
    out, roc = tmp_path / "metrics.json", tmp_path / "roc.json"
    with pytest.raises(NoGroundTruthError) as err:
        evaluate(EvaluateConfig(data=diagnosis, out=out, roc=roc, roc_plot=tmp_path / "roc.png"))
    message = err.value.message
    assert message.startswith(f"{diagnosis}: diagnoses.truth: has no known pathology")
    assert "nothing to compare against; evaluation needs ground truth pathology" in message
    assert "mammo results" in message and err.value.exit_code == 2
    assert not out.exists() and not roc.exists() and not (tmp_path / "roc.png").exists()
    # with a splits file the message says which part held no known truth
    ids = masses["ids"]
    splits = Splits(seed=0, n_folds=2, test_fraction=0.4, test=ids[:2],
                    folds=[Fold(index=1, train=ids[4:], valid=ids[2:4]),
                           Fold(index=2, train=ids[2:4], valid=ids[4:])],
                    patients={c: c for c in ids}, labels=dict.fromkeys(ids, "unknown"))
    splits.save(tmp_path / "splits.json")
    with pytest.raises(NoGroundTruthError, match="among the 2 test cases"):
        evaluate(EvaluateConfig(data=diagnosis, out=out, splits=tmp_path / "splits.json",
                                part="test"))
    assert not out.exists()


def test_evaluate_cli_message(diagnosis: Path, tmp_path: Path) -> None:
    out = tmp_path / "metrics.json"
    result = runner.invoke(app, ["evaluate", "--data", str(diagnosis), "--out", str(out)])
    text = " ".join((result.output + (result.stderr or "")).split())
    assert result.exit_code == 2, text
    assert "Traceback" not in text and "nothing to compare against" in text
    assert not out.exists()


def test_a_store_with_some_known_truth_is_still_scored(diagnosis: Path, tmp_path: Path) -> None:
    """Only a store without any known truth is refused; unknown cases are counted as before."""
    from mammo_common.store import write_diagnosis_store

    store = open_store(diagnosis, "diagnosis")
    diagnoses = [d.model_copy(update={"truth": "malignant" if i in (1, 2) else
                                      "benign" if i == 3 else "unknown"})
                 for i, d in enumerate(store.meta.diagnoses)]
    mixed = tmp_path / "mixed.zarr"
    write_diagnosis_store(mixed, cases=store.meta.cases, diagnoses=diagnoses,
                          producer=store.meta.producer, threshold=store.meta.threshold)
    result = evaluate(EvaluateConfig(data=mixed, out=tmp_path / "m.json"))
    assert result.n_evaluated == 3 and result.n_unknown_truth == 2
    assert json.loads((tmp_path / "m.json").read_text())["n_unknown_truth"] == 2
