"""Unlabelled mammograms (``mammo ingest --format images``): predict works, evaluate says why not.

The store holds images only: no breast mask, no mass mask, no pathology, as a folder of a
clinic's own mammograms gives. ``breastseg predict`` (threshold and a tiny U-Net) writes a valid
``breast`` store without ``mass_masks`` that keeps each case's record (DICOM identifiers, pixel
spacing); ``breastseg evaluate`` refuses the store with a message that names it and says there
is nothing to compare against, unless ``--reference labeller`` asks for the stand-in.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from breastseg_phantoms import make_phantom, write_phantom_store
from typer.testing import CliRunner

from breastseg.cli import app
from breastseg.config import EvaluateConfig, PredictConfig
from breastseg.evaluate import evaluate
from breastseg.predict import predict
from mammo_common.errors import NoGroundTruthError
from mammo_common.schema import CaseRecord, DicomRef, Producer
from mammo_common.store import MammogramsWriter, open_store
from mammo_common.transforms import invert_transform

SIZE = (64, 64)
runner = CliRunner()


def write_unlabelled_store(path, n_cases: int = 4):
    """A ``mammograms`` store as ``--format images`` writes it: images and identifiers only."""
    producer = Producer(package="tests", version="0", command="write_unlabelled_store")
    with MammogramsWriter(path, source_format="images", producer=producer) as writer:
        for k in range(n_cases):
            ph = make_phantom(100 + k)
            record = CaseRecord(
                case_id=f"scan_{k}",
                patient_id=f"scan_{k}",
                source_dataset="images",
                source_path=f"clinic/scan_{k}.dcm",
                original_shape=ph.image.shape,
                pixel_spacing=(0.07, 0.07),
                dicom=DicomRef(sop_instance_uid=f"1.2.826.0.1.{k}", modality="MG"),
            )
            writer.add_case(record, ph.image)
    return path


@pytest.fixture(scope="module")
def unlabelled(tmp_path_factory):
    return write_unlabelled_store(tmp_path_factory.mktemp("unlabelled") / "mammograms.zarr")


def _tiny_unet(folder):
    import keras

    from breastseg.models import build_model
    from mammo_common.keras.deployment.model_folder import save_model_folder
    from mammo_common.schema.model_card import ModelCard, model_id

    keras.utils.set_random_seed(0)
    model = build_model("unet5l", input_shape=(32, 32, 1), filters=2)
    card = ModelCard(stage="breastseg", package="mammo-breastseg", package_version="0.1.0",
                     architecture="unet5l", model_id=model_id("breastseg", "unet5l", 1),
                     input_shape=(32, 32, 1))
    save_model_folder(folder, model, card)
    return folder


def _check_breast_store(path, source_path):
    breast = open_store(path, "breast", deep=True)
    source = open_store(source_path, "mammograms")
    assert breast.case_ids == source.case_ids
    assert not breast.meta.has_mass_masks and not breast.has("mass_masks")
    for i, (record, tf) in enumerate(zip(breast.cases, breast.transforms, strict=True)):
        assert record.pathology == "unknown" and record.masses == []
        assert record.dicom is not None and record.dicom.sop_instance_uid == f"1.2.826.0.1.{i}"
        assert record.pixel_spacing == (0.07, 0.07)
        assert tuple(tf.original_shape) == source.load(record.case_id).image.shape
        assert invert_transform(breast.array("breast_masks")[i], tf).shape == tf.original_shape
    return breast


def test_threshold_predict_on_an_unlabelled_store(unlabelled, tmp_path):
    out = tmp_path / "breast.zarr"
    result = predict(PredictConfig(method="threshold", data=unlabelled, out=out, output_size=SIZE))
    assert result.n_cases == 4 and not result.with_mass_masks and result.empty_cases == []
    breast = _check_breast_store(out, unlabelled)
    assert all(np.asarray(breast.array("breast_masks")[i]).any() for i in range(len(breast)))


def test_unet_predict_on_an_unlabelled_store(unlabelled, tmp_path):
    folder = _tiny_unet(tmp_path / "models" / "breastseg" / "unet5l" / "fold_1")
    out = tmp_path / "breast_unet.zarr"
    result = predict(PredictConfig(model=folder, data=unlabelled, out=out, output_size=SIZE))
    assert result.method == "unet" and not result.with_mass_masks
    breast = _check_breast_store(out, unlabelled)
    assert breast.meta.producer.model_ids == ["breastseg/unet5l/fold_1"]


def test_evaluate_refuses_an_unlabelled_store(unlabelled, tmp_path):
    out = tmp_path / "metrics.json"
    hints = {"auto": "pass --reference labeller", "store": "use --reference auto or labeller"}
    for reference, hint in hints.items():
        with pytest.raises(NoGroundTruthError) as err:
            evaluate(EvaluateConfig(method="threshold", data=unlabelled, out=out, part="all",
                                    reference=reference))
        message = err.value.message
        assert message.startswith(str(unlabelled))
        assert "nothing to compare against; evaluation needs ground truth breast masks" in message
        assert hint in message and err.value.exit_code == 2
    assert not out.exists() and not out.with_name("metrics.cases.json").exists()


def test_labeller_reference_is_an_explicit_stand_in(unlabelled, tmp_path):
    out = tmp_path / "metrics.json"
    result = evaluate(EvaluateConfig(method="threshold", data=unlabelled, out=out, part="all",
                                     reference="labeller"))
    assert result.metrics["reference"] == "labeller" and result.metrics["n_cases"] == 4
    assert json.loads(out.read_text())["n_reference_store"] == 0


def test_annotated_store_without_breast_masks_still_uses_the_labeller(tmp_path):
    """CBIS-DDSM has mass masks and pathology but no breast outlines: auto falls back as before."""
    store = write_phantom_store(tmp_path / "m.zarr", 2, with_breast_masks=False)
    result = evaluate(EvaluateConfig(method="threshold", data=store, out=tmp_path / "m.json",
                                     part="all"))
    assert result.metrics["reference"] == "labeller" and result.metrics["n_cases"] == 2


def test_evaluate_cli_message(unlabelled, tmp_path):
    out = tmp_path / "metrics.json"
    result = runner.invoke(app, ["evaluate", "--method", "threshold", "--data", str(unlabelled),
                                 "--out", str(out), "--part", "all"])
    text = " ".join((result.output + (result.stderr or "")).split())
    assert result.exit_code == 2, text
    assert "Traceback" not in text
    assert f"error: {unlabelled}: cases: has no ground truth of any kind" in text
    assert "nothing to compare against" in text and "--reference labeller" in text
    assert "mammo results" in text
    assert not out.exists()
