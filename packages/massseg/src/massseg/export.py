"""``massseg export``: a SavedModel of a mass-segmentation model that takes the raw image.

The serving function scales the image by its dtype, resizes it to the network input, repeats
the gray channel for 3-channel networks, runs the network and returns the mass probability
map at the input's own size, exactly what ``massseg predict`` computes for one model without
flips (see :mod:`mammo_common.keras.deployment.export`). Threshold it at the card's threshold (in
``mammo_export.json``) and drop objects under 30 pixels to get ``mass_pred``.
"""

from __future__ import annotations

import importlib
from pathlib import Path

__all__ = ["export"]


def export(
    model: str | Path, out: str | Path, *, format: str = "savedmodel", overwrite: bool = False
) -> Path:
    """Export model folder ``model`` to ``out`` (SavedModel; ``format="onnx"`` adds ONNX).

    Raises:
        ModelFolderError: Missing, incomplete or foreign model folder.
        ConfigError: Not the TensorFlow backend, or ONNX requested but unavailable.
    """
    from mammo_common.keras.deployment.export import export_model_folder
    from mammo_common.schema.model_card import read_model_card
    from massseg.models import MODEL_NAMES

    card = read_model_card(model)
    if card.architecture in MODEL_NAMES:  # registers the network's classes for loading
        importlib.import_module(f"massseg.models.{card.architecture}")
    return export_model_folder(
        model, out, expected_stage="massseg", task="segmentation",
        known_architectures=MODEL_NAMES, format=format, overwrite=overwrite,  # type: ignore[arg-type]
    )
