"""Five-level U-Net (``unet5l``): breast segmentation and the mass-segmentation baseline.

Architecture (docs ARCHITECTURES.md, "unet5l"), with ``f`` = ``filters`` (16 by default):

- Encoder levels 1-4 with ``f, 2f, 4f, 8f`` filters: [3x3 conv (he_normal, no activation)
  -> BatchNorm -> ReLU] x2 -> 2x2 max-pool -> dropout. Layers ``conv{l}_{k}``,
  ``bn{l}_{k}``, ``relu{l}_{k}``, ``pool{l}``, ``drop{l}``.
- Bottleneck (level 5) with ``16f`` filters: [conv-BN-ReLU] x2, no dropout.
- Decoder levels 6-9 with ``8f, 4f, 2f, f`` filters: nearest 2x up-sampling (``up{l}``) ->
  2x2 conv (he_normal, ``up{l}_conv``) -> BatchNorm (``up{l}_bn``, on all but the first,
  deepest decoder level 6) -> ReLU -> concatenate [skip, up] (``merge{l}``) -> dropout ->
  [3x3 conv-BN-ReLU] x2.
- Output: 1x1 conv, one sigmoid channel, float32 (``output``), so the model is safe under a
  mixed-precision policy.

At ``f=16`` the network has 1,947,153 parameters, 3,168 of them non-trainable (BatchNorm
moving statistics), independent of the input size. Height and width must be multiples of 16
(four 2x2 poolings), e.g. 640x640 or 1024x768; ``None`` sides leave the size free.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import keras
from keras import layers

from mammo_common.keras.networks import load_weights_file, validate_input_shape

__all__ = ["DEFAULT_INPUT_SHAPE", "INPUT_MULTIPLE", "UNet5L", "build"]

DEFAULT_INPUT_SHAPE: tuple[int, int, int] = (640, 640, 1)
"""Default ``(height, width, channels)``."""

INPUT_MULTIPLE = 16
"""Height and width must be multiples of this (four 2x poolings)."""

_INIT = "he_normal"


def _conv_bn_relu(x, filters: int, level: int, index: int):
    """3x3 conv (no activation) -> BatchNorm -> ReLU, named ``*{level}_{index}``."""
    x = layers.Conv2D(
        filters, 3, padding="same", kernel_initializer=_INIT, name=f"conv{level}_{index}"
    )(x)
    x = layers.BatchNormalization(name=f"bn{level}_{index}")(x)
    return layers.ReLU(name=f"relu{level}_{index}")(x)


@keras.saving.register_keras_serializable(package="mammo_common")
class UNet5L(keras.Model):
    """Five-level U-Net with BatchNorm and dropout (functional, keras-hub style).

    Args:
        input_shape: ``(height, width, channels)``; sides multiples of 16 or ``None``.
        filters: Filters ``f`` of the first level; levels use ``f, 2f, 4f, 8f`` and the
            bottleneck ``16f``.
        dropout: Dropout rate after each pooling and after each decoder concatenation.
        name: Model name.
        **kwargs: Passed to :class:`keras.Model` (e.g. ``trainable``).

    Raises:
        ValueError: If the input shape or a width parameter is invalid.
    """

    def __init__(
        self,
        input_shape: Sequence[int | None] = DEFAULT_INPUT_SHAPE,
        filters: int = 16,
        dropout: float = 0.5,
        name: str = "unet5l",
        **kwargs,
    ) -> None:
        shape = validate_input_shape(input_shape, INPUT_MULTIPLE, "unet5l")
        filters = int(filters)
        dropout = float(dropout)
        if filters < 1:
            raise ValueError(f"unet5l: filters must be >= 1, got {filters}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"unet5l: dropout must be in [0, 1), got {dropout}")

        inputs = keras.Input(shape=shape, name="image")
        widths = [filters * 2**i for i in range(5)]

        x = inputs
        skips = []
        for level in range(1, 5):
            x = _conv_bn_relu(x, widths[level - 1], level, 1)
            x = _conv_bn_relu(x, widths[level - 1], level, 2)
            skips.append(x)
            x = layers.MaxPooling2D(2, name=f"pool{level}")(x)
            x = layers.Dropout(dropout, name=f"drop{level}")(x)

        x = _conv_bn_relu(x, widths[4], 5, 1)
        x = _conv_bn_relu(x, widths[4], 5, 2)

        for level in range(6, 10):
            width = widths[9 - level]
            x = layers.UpSampling2D(2, interpolation="nearest", name=f"up{level}")(x)
            x = layers.Conv2D(
                width, 2, padding="same", kernel_initializer=_INIT, name=f"up{level}_conv"
            )(x)
            if level > 6:
                x = layers.BatchNormalization(name=f"up{level}_bn")(x)
            x = layers.ReLU(name=f"up{level}_relu")(x)
            x = layers.Concatenate(name=f"merge{level}")([skips[9 - level], x])
            x = layers.Dropout(dropout, name=f"merge{level}_drop")(x)
            x = _conv_bn_relu(x, width, level, 1)
            x = _conv_bn_relu(x, width, level, 2)

        outputs = layers.Conv2D(1, 1, activation="sigmoid", dtype="float32", name="output")(x)
        super().__init__(inputs=inputs, outputs=outputs, name=name, **kwargs)

        self.image_shape = shape
        self.filters = filters
        self.dropout = dropout

    def get_config(self) -> dict:
        """Constructor arguments, so ``.keras`` files round-trip."""
        return {
            "name": self.name,
            "trainable": self.trainable,
            "input_shape": list(self.image_shape),
            "filters": self.filters,
            "dropout": self.dropout,
        }

    @classmethod
    def from_config(cls, config: dict) -> UNet5L:
        """Rebuild from :meth:`get_config`."""
        return cls(**config)


def build(
    input_shape: Sequence[int | None] = DEFAULT_INPUT_SHAPE,
    *,
    weights: str | os.PathLike | None = None,
    **kwargs,
) -> UNet5L:
    """Build a :class:`UNet5L`.

    Args:
        input_shape: ``(height, width, channels)``.
        weights: ``None`` (random initialisation) or a ``.weights.h5`` file of this
            architecture; there are no pretrained weights.
        **kwargs: ``filters``, ``dropout``, ``name``.

    Returns:
        The model.
    """
    model = UNet5L(input_shape=input_shape, **kwargs)
    load_weights_file(model, weights, "unet5l")
    return model
