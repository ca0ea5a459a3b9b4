"""Unlabelled mammograms: ``massseg predict`` works without mass masks, ``evaluate`` says why not.

The ``breast`` store is what ``breastseg predict`` writes from a ``mammo ingest --format images``
store: images and breast masks, no ``mass_masks``, every pathology unknown. A tiny random U-Net
segments it; the ``masses`` store carries no ``mass_masks`` and keeps each case's record and
transform. ``massseg evaluate`` then stops with a message naming the store and saying there is
nothing to compare against, with or without a splits file, and writes nothing.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from fixtures_stores import PRODUCER, make_splits_for, phantom
from typer.testing import CliRunner

from mammo_common.errors import NoGroundTruthError
from mammo_common.schema import CaseRecord, CaseTransform, DicomRef
from mammo_common.store import StackedStoreWriter, open_store
from massseg.cli import app
from massseg.config import EvaluateConfig, PredictConfig
from massseg.evaluate import evaluate
from massseg.predict import predict

SIZE = 64
runner = CliRunner()


def write_unlabelled_breast_store(path: Path, n_cases: int = 4) -> list[str]:
    """A ``breast`` store without mass masks or pathology (crops of 128x96 native images)."""
    rng = np.random.default_rng(7)
    ids = [f"scan_{k}" for k in range(n_cases)]
    with StackedStoreWriter(path, kind="breast", n_cases=n_cases, image_size=(SIZE, SIZE),
                            producer=PRODUCER, meta_fields={"method": "threshold"}) as writer:
        for k, case_id in enumerate(ids):
            image, breast, _ = phantom(rng, SIZE)
            record = CaseRecord(case_id=case_id, patient_id=case_id, source_dataset="images",
                                source_path=f"clinic/{case_id}.dcm", original_shape=(128, 96),
                                dicom=DicomRef(sop_instance_uid=f"1.2.3.{k}"))
            transform = CaseTransform(original_shape=(128, 96), crop_box=(10, 0, 122, 90),
                                      output_shape=(SIZE, SIZE))
            writer.write_case(k, record, transform, images=image, breast_masks=breast)
    return ids


def _tiny_model(folder: Path) -> Path:
    import keras

    from mammo_common.keras.deployment.model_folder import save_model_folder
    from mammo_common.schema.model_card import ModelCard, model_id
    from massseg.models import build_model

    keras.utils.set_random_seed(1)
    model = build_model("unet5l", (32, 32, 1), filters=2)
    card = ModelCard(stage="massseg", package="mammo-massseg", package_version="0.1.0",
                     architecture="unet5l", model_id=model_id("massseg", "unet5l", 1),
                     input_shape=(32, 32, 1))
    save_model_folder(folder, model, card)
    return folder


@pytest.fixture(scope="module")
def stores(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("unlabelled")
    ids = write_unlabelled_breast_store(root / "breast.zarr")
    make_splits_for(ids, n_test=1, n_folds=3).save(root / "splits.json")
    folder = _tiny_model(root / "models" / "massseg" / "unet5l" / "fold_1")
    # threshold 0.3 with no small-object removal, so the random network marks something
    result = predict(PredictConfig(models=[folder], data=root / "breast.zarr",
                                   out=root / "masses.zarr", threshold=0.3,
                                   min_object_pixels=0))
    return {"root": root, "breast": root / "breast.zarr", "masses": root / "masses.zarr",
            "splits": root / "splits.json", "result": result}


def test_predict_writes_a_masses_store_without_mass_masks(stores: dict) -> None:
    masses = open_store(stores["masses"], "masses", deep=True)
    breast = open_store(stores["breast"], "breast")
    assert masses.case_ids == breast.case_ids
    assert not masses.meta.has_mass_masks and not masses.has("mass_masks")
    assert masses.array("mass_probs").shape == (4, SIZE, SIZE)
    assert masses.transforms == breast.transforms
    assert [c.dicom.sop_instance_uid for c in masses.cases] == [f"1.2.3.{k}" for k in range(4)]
    assert all(c.pathology == "unknown" for c in masses.cases)
    assert stores["result"].n_cases == 4
    assert masses.meta.producer.model_ids == ["massseg/unet5l/fold_1"]


@pytest.mark.parametrize("with_splits", [False, True])
def test_evaluate_says_there_is_nothing_to_compare_against(
    stores: dict, tmp_path: Path, with_splits: bool
) -> None:
    out = tmp_path / "metrics.json"
    splits = {"splits": stores["splits"], "part": "test"} if with_splits else {}
    with pytest.raises(NoGroundTruthError) as err:
        evaluate(EvaluateConfig(data=stores["masses"], out=out, per_case=tmp_path / "c.json",
                                **splits))
    message = err.value.message
    assert message.startswith(f"{stores['masses']}: mass_masks: has no ground-truth mass masks")
    assert "nothing to compare against; evaluation needs ground truth mass masks" in message
    assert "mammo results" in message and err.value.exit_code == 2
    assert not out.exists() and not (tmp_path / "c.json").exists()


def test_evaluate_cli_message(stores: dict, tmp_path: Path) -> None:
    out = tmp_path / "metrics.json"
    result = runner.invoke(app, ["evaluate", "--data", str(stores["masses"]), "--out", str(out)])
    text = " ".join((result.output + (result.stderr or "")).split())
    assert result.exit_code == 2, text
    assert "Traceback" not in text and "nothing to compare against" in text
    assert not out.exists()
