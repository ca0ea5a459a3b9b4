"""``massclass export``: the SavedModel takes a raw ROI crop and matches ``massclass predict``."""

from __future__ import annotations

import numpy as np
import tensorflow as tf
from typer.testing import CliRunner

from massclass.cli import app

ROI = {"source": "pred", "representation": "image", "margin": 0.25, "min_side": 8}


def _model_folder(root, representation="image"):
    import keras

    from mammo_common.keras.deployment.model_folder import save_model_folder
    from mammo_common.schema.model_card import ModelCard, model_id
    from massclass.models import build_model

    keras.utils.set_random_seed(4)
    model = build_model("tinycnn", (32, 32, 3), weights=None,
                        backbone_options={"widths": [4]}, dense_units=(4, 4))
    card = ModelCard(stage="massclass", package="mammo-massclass", package_version="0.1.0",
                     architecture="tinycnn", model_id=model_id("massclass", "tinycnn", 1),
                     input_shape=(32, 32, 3), task="classification",
                     normalization="divide_by_image_max",
                     training={"roi": {**ROI, "representation": representation}})
    folder = root / representation.replace("+", "_") / "fold_1"
    save_model_folder(folder, model, card)
    return folder


def test_export_matches_the_stage_roi_pipeline(tmp_path):
    from mammo_common.keras.deployment.model_folder import load_model_folder
    from mammo_common.postprocess import components
    from massclass.rois import _padded_crop, _scaled, crop_box, crop_roi
    from massclass.train import predict_rois

    folder = _model_folder(tmp_path)
    out = tmp_path / "export"
    result = CliRunner().invoke(app, ["export", "--model", str(folder), "--out", str(out)])
    assert result.exit_code == 0, result.output
    loaded = tf.saved_model.load(str(out))
    model, _ = load_model_folder(folder, "massclass")

    rng = np.random.default_rng(1)
    image = _scaled(rng.integers(0, 40000, (120, 100)).astype(np.uint16))
    mask = np.zeros(image.shape, bool)
    mask[30:70, 20:45] = True  # crop of 50 px: shrinks to 32
    mask[100:104, 90:93] = True  # tiny mass at the border: min_side, zero padding, enlarges
    for comp in components(mask):
        want = predict_rois(model, crop_roi(image, comp, size=32, margin=0.25, min_side=8)[None])
        crop = _padded_crop(image, crop_box(comp.bbox, 0.25, 8))
        got = loaded.serve_float32(tf.constant(crop[None]))["probability"].numpy()
        np.testing.assert_allclose(got, want, atol=1e-4)


def test_image_plus_mask_models_are_refused(tmp_path):
    folder = _model_folder(tmp_path, "image+mask")
    result = CliRunner().invoke(app, ["export", "--model", str(folder),
                                      "--out", str(tmp_path / "e")])
    assert result.exit_code == 2 and "representation" in result.output
