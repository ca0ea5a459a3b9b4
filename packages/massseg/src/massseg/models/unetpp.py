"""Plain U-Net++ (Zhou et al. 2018/2020): nested, densely skipped U-Net of depth 4.

Not in the reference mass-segmentation code; the choices here are ours:

- Nodes ``X(i,j)`` with Zhou's zero-based indices: ``i`` = 0..4 is the down-sampling level,
  ``j`` the node along the skip pathway. Widths ``filters`` = ``(32, 64, 128, 256, 512)``
  for levels 0..4 by default.
- Unit (every node): [3x3 conv without bias (BatchNorm follows, a bias would be
  redundant) -> BatchNorm -> ReLU] x2, default initialisers, no dropout. Layers
  ``x_{i}_{j}_conv{k}``, ``x_{i}_{j}_bn{k}``, ``x_{i}_{j}_relu{k}``.
- Backbone column: ``X(0,0)`` = unit(input); ``X(i,0)`` = unit(2x2 max-pool of
  ``X(i-1,0)``) (pool ``x_{i}_0_pool``).
- Nested decoder, all ten nodes: for ``j`` >= 1, ``X(i,j)`` = unit(concat[``X(i,0)``, ...,
  ``X(i,j-1)``, up(``X(i+1,j-1)``)]), where up is a 2x2 stride-2 transposed conv with the
  level's width, with bias and no activation (``x_{i}_{j}_up``; as in Zhou's Keras code and
  in ``unetpp_xception``); concatenation ``x_{i}_{j}_concat``.
- Output: 1x1 conv, one sigmoid channel, float32 (``output``) on ``X(0,4)``. Deep
  supervision is not offered (the single-output contract of the mass-segmentation models).

At the default widths and 640x640x3 the network has 9,053,121 parameters, 7,296 of them
non-trainable (counts do not depend on the input size, only on the channels).
Height and width must be multiples of 16.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import keras
from keras import layers

from mammo_common.keras.networks import load_weights_file, validate_input_shape

__all__ = ["DEFAULT_INPUT_SHAPE", "INPUT_MULTIPLE", "UNetPlusPlus", "build"]

DEFAULT_INPUT_SHAPE: tuple[int, int, int] = (640, 640, 3)
"""Default ``(height, width, channels)``."""

INPUT_MULTIPLE = 16
"""Height and width must be multiples of this (four 2x poolings)."""

DEPTH = 4
"""Number of down-samplings; levels are 0..DEPTH."""


def _unit(x, filters: int, node: str):
    """[3x3 conv (no bias) -> BatchNorm -> ReLU] x2."""
    for k in (1, 2):
        x = layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"{node}_conv{k}")(x)
        x = layers.BatchNormalization(name=f"{node}_bn{k}")(x)
        x = layers.ReLU(name=f"{node}_relu{k}")(x)
    return x


@keras.saving.register_keras_serializable(package="massseg")
class UNetPlusPlus(keras.Model):
    """Plain U-Net++ of depth 4 (functional, keras-hub style).

    Args:
        input_shape: ``(height, width, channels)``; sides multiples of 16 or ``None``.
        filters: Five widths, levels 0 (full resolution) to 4 (bottom).
        name: Model name.
        **kwargs: Passed to :class:`keras.Model`.

    Raises:
        ValueError: If the input shape or the widths are invalid.
    """

    def __init__(
        self,
        input_shape: Sequence[int | None] = DEFAULT_INPUT_SHAPE,
        filters: Sequence[int] = (32, 64, 128, 256, 512),
        name: str = "unetpp",
        **kwargs,
    ) -> None:
        shape = validate_input_shape(input_shape, INPUT_MULTIPLE, "unetpp")
        filters = tuple(int(n) for n in filters)
        if len(filters) != DEPTH + 1 or min(filters) < 1:
            raise ValueError(f"unetpp: filters must be five positive widths, got {filters}")

        inputs = keras.Input(shape=shape, name="image")
        nodes: dict[tuple[int, int], object] = {}
        nodes[0, 0] = _unit(inputs, filters[0], "x_0_0")
        for i in range(1, DEPTH + 1):
            pooled = layers.MaxPooling2D(2, name=f"x_{i}_0_pool")(nodes[i - 1, 0])
            nodes[i, 0] = _unit(pooled, filters[i], f"x_{i}_0")

        for j in range(1, DEPTH + 1):
            for i in range(0, DEPTH + 1 - j):
                node = f"x_{i}_{j}"
                up = layers.Conv2DTranspose(
                    filters[i], 2, strides=2, padding="same", name=f"{node}_up"
                )(nodes[i + 1, j - 1])
                merged = layers.Concatenate(name=f"{node}_concat")(
                    [nodes[i, k] for k in range(j)] + [up]
                )
                nodes[i, j] = _unit(merged, filters[i], node)

        outputs = layers.Conv2D(1, 1, activation="sigmoid", dtype="float32", name="output")(
            nodes[0, DEPTH]
        )
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
    def from_config(cls, config: dict) -> UNetPlusPlus:
        """Rebuild from :meth:`get_config`."""
        return cls(**config)


def build(
    input_shape: Sequence[int | None] = DEFAULT_INPUT_SHAPE,
    *,
    weights: str | os.PathLike | None = None,
    **kwargs,
) -> UNetPlusPlus:
    """Build a :class:`UNetPlusPlus`.

    Args:
        input_shape: ``(height, width, channels)``.
        weights: ``None`` or a ``.weights.h5`` file of this architecture.
        **kwargs: ``filters``, ``name``.

    Returns:
        The model.
    """
    model = UNetPlusPlus(input_shape=input_shape, **kwargs)
    load_weights_file(model, weights, "unetpp")
    return model
