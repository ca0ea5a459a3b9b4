"""Attention U-Net (Oktay et al. 2018), as in the reference mass-segmentation code.

Architecture (docs ARCHITECTURES.md, "attention_unet"), base width ``f`` = ``filters`` = 32
by default:

- Encoder levels 1-4 with ``f, 2f, 4f, 8f`` filters: [3x3 conv with ReLU -> BatchNorm] x2
  (``conv{l}_{k}``, ``bn{l}_{k}``) -> 2x2 max-pool (``pool{l}``).
- Bottleneck (level 5): two 3x3 conv(16f) with ReLU, no BatchNorm.
- Decoder levels 6-9 (coarse to fine). Gating signal from the previous (coarser) map:
  1x1 conv with twice its channels -> BatchNorm -> ReLU (``gating{l}_*``). Attention gate
  (``att{l}_*``) on the encoder skip x with gate g and ``inter`` channels:
  ``W_x`` = 2x2 stride-2 conv(inter) of x; ``W_g`` = 1x1 conv(inter) of g, then ``W_g_up``
  = 3x3 transposed conv (stride 1) of it; add -> ReLU -> ``psi`` = 1x1 conv(1) -> sigmoid
  -> 2x up-sampling -> multiplied with x over all of x's channels (``multiply``;
  broadcasting the one-channel map is the reference's channel repeat without a Lambda
  layer) -> ``W`` = 1x1 conv (x's channels) -> BatchNorm. Then a 3x3 stride-2 transposed
  conv with ReLU (``up{l}``; widths ``8f, 4f, 4f, f``: the third really is ``4f``, as in
  the reference) is concatenated with the gated skip (inter ``8f, 4f, 2f, f``), followed by
  two 3x3 conv with ReLU (``8f, 4f, 2f, f``), no BatchNorm.
- Output: 1x1 conv, one sigmoid channel, float32 (``output``).

At ``f=32`` and 640x640x3 the network has 11,021,957 parameters, 6,720 non-trainable.
Height and width must be multiples of 16.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import keras
from keras import layers

from mammo_common.keras.networks import load_weights_file, validate_input_shape

__all__ = ["DEFAULT_INPUT_SHAPE", "INPUT_MULTIPLE", "AttentionUNet", "build"]

DEFAULT_INPUT_SHAPE: tuple[int, int, int] = (640, 640, 3)
"""Default ``(height, width, channels)``."""

INPUT_MULTIPLE = 16
"""Height and width must be multiples of this (four 2x poolings)."""


def _gating_signal(x, prefix: str):
    """1x1 conv to twice the channels -> BatchNorm -> ReLU."""
    channels = x.shape[-1]
    g = layers.Conv2D(2 * channels, 1, padding="same", name=f"{prefix}_conv")(x)
    g = layers.BatchNormalization(name=f"{prefix}_bn")(g)
    return layers.ReLU(name=f"{prefix}_relu")(g)


def _attention_gate(x, g, inter: int, prefix: str):
    """Additive attention gate: weights the skip ``x`` by a map computed with gate ``g``."""
    channels = x.shape[-1]
    theta_x = layers.Conv2D(inter, 2, strides=2, padding="same", name=f"{prefix}_W_x")(x)
    phi_g = layers.Conv2D(inter, 1, padding="same", name=f"{prefix}_W_g")(g)
    phi_g = layers.Conv2DTranspose(inter, 3, strides=1, padding="same", name=f"{prefix}_W_g_up")(
        phi_g
    )
    f = layers.Add(name=f"{prefix}_add")([phi_g, theta_x])
    f = layers.ReLU(name=f"{prefix}_relu")(f)
    psi = layers.Conv2D(1, 1, padding="same", name=f"{prefix}_psi")(f)
    alpha = layers.Activation("sigmoid", name=f"{prefix}_sigmoid")(psi)
    alpha = layers.UpSampling2D(2, name=f"{prefix}_psi_up")(alpha)
    y = layers.Multiply(name=f"{prefix}_multiply")([alpha, x])
    y = layers.Conv2D(channels, 1, padding="same", name=f"{prefix}_W")(y)
    return layers.BatchNormalization(name=f"{prefix}_bn")(y)


@keras.saving.register_keras_serializable(package="massseg")
class AttentionUNet(keras.Model):
    """Attention U-Net (functional, keras-hub style).

    Args:
        input_shape: ``(height, width, channels)``; sides multiples of 16 or ``None``.
        filters: Base width ``f`` (32 in the reference).
        name: Model name.
        **kwargs: Passed to :class:`keras.Model`.

    Raises:
        ValueError: If the input shape or the width is invalid.
    """

    def __init__(
        self,
        input_shape: Sequence[int | None] = DEFAULT_INPUT_SHAPE,
        filters: int = 32,
        name: str = "attention_unet",
        **kwargs,
    ) -> None:
        shape = validate_input_shape(input_shape, INPUT_MULTIPLE, "attention_unet")
        filters = int(filters)
        if filters < 1:
            raise ValueError(f"attention_unet: filters must be >= 1, got {filters}")
        f = filters

        inputs = keras.Input(shape=shape, name="image")
        x = inputs
        skips = []
        for level in range(1, 5):
            width = f * 2 ** (level - 1)
            for k in (1, 2):
                x = layers.Conv2D(
                    width, 3, padding="same", activation="relu", name=f"conv{level}_{k}"
                )(x)
                x = layers.BatchNormalization(name=f"bn{level}_{k}")(x)
            skips.append(x)
            x = layers.MaxPooling2D(2, name=f"pool{level}")(x)
        for k in (1, 2):
            x = layers.Conv2D(16 * f, 3, padding="same", activation="relu", name=f"conv5_{k}")(x)

        up_widths = (8 * f, 4 * f, 4 * f, f)
        widths = (8 * f, 4 * f, 2 * f, f)
        for i, level in enumerate(range(6, 10)):
            gate = _gating_signal(x, f"gating{level}")
            gated = _attention_gate(skips[3 - i], gate, widths[i], f"att{level}")
            up = layers.Conv2DTranspose(
                up_widths[i], 3, strides=2, padding="same", activation="relu", name=f"up{level}"
            )(x)
            x = layers.Concatenate(name=f"up{level}_concat")([up, gated])
            for k in (1, 2):
                x = layers.Conv2D(
                    widths[i], 3, padding="same", activation="relu", name=f"conv{level}_{k}"
                )(x)

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
            "filters": self.filters,
        }

    @classmethod
    def from_config(cls, config: dict) -> AttentionUNet:
        """Rebuild from :meth:`get_config`."""
        return cls(**config)


def build(
    input_shape: Sequence[int | None] = DEFAULT_INPUT_SHAPE,
    *,
    weights: str | os.PathLike | None = None,
    **kwargs,
) -> AttentionUNet:
    """Build an :class:`AttentionUNet`.

    Args:
        input_shape: ``(height, width, channels)``.
        weights: ``None`` or a ``.weights.h5`` file of this architecture.
        **kwargs: ``filters``, ``name``.

    Returns:
        The model.
    """
    model = AttentionUNet(input_shape=input_shape, **kwargs)
    load_weights_file(model, weights, "attention_unet")
    return model
