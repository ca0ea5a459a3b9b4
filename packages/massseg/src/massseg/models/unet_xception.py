"""U-Net with an Xception encoder and residual decoder stages (U-Xception).

Encoder taps are the registry's Xception pyramid levels
(:mod:`mammo_common.keras.networks.encoders`).
Bottom: ReLU(P4 = ``block13_sepconv2_bn``) (stride 16, also the stride-16 skip) -> 2x2 max-pool
-> dropout -> middle stage at 32s. A stage(n) is a 3x3 convolution (no activation), two
residual blocks and a ReLU; a residual block(n) is::

    x = BN(ReLU(in)); shortcut = BN(in)
    x = 3x3 conv-BN-ReLU(x); x = 3x3 conv-BN(x); out = x + shortcut

Up path: 3x3 stride-2 transposed convolutions, each concatenated with its skip, dropout,
then a stage: 16s (stride-16 skip, dropout 0.5), 8s (P3 ``block4_sepconv2_bn``, 0.5), 4s
(P2 ``block3_sepconv2_bn`` padded, 0.1), 2s (P1 ``block2_sepconv2_bn`` padded, 0.1), and a last
transposed convolution to full size without skip -> dropout 0.5 -> stage(s) -> dropout
0.25 -> 1x1 sigmoid. With s=8 at 640x640x3: 23,159,489 parameters, 53,376 non-trainable.

Layer names: ``bottom_relu``, ``bottom_pool``, ``bottom_drop``; stages ``middle``,
``up16``, ``up8``, ``up4``, ``up2``, ``up1`` (by output stride) with ``<stage>_deconv``,
``<stage>_concat``, ``<stage>_drop``, ``<stage>_conv``, ``<stage>_res<k>_...`` and
``<stage>_relu``; ``final_drop`` and ``mask``.
"""

from __future__ import annotations

import os
from typing import Any

import keras

from mammo_common.keras.networks.encoders import build_encoder, check_input_shape, get_encoder_spec

__all__ = ["DEFAULT_INPUT_SHAPE", "UNetXception", "build"]

DEFAULT_INPUT_SHAPE: tuple[int, int, int] = (640, 640, 3)

ENCODER = "xception"
#: The encoder tap at the bottom (stride 16).
BOTTOM = "P4"

#: (stage name, width multiple of s, skip tap or None, dropout before the stage), coarse
#: to fine.
UP_STAGES: tuple[tuple[str, int, str | None, str], ...] = (
    ("up16", 16, BOTTOM, "dropout"),
    ("up8", 8, "P3", "dropout"),
    ("up4", 4, "P2", "fine_dropout"),
    ("up2", 2, "P1", "fine_dropout"),
    ("up1", 1, None, "dropout"),
)


def _residual_block(inputs: Any, filters: int, name: str) -> Any:
    x = keras.layers.ReLU(name=f"{name}_relu_in")(inputs)
    x = keras.layers.BatchNormalization(name=f"{name}_bn_in")(x)
    shortcut = keras.layers.BatchNormalization(name=f"{name}_bn_short")(inputs)
    x = keras.layers.Conv2D(filters, 3, padding="same", name=f"{name}_conv1")(x)
    x = keras.layers.BatchNormalization(name=f"{name}_bn1")(x)
    x = keras.layers.ReLU(name=f"{name}_relu1")(x)
    x = keras.layers.Conv2D(filters, 3, padding="same", name=f"{name}_conv2")(x)
    x = keras.layers.BatchNormalization(name=f"{name}_bn2")(x)
    return keras.layers.Add(name=f"{name}_add")([x, shortcut])


def _stage(x: Any, filters: int, name: str) -> Any:
    x = keras.layers.Conv2D(filters, 3, padding="same", name=f"{name}_conv")(x)
    x = _residual_block(x, filters, f"{name}_res1")
    x = _residual_block(x, filters, f"{name}_res2")
    return keras.layers.ReLU(name=f"{name}_relu")(x)


@keras.saving.register_keras_serializable(package="massseg")
class UNetXception(keras.Model):
    """U-Net with an Xception encoder and residual decoder stages.

    Args:
        input_shape: ``(H, W, 3)`` with H and W multiples of 32.
        start_filters: Start filters s; the stages use 32s (middle), 16s, 8s, 4s, 2s, s.
        dropout: Dropout at the bottom and before the coarse and last stages (0.5).
        fine_dropout: Dropout before the stride-4 and stride-2 stages (0.1).
        final_dropout: Dropout before the output convolution (0.25).
        weights: Encoder weights: None, ``"imagenet"``, ``"auto"`` or a file path.
        name: Model name.
        **kwargs: Passed to ``keras.Model``.
    """

    def __init__(
        self,
        input_shape: tuple[int, int, int] = DEFAULT_INPUT_SHAPE,
        start_filters: int = 8,
        dropout: float = 0.5,
        fine_dropout: float = 0.1,
        final_dropout: float = 0.25,
        weights: str | os.PathLike | None = None,
        name: str = "unet_xception",
        **kwargs: Any,
    ) -> None:
        spec = get_encoder_spec(ENCODER)
        shape = check_input_shape(
            input_shape, multiple=spec.input_multiple, channels=spec.channels
        )
        inputs = keras.Input(shape=shape, name="image")
        skip_taps = [tap for _, _, tap, _ in UP_STAGES if tap is not None]
        _, taps = build_encoder(ENCODER, inputs, taps=skip_taps, weights=weights)
        rates = {"dropout": dropout, "fine_dropout": fine_dropout}

        bottom = keras.layers.ReLU(name="bottom_relu")(taps[BOTTOM])
        taps[BOTTOM] = bottom  # the activated map is also the skip
        x = keras.layers.MaxPooling2D(2, name="bottom_pool")(bottom)
        x = keras.layers.Dropout(dropout, name="bottom_drop")(x)
        x = _stage(x, start_filters * 32, "middle")

        for stage, mult, tap, rate in UP_STAGES:
            x = keras.layers.Conv2DTranspose(
                start_filters * mult, 3, strides=2, padding="same", name=f"{stage}_deconv"
            )(x)
            if tap is not None:
                x = keras.layers.Concatenate(name=f"{stage}_concat")([x, taps[tap]])
            x = keras.layers.Dropout(rates[rate], name=f"{stage}_drop")(x)
            x = _stage(x, start_filters * mult, stage)

        x = keras.layers.Dropout(final_dropout, name="final_drop")(x)
        outputs = keras.layers.Conv2D(1, 1, activation="sigmoid", dtype="float32", name="mask")(x)
        super().__init__(inputs=inputs, outputs=outputs, name=name, **kwargs)

        self.input_shape_ = shape
        self.start_filters = start_filters
        self.dropout = dropout
        self.fine_dropout = fine_dropout
        self.final_dropout = final_dropout
        self.weights_source = None if weights is None else os.fspath(weights)

    def get_config(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "trainable": self.trainable,
            "input_shape": list(self.input_shape_),
            "start_filters": self.start_filters,
            "dropout": self.dropout,
            "fine_dropout": self.fine_dropout,
            "final_dropout": self.final_dropout,
            "weights": self.weights_source,
        }

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> UNetXception:
        # The saved weights are loaded after construction: never fetch ImageNet weights here.
        return cls(**{**config, "weights": None})


def build(
    input_shape: tuple[int, int, int] = DEFAULT_INPUT_SHAPE,
    *,
    weights: str | os.PathLike | None = None,
    **kwargs: Any,
) -> keras.Model:
    """Build :class:`UNetXception` (``start_filters`` and dropout rates as keywords)."""
    return UNetXception(input_shape=input_shape, weights=weights, **kwargs)
