"""U-Net with a ResNet50 encoder.

Skips: the input image (stride 1, 3 channels), ``conv1_relu`` (2), ``conv2_block3_out``
(4), ``conv3_block4_out`` (8); bridge ``conv4_block6_out`` (16). Same decoder as
:mod:`massseg.models.unet_vgg16` (blocks ``d1``..``d4``, widths 512, 256, 128, 64) and a
1x1 sigmoid output ``mask``. At 640x640x3: 20,676,545 parameters, 34,432 non-trainable.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import keras

from mammo_common.keras.encoders import check_input_shape
from massseg.models.unet_vgg16 import DEFAULT_DECODER_FILTERS, build_encoder_unet

__all__ = ["DEFAULT_INPUT_SHAPE", "UNetResNet50", "build"]

DEFAULT_INPUT_SHAPE: tuple[int, int, int] = (640, 640, 3)

#: Skip taps fine to coarse, then the bridge.
SKIPS = ("input", "conv1_relu", "conv2_block3_out", "conv3_block4_out")
BRIDGE = "conv4_block6_out"


@keras.saving.register_keras_serializable(package="massseg")
class UNetResNet50(keras.Model):
    """U-Net with a ResNet50 encoder.

    Args:
        input_shape: ``(H, W, 3)`` with H and W multiples of 32.
        decoder_filters: Four decoder widths, coarse to fine.
        weights: Encoder weights: None, ``"imagenet"``, ``"auto"`` or a file path.
        name: Model name.
        **kwargs: Passed to ``keras.Model``.
    """

    def __init__(
        self,
        input_shape: tuple[int, int, int] = DEFAULT_INPUT_SHAPE,
        decoder_filters: Sequence[int] = DEFAULT_DECODER_FILTERS,
        weights: str | os.PathLike | None = None,
        name: str = "unet_resnet50",
        **kwargs: Any,
    ) -> None:
        shape = check_input_shape(input_shape, multiple=32, channels=3)
        inputs = keras.Input(shape=shape, name="image")
        outputs = build_encoder_unet("resnet50", inputs, SKIPS, BRIDGE, decoder_filters, weights)
        super().__init__(inputs=inputs, outputs=outputs, name=name, **kwargs)
        self.input_shape_ = shape
        self.decoder_filters = tuple(int(f) for f in decoder_filters)
        self.weights_source = None if weights is None else os.fspath(weights)

    def get_config(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "trainable": self.trainable,
            "input_shape": list(self.input_shape_),
            "decoder_filters": list(self.decoder_filters),
            "weights": self.weights_source,
        }

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> UNetResNet50:
        # The saved weights are loaded after construction: never fetch ImageNet weights here.
        return cls(**{**config, "weights": None})


def build(
    input_shape: tuple[int, int, int] = DEFAULT_INPUT_SHAPE,
    *,
    weights: str | os.PathLike | None = None,
    **kwargs: Any,
) -> keras.Model:
    """Build :class:`UNetResNet50` (``decoder_filters`` as keyword)."""
    return UNetResNet50(input_shape=input_shape, weights=weights, **kwargs)
