"""``breastseg export``: a SavedModel of a breast model that takes the raw mammogram.

The serving function scales the image by its dtype, resizes it to the network input (as
training and ``breastseg predict`` do), runs the U-Net and returns the breast probability map
at the input's own size (see :mod:`mammo_common.keras.deployment.export`). Threshold it at the
card's threshold (in ``mammo_export.json``) to get the breast mask.
"""

from __future__ import annotations

from pathlib import Path

from breastseg.models import model_names, register_networks

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

    register_networks()
    return export_model_folder(
        model, out, expected_stage="breastseg", task="segmentation",
        known_architectures=model_names(), format=format, overwrite=overwrite,  # type: ignore[arg-type]
    )
