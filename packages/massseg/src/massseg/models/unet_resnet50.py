"""U-Net with a ResNet50 encoder.

Skips from the registry's ResNet50 (:mod:`mammo_common.keras.networks.encoders`): the input image
(stride 1, 3 channels), P1 ``conv1_relu`` (2), P2 ``conv2_block3_out`` (4), P3
``conv3_block4_out`` (8); bridge P4 ``conv4_block6_out`` (16). Same decoder as
:mod:`massseg.models.unet_vgg16` (blocks ``d1``..``d4``, widths 512, 256, 128, 64) and a
1x1 sigmoid output ``mask``. At 640x640x3: 20,676,545 parameters, 34,432 non-trainable.
"""

from __future__ import annotations

import os
from typing import Any

import keras

from massseg.models.unet_vgg16 import EncoderUNet

__all__ = ["DEFAULT_INPUT_SHAPE", "UNetResNet50", "build"]

DEFAULT_INPUT_SHAPE: tuple[int, int, int] = (640, 640, 3)

#: Skip taps fine to coarse, then the bridge.
SKIPS = ("input", "P1", "P2", "P3")
BRIDGE = "P4"


@keras.saving.register_keras_serializable(package="massseg")
class UNetResNet50(EncoderUNet):
    """U-Net with a ResNet50 encoder (see :class:`EncoderUNet` for the arguments)."""

    ENCODER = "resnet50"
    SKIPS = SKIPS
    BRIDGE = BRIDGE
    DEFAULT_NAME = "unet_resnet50"


def build(
    input_shape: tuple[int, int, int] = DEFAULT_INPUT_SHAPE,
    *,
    weights: str | os.PathLike | None = None,
    **kwargs: Any,
) -> keras.Model:
    """Build :class:`UNetResNet50` (``decoder_filters`` as keyword)."""
    return UNetResNet50(input_shape=input_shape, weights=weights, **kwargs)
