"""U-Net++ with an Xception encoder (the proposed mass segmentation network).

The five encoder nodes X(i,1) are the input tensor and the Xception pyramid levels P1..P4 of
the encoder registry (:mod:`mammo_common.keras.networks.encoders`; strides 2, 4, 8 and 16, the first
two zero-padded on the top/left to the exact stride size). The nested
decoder computes every node X(i,j), j = 2..5, i = 1..6-j, as::

    X(i,j) = unit(concat[up(X(i+1,j-1)), X(i,1), ..., X(i,j-1)])

with ``up`` a 2x2 stride-2 transposed convolution to ``nb[i-1]`` filters (no activation),
``nb = [f, 2f, 4f, 8f]`` and ``unit`` = [3x3 conv + ReLU (he_normal) -> BatchNorm ->
dropout] x 2. The mask is a 1x1 sigmoid convolution on X(1,5); with deep supervision,
heads on X(1,2), X(1,3) and X(1,4) are added as further outputs.

Layers are named after the nodes: ``x_2_3_up``, ``x_2_3_concat``, ``x_2_3_conv1``,
``x_2_3_bn1``, ``x_2_3_drop1``, ... With f=12 at 640x640x3 the network has 17,222,989
parameters, 46,560 of them non-trainable.
"""

from __future__ import annotations

import os
from typing import Any

import keras

from mammo_common.keras.networks.encoders import build_encoder, check_input_shape, get_encoder_spec

__all__ = ["DEFAULT_INPUT_SHAPE", "UNetPlusPlusXception", "build"]

DEFAULT_INPUT_SHAPE: tuple[int, int, int] = (640, 640, 3)

ENCODER = "xception"
#: Encoder nodes X(i,1), i = 1..5, as taps of the registry's Xception ("input" is the image
#: itself; P1..P4: block2/3/4_sepconv2_bn and block13_sepconv2_bn).
ENCODER_TAPS = ("input", "P1", "P2", "P3", "P4")
DEPTH = len(ENCODER_TAPS)


def _unit(x: Any, node: str, filters: int, dropout: float) -> Any:
    """[3x3 conv + ReLU -> BatchNorm -> dropout] x 2 (activation before BatchNorm)."""
    for k in (1, 2):
        x = keras.layers.Conv2D(
            filters,
            3,
            padding="same",
            activation="relu",
            kernel_initializer="he_normal",
            name=f"{node}_conv{k}",
        )(x)
        x = keras.layers.BatchNormalization(name=f"{node}_bn{k}")(x)
        x = keras.layers.Dropout(dropout, name=f"{node}_drop{k}")(x)
    return x


def _head(x: Any, name: str) -> Any:
    return keras.layers.Conv2D(
        1,
        1,
        activation="sigmoid",
        kernel_initializer="he_normal",
        dtype="float32",
        name=name,
    )(x)


@keras.saving.register_keras_serializable(package="massseg")
class UNetPlusPlusXception(keras.Model):
    """U-Net++ (depth 4, nested dense skips) on an Xception encoder.

    Args:
        input_shape: ``(H, W, 3)`` with H and W multiples of 32.
        filters: Top decoder width f; the levels use f, 2f, 4f, 8f.
        dropout: Dropout rate inside the decoder units.
        deep_supervision: Also output masks from X(1,2), X(1,3), X(1,4) (outputs are then
            ``[mask_1_2, mask_1_3, mask_1_4, mask]``).
        weights: Encoder weights: None, ``"imagenet"``, ``"auto"`` or a file path.
        name: Model name.
        **kwargs: Passed to ``keras.Model`` (e.g. ``trainable``).
    """

    def __init__(
        self,
        input_shape: tuple[int, int, int] = DEFAULT_INPUT_SHAPE,
        filters: int = 12,
        dropout: float = 0.2,
        deep_supervision: bool = False,
        weights: str | os.PathLike | None = None,
        name: str = "unetpp_xception",
        **kwargs: Any,
    ) -> None:
        spec = get_encoder_spec(ENCODER)
        shape = check_input_shape(
            input_shape, multiple=spec.input_multiple, channels=spec.channels
        )
        inputs = keras.Input(shape=shape, name="image")
        _, taps = build_encoder(ENCODER, inputs, taps=ENCODER_TAPS, weights=weights)
        nb = [filters * 2**level for level in range(DEPTH - 1)]

        # nodes[i][j] holds X(i+1, j+1) (0-based storage of the 1-based paper indices).
        nodes: list[list[Any]] = [[taps[tap]] for tap in ENCODER_TAPS]
        for j in range(2, DEPTH + 1):
            for i in range(1, DEPTH + 2 - j):
                node = f"x_{i}_{j}"
                up = keras.layers.Conv2DTranspose(
                    nb[i - 1], 2, strides=2, padding="same", name=f"{node}_up"
                )(nodes[i][j - 2])
                x = keras.layers.Concatenate(name=f"{node}_concat")([up, *nodes[i - 1]])
                nodes[i - 1].append(_unit(x, node, nb[i - 1], dropout))

        mask = _head(nodes[0][DEPTH - 1], "mask")
        if deep_supervision:
            outputs: Any = [_head(nodes[0][j - 1], f"mask_1_{j}") for j in range(2, DEPTH)]
            outputs.append(mask)
        else:
            outputs = mask
        super().__init__(inputs=inputs, outputs=outputs, name=name, **kwargs)

        self.input_shape_ = shape
        self.filters = filters
        self.dropout = dropout
        self.deep_supervision = deep_supervision
        self.weights_source = None if weights is None else os.fspath(weights)

    def get_config(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "trainable": self.trainable,
            "input_shape": list(self.input_shape_),
            "filters": self.filters,
            "dropout": self.dropout,
            "deep_supervision": self.deep_supervision,
            "weights": self.weights_source,
        }

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> UNetPlusPlusXception:
        # The saved weights are loaded after construction: never fetch ImageNet weights here.
        return cls(**{**config, "weights": None})


def build(
    input_shape: tuple[int, int, int] = DEFAULT_INPUT_SHAPE,
    *,
    weights: str | os.PathLike | None = None,
    **kwargs: Any,
) -> keras.Model:
    """Build :class:`UNetPlusPlusXception` (``filters``, ``dropout``, ``deep_supervision``)."""
    return UNetPlusPlusXception(input_shape=input_shape, weights=weights, **kwargs)
