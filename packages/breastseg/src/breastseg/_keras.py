"""Keras-side helpers of the stage (imported lazily: the CLI's --help needs no TensorFlow)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from breastseg.models import model_names, register_networks

STAGE = "breastseg"


def load_breast_model(folder: str | Path) -> tuple[Any, Any]:
    """Load a breastseg model folder safely: ``(keras model, ModelCard)``.

    Raises:
        ModelFolderError: Missing or incomplete folder, a model of another stage or an
            unknown architecture (the message names the folder and the fix).
    """
    from mammo_common.keras.deployment.model_folder import load_model_folder

    register_networks()
    return load_model_folder(folder, expected_stage=STAGE, known_architectures=model_names())
