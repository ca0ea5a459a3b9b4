"""``breastseg export``: the SavedModel takes the raw mammogram and matches ``predict``."""

from __future__ import annotations

import numpy as np
import tensorflow as tf
from typer.testing import CliRunner

from breastseg.cli import app


def _model_folder(root):
    import keras

    from breastseg.models import build_model
    from mammo_common.keras.deployment.model_folder import save_model_folder
    from mammo_common.schema.model_card import ModelCard, model_id

    keras.utils.set_random_seed(3)
    model = build_model("unet5l", input_shape=(32, 32, 1), filters=2)
    card = ModelCard(stage="breastseg", package="mammo-breastseg", package_version="0.1.0",
                     architecture="unet5l", model_id=model_id("breastseg", "unet5l", 1),
                     input_shape=(32, 32, 1))
    save_model_folder(root / "fold_1", model, card)
    return root / "fold_1"


def test_export_matches_the_stage_segmenter(tmp_path):
    from breastseg.segment import UNetSegmenter

    folder = _model_folder(tmp_path)
    out = tmp_path / "export"
    result = CliRunner().invoke(app, ["export", "--model", str(folder), "--out", str(out)])
    assert result.exit_code == 0, result.output
    loaded = tf.saved_model.load(str(out))
    segmenter = UNetSegmenter(folder)
    rng = np.random.default_rng(0)
    for shape in [(90, 70), (20, 28)]:
        image = rng.integers(0, 65535, shape, dtype=np.uint16)
        got = loaded.serve(tf.constant(image[None]))["probabilities"].numpy()[0]
        np.testing.assert_allclose(got, segmenter.probabilities(image), atol=1e-4)
    again = CliRunner().invoke(app, ["export", "--model", str(folder), "--out", str(out)])
    assert again.exit_code == 2 and "exists" in again.output


def test_export_refuses_a_missing_folder(tmp_path):
    result = CliRunner().invoke(app, ["export", "--model", str(tmp_path / "no"),
                                      "--out", str(tmp_path / "e")])
    assert result.exit_code == 2
