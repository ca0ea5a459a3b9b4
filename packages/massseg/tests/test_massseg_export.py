"""``massseg export``: the SavedModel takes the raw image and matches the stage's prediction."""

from __future__ import annotations

import numpy as np
import tensorflow as tf


def _model_folder(root):
    import keras

    from mammo_common.keras.deployment.model_folder import save_model_folder
    from mammo_common.schema.model_card import ModelCard, model_id
    from massseg.models import build_model

    keras.utils.set_random_seed(5)
    model = build_model("unet5l", (32, 32, 3), filters=2)
    card = ModelCard(stage="massseg", package="mammo-massseg", package_version="0.1.0",
                     architecture="unet5l", model_id=model_id("massseg", "unet5l", 1),
                     input_shape=(32, 32, 3))
    save_model_folder(root / "fold_1", model, card)
    return root / "fold_1"


def test_export_matches_predict_probabilities(tmp_path):
    from mammo_common.keras.deployment.inference import predict_probabilities
    from mammo_common.keras.deployment.model_folder import load_model_folder
    from massseg.export import export

    folder = _model_folder(tmp_path)
    out = export(folder, tmp_path / "export")
    loaded = tf.saved_model.load(str(out))
    model, _ = load_model_folder(folder, "massseg")
    images = np.random.default_rng(2).integers(0, 65535, (2, 64, 48), dtype=np.uint16)
    got = loaded.serve(tf.constant(images))["probabilities"].numpy()
    want = predict_probabilities([model], images, input_size=(32, 32), channels=3)
    np.testing.assert_allclose(got, want, atol=1e-4)
