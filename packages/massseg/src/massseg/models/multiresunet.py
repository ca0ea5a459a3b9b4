"""MultiResUNet (Ibtehaz and Rahman 2020), as in the reference mass-segmentation code.

Architecture (docs ARCHITECTURES.md, "multiresunet"), widths ``filters`` =
``(32, 64, 128, 256, 512)`` and ``alpha`` = 1.67 by default:

- conv_bn(n): conv without bias -> BatchNorm -> optional ReLU.
- MultiRes block(n) ``mresblock{k}_*``, with W = alpha * n: three chained 3x3 conv_bn with
  ReLU (``conv3x3``, ``conv5x5``, ``conv7x7``: the chain emulates 3x3, 5x5 and 7x7
  receptive fields) with int(0.167 W), int(0.333 W), int(0.5 W) filters, concatenated ->
  BatchNorm; a 1x1 conv_bn shortcut (no activation) to the summed width; add -> ReLU ->
  BatchNorm.
- ResPath(n, length) ``respath{k}_{i}_*``: ``length`` times [3x3 conv_bn (no activation)
  + 1x1 conv_bn shortcut (no activation) -> ReLU -> BatchNorm].
- Encoder: MultiRes blocks 1-4 (32, 64, 128, 256); each block's output goes through a
  ResPath of length 4, 3, 2, 1 (the skip) and a 2x2 max-pool (``pool{k}``). Bridge:
  MultiRes block 5 (512).
- Decoder: 2x2 stride-2 transposed conv(n) (``up{k}``) -> concatenate [up, ResPath skip]
  -> MultiRes block(n), n = 256, 128, 64, 32 (blocks 6-9).
- Output: 1x1 conv, one sigmoid channel, float32 (``output``).

At the default widths and 640x640x3 the network has 7,269,294 parameters, 24,520
non-trainable. Height and width must be multiples of 16.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import keras
from keras import layers

from mammo_common.keras.networks import load_weights_file, validate_input_shape

__all__ = ["DEFAULT_INPUT_SHAPE", "INPUT_MULTIPLE", "MultiResUNet", "build", "multires_widths"]

DEFAULT_INPUT_SHAPE: tuple[int, int, int] = (640, 640, 3)
"""Default ``(height, width, channels)``."""

INPUT_MULTIPLE = 16
"""Height and width must be multiples of this (four 2x poolings)."""

RESPATH_LENGTHS = (4, 3, 2, 1)
"""ResPath lengths of the four skips, shallow to deep."""


def multires_widths(filters: int, alpha: float = 1.67) -> tuple[int, int, int]:
    """Widths of the three chained convolutions of a MultiRes block of ``filters``."""
    w = filters * alpha
    return int(w * 0.167), int(w * 0.333), int(w * 0.5)


def _conv_bn(x, filters: int, kernel: int, name: str, activation: bool):
    """Conv without bias -> BatchNorm -> optional ReLU."""
    x = layers.Conv2D(filters, kernel, padding="same", use_bias=False, name=name)(x)
    x = layers.BatchNormalization(name=f"{name}_bn")(x)
    if activation:
        x = layers.ReLU(name=f"{name}_relu")(x)
    return x


def _multires_block(x, filters: int, alpha: float, prefix: str):
    """MultiRes block: chained 3x3 convs, concatenated, plus a 1x1 shortcut."""
    widths = multires_widths(filters, alpha)
    branches = []
    y = x
    for width, tag in zip(widths, ("conv3x3", "conv5x5", "conv7x7"), strict=True):
        y = _conv_bn(y, width, 3, f"{prefix}_{tag}", activation=True)
        branches.append(y)
    y = layers.Concatenate(name=f"{prefix}_concat")(branches)
    y = layers.BatchNormalization(name=f"{prefix}_concat_bn")(y)
    shortcut = _conv_bn(x, sum(widths), 1, f"{prefix}_shortcut", activation=False)
    y = layers.Add(name=f"{prefix}_add")([y, shortcut])
    y = layers.ReLU(name=f"{prefix}_relu")(y)
    return layers.BatchNormalization(name=f"{prefix}_bn")(y)


def _res_path(x, filters: int, length: int, prefix: str):
    """ResPath: ``length`` residual units of a 3x3 conv and a 1x1 shortcut."""
    for i in range(1, length + 1):
        unit = f"{prefix}_{i}"
        y = _conv_bn(x, filters, 3, f"{unit}_conv3x3", activation=False)
        shortcut = _conv_bn(x, filters, 1, f"{unit}_shortcut", activation=False)
        y = layers.Add(name=f"{unit}_add")([y, shortcut])
        y = layers.ReLU(name=f"{unit}_relu")(y)
        x = layers.BatchNormalization(name=f"{unit}_bn")(y)
    return x


@keras.saving.register_keras_serializable(package="massseg")
class MultiResUNet(keras.Model):
    """MultiResUNet (functional, keras-hub style).

    Args:
        input_shape: ``(height, width, channels)``; sides multiples of 16 or ``None``.
        filters: Five base widths ``n``: four encoder blocks and the bridge; the decoder
            mirrors the first four.
        alpha: MultiRes width multiplier (W = alpha * n).
        name: Model name.
        **kwargs: Passed to :class:`keras.Model`.

    Raises:
        ValueError: If the input shape or the widths are invalid (every chained
            convolution needs at least one filter).
    """

    def __init__(
        self,
        input_shape: Sequence[int | None] = DEFAULT_INPUT_SHAPE,
        filters: Sequence[int] = (32, 64, 128, 256, 512),
        alpha: float = 1.67,
        name: str = "multiresunet",
        **kwargs,
    ) -> None:
        shape = validate_input_shape(input_shape, INPUT_MULTIPLE, "multiresunet")
        filters = tuple(int(n) for n in filters)
        alpha = float(alpha)
        if len(filters) != 5:
            raise ValueError(f"multiresunet: filters must be five widths, got {filters}")
        for n in filters:
            if min(multires_widths(n, alpha)) < 1:
                raise ValueError(
                    f"multiresunet: width {n} with alpha={alpha} gives a MultiRes block "
                    f"with an empty convolution {multires_widths(n, alpha)}; use larger widths"
                )

        inputs = keras.Input(shape=shape, name="image")
        x = inputs
        skips = []
        for k in range(1, 5):
            x = _multires_block(x, filters[k - 1], alpha, f"mresblock{k}")
            skips.append(_res_path(x, filters[k - 1], RESPATH_LENGTHS[k - 1], f"respath{k}"))
            x = layers.MaxPooling2D(2, name=f"pool{k}")(x)
        x = _multires_block(x, filters[4], alpha, "mresblock5")

        for k in range(6, 10):
            width = filters[9 - k]
            x = layers.Conv2DTranspose(width, 2, strides=2, padding="same", name=f"up{k}")(x)
            x = layers.Concatenate(name=f"up{k}_concat")([x, skips[9 - k]])
            x = _multires_block(x, width, alpha, f"mresblock{k}")

        outputs = layers.Conv2D(1, 1, activation="sigmoid", dtype="float32", name="output")(x)
        super().__init__(inputs=inputs, outputs=outputs, name=name, **kwargs)

        self.image_shape = shape
        self.filters = filters
        self.alpha = alpha

    def get_config(self) -> dict:
        """Constructor arguments, so ``.keras`` files round-trip."""
        return {
            "name": self.name,
            "trainable": self.trainable,
            "input_shape": list(self.image_shape),
            "filters": list(self.filters),
            "alpha": self.alpha,
        }

    @classmethod
    def from_config(cls, config: dict) -> MultiResUNet:
        """Rebuild from :meth:`get_config`."""
        return cls(**config)


def build(
    input_shape: Sequence[int | None] = DEFAULT_INPUT_SHAPE,
    *,
    weights: str | os.PathLike | None = None,
    **kwargs,
) -> MultiResUNet:
    """Build a :class:`MultiResUNet`.

    Args:
        input_shape: ``(height, width, channels)``.
        weights: ``None`` or a ``.weights.h5`` file of this architecture.
        **kwargs: ``filters``, ``alpha``, ``name``.

    Returns:
        The model.
    """
    model = MultiResUNet(input_shape=input_shape, **kwargs)
    load_weights_file(model, weights, "multiresunet")
    return model
