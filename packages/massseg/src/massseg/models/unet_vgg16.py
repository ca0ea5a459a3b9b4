"""U-Net with a VGG16 encoder.

Encoder taps from the registry's VGG16 (:mod:`mammo_common.keras.networks.encoders`): skips
``block1_conv2`` (stride 1), P1 ``block2_conv2`` (2), P2 ``block3_conv3`` (4), P3
``block4_conv3`` (8); bridge P4 ``block5_conv3`` (16). Decoder block(n): 2x2 stride-2
transposed convolution -> concatenate the skip -> [3x3 conv-BN-ReLU] x 2, with
n = 512, 256, 128, 64; no dropout; 1x1 sigmoid output. At 640x640x3: 25,862,337
parameters, 3,840 non-trainable.

Layer names: decoder blocks ``d1`` (coarsest) to ``d4`` with ``<d>_up``, ``<d>_concat``,
``<d>_conv1``, ``<d>_bn1``, ``<d>_relu1``, ``<d>_conv2``, ``<d>_bn2``, ``<d>_relu2``; output
``mask``. The decoder block is shared with :mod:`massseg.models.unet_resnet50`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import keras

from mammo_common.keras.networks.encoders import build_encoder, check_input_shape, get_encoder_spec

__all__ = [
    "DEFAULT_DECODER_FILTERS",
    "DEFAULT_INPUT_SHAPE",
    "EncoderUNet",
    "UNetVGG16",
    "build",
    "build_encoder_unet",
    "decoder_block",
]

DEFAULT_INPUT_SHAPE: tuple[int, int, int] = (640, 640, 3)
DEFAULT_DECODER_FILTERS: tuple[int, int, int, int] = (512, 256, 128, 64)

#: Skip taps fine to coarse, then the bridge (P1..P4: block2_conv2, block3_conv3,
#: block4_conv3, block5_conv3).
SKIPS = ("block1_conv2", "P1", "P2", "P3")
BRIDGE = "P4"


def decoder_block(x: Any, skip: Any, filters: int, name: str) -> Any:
    """2x2 stride-2 transposed conv -> concat skip -> [3x3 conv-BN-ReLU] x 2."""
    x = keras.layers.Conv2DTranspose(filters, 2, strides=2, padding="same", name=f"{name}_up")(x)
    x = keras.layers.Concatenate(name=f"{name}_concat")([x, skip])
    for k in (1, 2):
        x = keras.layers.Conv2D(filters, 3, padding="same", name=f"{name}_conv{k}")(x)
        x = keras.layers.BatchNormalization(name=f"{name}_bn{k}")(x)
        x = keras.layers.ReLU(name=f"{name}_relu{k}")(x)
    return x


def build_encoder_unet(
    encoder: str,
    inputs: Any,
    skips: Sequence[str],
    bridge: str,
    decoder_filters: Sequence[int],
    weights: str | os.PathLike | None,
) -> Any:
    """Build encoder + U-Net decoder on ``inputs`` and return the ``mask`` tensor.

    Args:
        encoder: Registered encoder name.
        inputs: Model input tensor.
        skips: Skip taps fine to coarse (``"P1"``..``"P5"``, layer names, or ``"input"``
            for the image itself).
        bridge: Tap that starts the decoder.
        decoder_filters: Widths of the decoder blocks, coarse to fine (one per skip).
        weights: Encoder weights request.
    """
    if len(decoder_filters) != len(skips):
        raise ValueError(
            f"decoder_filters needs {len(skips)} widths (coarse to fine); got "
            f"{list(decoder_filters)}."
        )
    _, taps = build_encoder(encoder, inputs, taps=[*skips, bridge], weights=weights)
    x = taps[bridge]
    for k, (skip, filters) in enumerate(zip(reversed(skips), decoder_filters, strict=True)):
        x = decoder_block(x, taps[skip], int(filters), f"d{k + 1}")
    return keras.layers.Conv2D(1, 1, activation="sigmoid", dtype="float32", name="mask")(x)


class EncoderUNet(keras.Model):
    """A pretrained-encoder U-Net: ``ENCODER`` taps ``SKIPS`` and ``BRIDGE``, then
    :func:`decoder_block` per skip (coarse to fine) and a 1x1 sigmoid ``mask``.

    Subclasses set ``ENCODER`` (a registry name, :mod:`mammo_common.keras.networks.encoders`),
    ``SKIPS``, ``BRIDGE`` and ``DEFAULT_NAME`` and register themselves for serialisation.

    Args:
        input_shape: ``(H, W, 3)`` with H and W multiples of 32.
        decoder_filters: Four decoder widths, coarse to fine.
        weights: Encoder weights: None, ``"imagenet"``, ``"auto"`` or a file path.
        name: Model name (default: the architecture's registry name).
        **kwargs: Passed to ``keras.Model``.
    """

    ENCODER: str = ""
    SKIPS: tuple[str, ...] = ()
    BRIDGE: str = ""
    DEFAULT_NAME: str = ""

    def __init__(
        self,
        input_shape: tuple[int, int, int] = DEFAULT_INPUT_SHAPE,
        decoder_filters: Sequence[int] = DEFAULT_DECODER_FILTERS,
        weights: str | os.PathLike | None = None,
        name: str | None = None,
        **kwargs: Any,
    ) -> None:
        spec = get_encoder_spec(self.ENCODER)
        shape = check_input_shape(
            input_shape, multiple=spec.input_multiple, channels=spec.channels
        )
        inputs = keras.Input(shape=shape, name="image")
        outputs = build_encoder_unet(
            self.ENCODER, inputs, self.SKIPS, self.BRIDGE, decoder_filters, weights
        )
        super().__init__(
            inputs=inputs, outputs=outputs, name=name or self.DEFAULT_NAME, **kwargs
        )
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
    def from_config(cls, config: dict[str, Any]) -> EncoderUNet:
        # The saved weights are loaded after construction: never fetch ImageNet weights here.
        return cls(**{**config, "weights": None})


@keras.saving.register_keras_serializable(package="massseg")
class UNetVGG16(EncoderUNet):
    """U-Net with a VGG16 encoder (see :class:`EncoderUNet` for the arguments)."""

    ENCODER = "vgg16"
    SKIPS = SKIPS
    BRIDGE = BRIDGE
    DEFAULT_NAME = "unet_vgg16"


def build(
    input_shape: tuple[int, int, int] = DEFAULT_INPUT_SHAPE,
    *,
    weights: str | os.PathLike | None = None,
    **kwargs: Any,
) -> keras.Model:
    """Build :class:`UNetVGG16` (``decoder_filters`` as keyword)."""
    return UNetVGG16(input_shape=input_shape, weights=weights, **kwargs)
