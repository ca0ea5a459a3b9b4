"""Shared Keras 3 code of the mammo pipeline, in three sub-packages:

- :mod:`mammo_common.keras.networks`: the model zoo: shared networks (``unet5l``), the one
  encoder registry (:mod:`~mammo_common.keras.networks.encoders`) and its ImageNet weights
  resolver (:mod:`~mammo_common.keras.networks.weights`).
- :mod:`mammo_common.keras.training`: everything a stage trains with: datasets, augmentation,
  losses, metrics, the resumable harness (:mod:`~mammo_common.keras.training.harness`),
  training curves, BatchNorm calibration and fused BatchNorm, distribution strategies.
- :mod:`mammo_common.keras.deployment`: what a trained model is used through: self-describing
  model folders, inference-only rewrites (BatchNorm folding, bfloat16), probability maps at the
  images' own size, SavedModel export.

The main names are re-exported lazily, so ``import mammo_common.keras`` stays cheap (no Keras
import until a name is used)::

    from mammo_common.keras import fit_resumable, SegmentationDataset, get_loss
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "get_loss": "training.losses",
    "LOSSES": "training.losses",
    "DiceLoss": "training.losses",
    "DiceCoefficient": "training.metrics",
    "IoU": "training.metrics",
    "SoftDice": "training.metrics",
    "AugmentConfig": "training.augment",
    "PairedAugmenter": "training.augment",
    "SegmentationDataset": "training.data",
    "ClassificationDataset": "training.data",
    "load_arrays": "training.data",
    "normalize_image": "training.data",
    "fit_resumable": "training.harness",
    "TrainResult": "training.harness",
    "ReduceLROnPlateauConfig": "training.harness",
    "set_global_determinism": "training.harness",
    "mixed_precision_policy": "training.harness",
    "save_model_folder": "deployment.model_folder",
    "load_model_folder": "deployment.model_folder",
    "inference_model": "deployment.optimize",
    "FusedBatchNormalization": "training.fused_batchnorm",
    "use_fused_batchnorm": "training.fused_batchnorm",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])
