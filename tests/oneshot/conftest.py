"""Tiny model folders of the three stages for ``mammo run`` tests (random, CPU-size)."""

from __future__ import annotations

import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("MAMMO_NO_PROGRESS", "1")

from pathlib import Path

import numpy as np
import pytest


def _force_output(model, bias: float) -> None:
    """Make the last layer's sigmoid output constant (``sigmoid(bias)``) everywhere."""
    last = [layer for layer in model.layers if layer.weights][-1]
    kernel, b = last.get_weights()[:2]
    last.set_weights([np.zeros_like(kernel), np.full_like(b, bias)])


def _card(stage: str, arch: str, shape, metrics, **extra):
    from mammo_common.schema.model_card import ModelCard, model_id

    return ModelCard(
        stage=stage, package=f"mammo-{stage}", package_version="0.1.0", architecture=arch,
        model_id=model_id(stage, arch, 1), input_shape=shape, metrics=metrics, **extra,
    )


def write_models(root: Path, stages=("breastseg", "massseg", "massclass")) -> Path:
    """``root/<stage>/<arch>/fold_1`` for the given stages."""
    import keras

    from mammo_common.keras.deployment.model_folder import save_model_folder

    keras.utils.set_random_seed(0)
    if "breastseg" in stages:
        from breastseg.models import build_model

        model = build_model("unet5l", input_shape=(32, 32, 1), filters=2)
        _force_output(model, 4.0)  # every pixel is breast
        save_model_folder(root / "breastseg/unet5l/fold_1", model,
                          _card("breastseg", "unet5l", (32, 32, 1), {"val_dice": 0.9}))
    if "massseg" in stages:
        from massseg.models import build_model

        model = build_model("unet5l", (32, 32, 1), filters=2)
        _force_output(model, 4.0)  # the whole breast crop is one mass
        save_model_folder(root / "massseg/unet5l/fold_1", model,
                          _card("massseg", "unet5l", (32, 32, 1), {"best_val_dice": 0.5}))
    if "massclass" in stages:
        from massclass.models import build_model

        model = build_model("tinycnn", (32, 32, 3), weights=None,
                            backbone_options={"widths": [4]}, dense_units=(4, 4))
        roi = {"source": "pred", "representation": "image", "margin": 0.25, "min_side": 8}
        save_model_folder(
            root / "massclass/tinycnn/fold_1", model,
            _card("massclass", "tinycnn", (32, 32, 3), {"valid_roc_auc": 0.7},
                  task="classification", normalization="divide_by_image_max",
                  training={"roi": roi}),
        )
    return root


@pytest.fixture(scope="session", autouse=True)
def _no_breast_safeguard():
    """The stub breast model marks every pixel as breast. The breast safeguard
    (``labeller_fallback``) rightly replaces such a mask by the threshold labeller's breast;
    these tests check the plumbing with whole-image masks, so it is off in ``mammo run`` here
    (which reads the setting's default), except where a test turns it on
    (``test_mammo_run_replaces_a_whole_frame_breast_mask``); the batch commands get
    ``labeller_fallback: null`` from a params file."""
    from breastseg.config import PredictConfig

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(PredictConfig.model_fields["labeller_fallback"], "default", None)
        yield


@pytest.fixture(scope="session")
def models_dir(tmp_path_factory) -> Path:
    return write_models(tmp_path_factory.mktemp("models"))


def write_dicom(path: Path, pixels: np.ndarray) -> Path:
    """A minimal MONOCHROME2 16-bit mammogram DICOM."""
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.1.2"
    meta.MediaStorageSOPInstanceUID = generate_uid(entropy_srcs=["mammo-run-test"])
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Modality = "MG"
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 0
    ds.PixelData = np.ascontiguousarray(pixels, dtype=np.uint16).tobytes()
    ds.save_as(path, enforce_file_format=True)
    return path


@pytest.fixture(scope="session")
def mammogram(tmp_path_factory) -> Path:
    """A 120x90 phantom: a bright breast on the left with a denser blob."""
    rows, cols = np.mgrid[0:120, 0:90]
    image = 2000 + 30000 * (((rows - 60) / 55.0) ** 2 + (cols / 70.0) ** 2 < 1)
    image = image + 20000 * (((rows - 50) ** 2 + (cols - 30) ** 2) < 64)
    return write_dicom(tmp_path_factory.mktemp("scan") / "scan.dcm", image.astype(np.uint16))


def pytest_configure(config: pytest.Config) -> None:
    # Keras 3.15 + NumPy 2 warn on every tensor conversion; the noise hides real warnings.
    config.addinivalue_line(
        "filterwarnings",
        "ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning",
    )
