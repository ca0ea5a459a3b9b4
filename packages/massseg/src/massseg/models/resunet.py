"""Residual U-Net (ResUNet, Zhang et al. 2018), as in the reference mass-segmentation code.

Architecture (docs ARCHITECTURES.md, "resunet"), widths ``(n1, n2, n3, n4)`` =
``filters`` = ``(64, 128, 256, 512)`` by default:

- Encoder 1 (stem): 3x3 conv(n1) -> BN-ReLU -> 3x3 conv(n1), plus a 1x1 conv(n1) shortcut
  of the input, added (``enc1_*``).
- Residual block(n, stride s) ``<prefix>_*``: BN-ReLU -> 3x3 conv(n, s) -> BN-ReLU -> 3x3
  conv(n), plus a 1x1 conv(n, s) shortcut of the block input, added.
- Encoder 2 and 3: residual blocks (n2, 2) and (n3, 2) (``enc2_*``, ``enc3_*``); bridge:
  residual block (n4, 2) (``bridge_*``).
- Decoder 1-3: nearest 2x up-sampling -> concatenate [up, skip] -> residual block(n, 1)
  with n = n3, n2, n1 (``dec{k}_*``).
- Output: 1x1 conv, one sigmoid channel, float32 (``output``).

One input channel by default. At the default widths and 640x640x1 the network has
8,226,113 parameters, 6,400 non-trainable. Three stride-2 stages: height and width must be
multiples of 8 (the registry asks for 32 like the other mass networks).
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import keras
from keras import layers

from mammo_common.keras.networks import load_weights_file, validate_input_shape

__all__ = ["DEFAULT_INPUT_SHAPE", "INPUT_MULTIPLE", "ResUNet", "build"]

DEFAULT_INPUT_SHAPE: tuple[int, int, int] = (640, 640, 1)
"""Default ``(height, width, channels)``."""

INPUT_MULTIPLE = 8
"""Height and width must be multiples of this (three stride-2 stages)."""


def _residual_block(x, filters: int, strides: int, prefix: str):
    """Pre-activation residual block with a 1x1 projection shortcut."""
    shortcut = layers.Conv2D(
        filters, 1, strides=strides, padding="same", name=f"{prefix}_shortcut"
    )(x)
    y = layers.BatchNormalization(name=f"{prefix}_bn1")(x)
    y = layers.ReLU(name=f"{prefix}_relu1")(y)
    y = layers.Conv2D(filters, 3, strides=strides, padding="same", name=f"{prefix}_conv1")(y)
    y = layers.BatchNormalization(name=f"{prefix}_bn2")(y)
    y = layers.ReLU(name=f"{prefix}_relu2")(y)
    y = layers.Conv2D(filters, 3, padding="same", name=f"{prefix}_conv2")(y)
    return layers.Add(name=f"{prefix}_add")([y, shortcut])


@keras.saving.register_keras_serializable(package="massseg")
class ResUNet(keras.Model):
    """Residual U-Net (functional, keras-hub style).

    Args:
        input_shape: ``(height, width, channels)``; sides multiples of 8 or ``None``.
        filters: Four widths: stem, encoder 2, encoder 3, bridge.
        name: Model name.
        **kwargs: Passed to :class:`keras.Model`.

    Raises:
        ValueError: If the input shape or the widths are invalid.
    """

    def __init__(
        self,
        input_shape: Sequence[int | None] = DEFAULT_INPUT_SHAPE,
        filters: Sequence[int] = (64, 128, 256, 512),
        name: str = "resunet",
        **kwargs,
    ) -> None:
        shape = validate_input_shape(input_shape, INPUT_MULTIPLE, "resunet")
        filters = tuple(int(n) for n in filters)
        if len(filters) != 4 or min(filters) < 1:
            raise ValueError(f"resunet: filters must be four positive widths, got {filters}")
        n1, n2, n3, n4 = filters

        inputs = keras.Input(shape=shape, name="image")
        x = layers.Conv2D(n1, 3, padding="same", name="enc1_conv1")(inputs)
        x = layers.BatchNormalization(name="enc1_bn1")(x)
        x = layers.ReLU(name="enc1_relu1")(x)
        x = layers.Conv2D(n1, 3, padding="same", name="enc1_conv2")(x)
        shortcut = layers.Conv2D(n1, 1, padding="same", name="enc1_shortcut")(inputs)
        s1 = layers.Add(name="enc1_add")([x, shortcut])

        s2 = _residual_block(s1, n2, 2, "enc2")
        s3 = _residual_block(s2, n3, 2, "enc3")
        x = _residual_block(s3, n4, 2, "bridge")

        for k, (skip, width) in enumerate(((s3, n3), (s2, n2), (s1, n1)), start=1):
            x = layers.UpSampling2D(2, name=f"dec{k}_up")(x)
            x = layers.Concatenate(name=f"dec{k}_concat")([x, skip])
            x = _residual_block(x, width, 1, f"dec{k}")

        outputs = layers.Conv2D(1, 1, activation="sigmoid", dtype="float32", name="output")(x)
        super().__init__(inputs=inputs, outputs=outputs, name=name, **kwargs)

        self.image_shape = shape
        self.filters = filters

    def get_config(self) -> dict:
        """Constructor arguments, so ``.keras`` files round-trip."""
        return {
            "name": self.name,
            "trainable": self.trainable,
            "input_shape": list(self.image_shape),
            "filters": list(self.filters),
        }

    @classmethod
    def from_config(cls, config: dict) -> ResUNet:
        """Rebuild from :meth:`get_config`."""
        return cls(**config)


def build(
    input_shape: Sequence[int | None] = DEFAULT_INPUT_SHAPE,
    *,
    weights: str | os.PathLike | None = None,
    **kwargs,
) -> ResUNet:
    """Build a :class:`ResUNet`.

    Args:
        input_shape: ``(height, width, channels)``.
        weights: ``None`` or a ``.weights.h5`` file of this architecture.
        **kwargs: ``filters``, ``name``.

    Returns:
        The model.
    """
    model = ResUNet(input_shape=input_shape, **kwargs)
    load_weights_file(model, weights, "resunet")
    return model
