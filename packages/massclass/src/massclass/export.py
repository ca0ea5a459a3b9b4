"""``massclass export``: a SavedModel of a classifier that takes a raw ROI crop.

The serving function scales the crop by its dtype (uint16 / 65535, uint8 / 255, float as is),
resizes it to the model input with anti-aliased bilinear (as :mod:`massclass.rois` does with
Pillow), clips to [0, 1], repeats the gray channel three times and returns the malignancy
probability (the backbone's own preprocessing is inside the model); see
:mod:`mammo_common.keras.deployment.export`.

``massclass predict`` scales each ROI by the maximum of its *whole* breast image, not by the
dtype: to reproduce it exactly, pass the crop as float32 already divided by the image's
maximum (the ``serve_float32`` endpoint). Models trained on the ``image+mask``
representation need the mass mask as a channel and cannot be exported this way.
"""

from __future__ import annotations

from pathlib import Path

from mammo_common.errors import ConfigError

__all__ = ["export"]


def export(
    model: str | Path, out: str | Path, *, format: str = "savedmodel", overwrite: bool = False
) -> Path:
    """Export model folder ``model`` to ``out`` (SavedModel; ``format="onnx"`` adds ONNX).

    Raises:
        ModelFolderError: Missing, incomplete or foreign model folder.
        ConfigError: An ``image+mask`` model, not the TensorFlow backend, or ONNX unavailable.
    """
    from mammo_common.keras.deployment.export import export_model_folder
    from mammo_common.schema.model_card import read_model_card

    card = read_model_card(model)
    representation = (card.training.get("roi") or {}).get("representation", "image")
    if representation != "image":
        raise ConfigError(
            f"this model takes the {representation!r} representation (a mask channel), which "
            "the raw-image export cannot build",
            path=model, field="training.roi.representation",
            fix="export a model trained with roi.representation: image",
        )
    import massclass.models  # noqa: F401  (registers MassClassifier for loading)

    return export_model_folder(
        model, out, expected_stage="massclass", task="classification",
        format=format, overwrite=overwrite,  # type: ignore[arg-type]
    )
