"""DeepLabV3+ with a ResNet50 encoder and squeeze-and-excitation blocks.

Encoder taps from the registry's ResNet50 (:mod:`mammo_common.keras.networks.encoders`).
High-level features P4 ``conv4_block6_out`` (stride 16) go through ASPP: image pooling
(global average -> 1x1 conv-BN-ReLU -> bilinear upsampling back), a 1x1 conv and 3x3
convs at dilation 6, 12 and 18 (all without bias, each BN-ReLU), concatenated -> 1x1
conv-BN-ReLU -> bilinear x4. Low-level features ``conv2_block2_out`` (stride 4) -> 1x1
conv48-BN-ReLU. Concatenate -> squeeze-excite -> [3x3 conv-BN-ReLU] x 2 (no bias) ->
squeeze-excite -> bilinear x4 -> 1x1 conv -> sigmoid. Squeeze-excite (ratio 8): global
average -> dense C/8 ReLU -> dense C sigmoid (no biases, he_normal) -> channel multiply.
At 640x640x3: 17,869,697 parameters, 34,784 non-trainable.

Layer names: ``aspp_pool``, ``aspp_pool_conv``/``_bn``/``_relu``/``_up``, ``aspp_1x1_*``,
``aspp_d6_*``, ``aspp_d12_*``, ``aspp_d18_*``, ``aspp_concat``, ``aspp_proj_*``,
``aspp_up``; ``low_conv``/``_bn``/``_relu``; ``decoder_concat``; ``se1_*``;
``decoder_conv1``/``_bn1``/``_relu1``, ``decoder_conv2``...; ``se2_*``; ``decoder_up``;
``mask``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import keras

from mammo_common.keras.networks.encoders import build_encoder, check_input_shape, get_encoder_spec

__all__ = ["DEFAULT_INPUT_SHAPE", "DeepLabV3Plus", "build", "squeeze_excite"]

DEFAULT_INPUT_SHAPE: tuple[int, int, int] = (640, 640, 3)

ENCODER = "resnet50"
#: ASPP input: the stride-16 level (``conv4_block6_out``).
HIGH_LEVEL = "P4"
#: Low-level features: the second stride-4 block (a tap besides P2 = ``conv2_block3_out``).
LOW_LEVEL = "conv2_block2_out"


def _conv_bn_relu(x: Any, filters: int, kernel: int, name: str, dilation: int = 1) -> Any:
    x = keras.layers.Conv2D(
        filters,
        kernel,
        padding="same",
        dilation_rate=dilation,
        use_bias=False,
        name=f"{name}_conv",
    )(x)
    x = keras.layers.BatchNormalization(name=f"{name}_bn")(x)
    return keras.layers.ReLU(name=f"{name}_relu")(x)


def squeeze_excite(x: Any, ratio: int, name: str) -> Any:
    """Channel attention: GAP -> dense C/ratio ReLU -> dense C sigmoid -> multiply."""
    channels = int(x.shape[-1])
    se = keras.layers.GlobalAveragePooling2D(keepdims=True, name=f"{name}_pool")(x)
    se = keras.layers.Dense(
        max(1, channels // ratio),
        activation="relu",
        use_bias=False,
        kernel_initializer="he_normal",
        name=f"{name}_reduce",
    )(se)
    se = keras.layers.Dense(
        channels,
        activation="sigmoid",
        use_bias=False,
        kernel_initializer="he_normal",
        name=f"{name}_expand",
    )(se)
    return keras.layers.Multiply(name=f"{name}_scale")([x, se])


def _aspp(x: Any, filters: int, rates: Sequence[int]) -> Any:
    h, w = int(x.shape[1]), int(x.shape[2])
    pooled = keras.layers.GlobalAveragePooling2D(keepdims=True, name="aspp_pool")(x)
    pooled = _conv_bn_relu(pooled, filters, 1, "aspp_pool")
    pooled = keras.layers.UpSampling2D((h, w), interpolation="bilinear", name="aspp_pool_up")(
        pooled
    )
    branches = [pooled, _conv_bn_relu(x, filters, 1, "aspp_1x1")]
    branches += [_conv_bn_relu(x, filters, 3, f"aspp_d{r}", dilation=r) for r in rates]
    y = keras.layers.Concatenate(name="aspp_concat")(branches)
    return _conv_bn_relu(y, filters, 1, "aspp_proj")


@keras.saving.register_keras_serializable(package="massseg")
class DeepLabV3Plus(keras.Model):
    """DeepLabV3+ (ResNet50 encoder, output stride 16) with squeeze-excite decoder.

    Args:
        input_shape: ``(H, W, 3)`` with H and W multiples of 32.
        aspp_filters: Width of the ASPP branches and of the decoder convolutions (256).
        low_level_filters: Width of the low-level projection (48).
        atrous_rates: Dilation rates of the three 3x3 ASPP branches.
        se_ratio: Squeeze-excite reduction ratio.
        weights: Encoder weights: None, ``"imagenet"``, ``"auto"`` or a file path.
        name: Model name.
        **kwargs: Passed to ``keras.Model``.
    """

    def __init__(
        self,
        input_shape: tuple[int, int, int] = DEFAULT_INPUT_SHAPE,
        aspp_filters: int = 256,
        low_level_filters: int = 48,
        atrous_rates: Sequence[int] = (6, 12, 18),
        se_ratio: int = 8,
        weights: str | os.PathLike | None = None,
        name: str = "deeplabv3plus",
        **kwargs: Any,
    ) -> None:
        spec = get_encoder_spec(ENCODER)
        shape = check_input_shape(
            input_shape, multiple=spec.input_multiple, channels=spec.channels
        )
        inputs = keras.Input(shape=shape, name="image")
        _, taps = build_encoder(ENCODER, inputs, taps=[HIGH_LEVEL, LOW_LEVEL], weights=weights)
        rates = tuple(int(r) for r in atrous_rates)

        x_a = _aspp(taps[HIGH_LEVEL], aspp_filters, rates)
        x_a = keras.layers.UpSampling2D(4, interpolation="bilinear", name="aspp_up")(x_a)
        x_b = _conv_bn_relu(taps[LOW_LEVEL], low_level_filters, 1, "low")

        x = keras.layers.Concatenate(name="decoder_concat")([x_a, x_b])
        x = squeeze_excite(x, se_ratio, "se1")
        for k in (1, 2):
            x = keras.layers.Conv2D(
                aspp_filters, 3, padding="same", use_bias=False, name=f"decoder_conv{k}"
            )(x)
            x = keras.layers.BatchNormalization(name=f"decoder_bn{k}")(x)
            x = keras.layers.ReLU(name=f"decoder_relu{k}")(x)
        x = squeeze_excite(x, se_ratio, "se2")
        x = keras.layers.UpSampling2D(4, interpolation="bilinear", name="decoder_up")(x)
        outputs = keras.layers.Conv2D(1, 1, activation="sigmoid", dtype="float32", name="mask")(x)
        super().__init__(inputs=inputs, outputs=outputs, name=name, **kwargs)

        self.input_shape_ = shape
        self.aspp_filters = aspp_filters
        self.low_level_filters = low_level_filters
        self.atrous_rates = rates
        self.se_ratio = se_ratio
        self.weights_source = None if weights is None else os.fspath(weights)

    def get_config(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "trainable": self.trainable,
            "input_shape": list(self.input_shape_),
            "aspp_filters": self.aspp_filters,
            "low_level_filters": self.low_level_filters,
            "atrous_rates": list(self.atrous_rates),
            "se_ratio": self.se_ratio,
            "weights": self.weights_source,
        }

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> DeepLabV3Plus:
        # The saved weights are loaded after construction: never fetch ImageNet weights here.
        return cls(**{**config, "weights": None})


def build(
    input_shape: tuple[int, int, int] = DEFAULT_INPUT_SHAPE,
    *,
    weights: str | os.PathLike | None = None,
    **kwargs: Any,
) -> keras.Model:
    """Build :class:`DeepLabV3Plus` (``aspp_filters``, ``low_level_filters``...)."""
    return DeepLabV3Plus(input_shape=input_shape, weights=weights, **kwargs)
