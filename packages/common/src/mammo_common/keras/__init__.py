"""Shared Keras 3 code of the mammo pipeline: encoders, weight resolution and networks.

Also the training toolkit (losses, metrics, augmentation, datasets, the resumable training
harness, model folders). Its main names are re-exported lazily, so ``import mammo_common.keras``
stays cheap (no Keras import until a name is used)::

    from mammo_common.keras import fit_resumable, SegmentationDataset, get_loss
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "get_loss": "losses",
    "LOSSES": "losses",
    "DiceLoss": "losses",
    "DiceCoefficient": "metrics",
    "IoU": "metrics",
    "SoftDice": "metrics",
    "AugmentConfig": "augment",
    "PairedAugmenter": "augment",
    "SegmentationDataset": "data",
    "ClassificationDataset": "data",
    "load_arrays": "data",
    "normalize_image": "data",
    "fit_resumable": "training",
    "TrainResult": "training",
    "ReduceLROnPlateauConfig": "training",
    "set_global_determinism": "training",
    "mixed_precision_policy": "training",
    "save_model_folder": "model_folder",
    "load_model_folder": "model_folder",
    "inference_model": "optimize",
    "FusedBatchNormalization": "fused_batchnorm",
    "use_fused_batchnorm": "fused_batchnorm",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])
