"""Registry of ImageNet encoders for segmentation networks (segmentation_models style).

Each :class:`EncoderSpec` names a ``keras.applications`` model, the layers whose outputs
serve as skip connections ("taps") with their stride relative to the input, the multiple
the input sides must have, and the ImageNet preprocessing mode of the application.

:func:`build_encoder` builds the application on a given input tensor and returns the tap
tensors by layer name, padded where needed: Xception's valid convolutions make its stride-2
and stride-4 maps a few pixels short (317 and 159 at 640), so they are zero-padded on the
top and left to exactly ``H / stride`` x ``W / stride``, for any input whose sides are
multiples of 32.

Only ``keras`` and ``keras.ops`` are used, so the encoders run under any Keras backend.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterable, Sequence
from typing import Any

import keras

from mammo_common.keras.weights import build_application

__all__ = [
    "ENCODERS",
    "INPUT_TAP",
    "EncoderSpec",
    "build_encoder",
    "check_input_shape",
    "get_encoder_spec",
    "pad_to_stride",
    "register_encoder",
]

#: Tap name that stands for the encoder input tensor itself (stride 1).
INPUT_TAP = "input"


@dataclasses.dataclass(frozen=True)
class EncoderSpec:
    """Description of one encoder.

    Attributes:
        name: Registry name.
        application: ``keras.applications`` name understood by ``build_application``.
        taps: ``(layer name, stride)`` pairs, finest first. Strides are relative to the
            input; a tap may be a few pixels smaller than ``input / stride`` (valid
            padding) and is then padded by :func:`pad_to_stride`.
        input_multiple: The input height and width must be multiples of this.
        preprocessing: ImageNet preprocessing mode of the application (``"tf"``: scale to
            [-1, 1]; ``"caffe"``: BGR mean subtraction; ``"torch"``). The reference
            pipeline feeds [0, 1] images without it; kept as metadata.
        channels: Number of input channels the ImageNet weights expect.
    """

    name: str
    application: str
    taps: tuple[tuple[str, int], ...]
    input_multiple: int = 32
    preprocessing: str = "tf"
    channels: int = 3

    @property
    def strides(self) -> dict[str, int]:
        """Map of tap layer name to stride (``"input"`` has stride 1)."""
        return {INPUT_TAP: 1, **dict(self.taps)}

    def taps_at(self, stride: int) -> list[str]:
        """Return the tap layer names at ``stride``."""
        return [layer for layer, s in self.taps if s == stride]


ENCODERS: dict[str, EncoderSpec] = {}


def register_encoder(spec: EncoderSpec, *, overwrite: bool = False) -> EncoderSpec:
    """Add ``spec`` to :data:`ENCODERS` and return it.

    Raises:
        ValueError: If the name is taken and ``overwrite`` is False.
    """
    if spec.name in ENCODERS and not overwrite:
        raise ValueError(f"Encoder {spec.name!r} is already registered.")
    ENCODERS[spec.name] = spec
    return spec


register_encoder(
    EncoderSpec(
        name="xception",
        application="xception",
        taps=(
            ("block2_sepconv2_bn", 2),
            ("block3_sepconv2_bn", 4),
            ("block4_sepconv2_bn", 8),
            ("block13_sepconv2_bn", 16),
            ("block14_sepconv2_act", 32),
        ),
        preprocessing="tf",
    )
)
register_encoder(
    EncoderSpec(
        name="vgg16",
        application="vgg16",
        taps=(
            ("block1_conv2", 1),
            ("block2_conv2", 2),
            ("block3_conv3", 4),
            ("block4_conv3", 8),
            ("block5_conv3", 16),
            ("block5_pool", 32),
        ),
        preprocessing="caffe",
    )
)
register_encoder(
    EncoderSpec(
        name="resnet50",
        application="resnet50",
        taps=(
            ("conv1_relu", 2),
            ("conv2_block2_out", 4),
            ("conv2_block3_out", 4),
            ("conv3_block4_out", 8),
            ("conv4_block6_out", 16),
            ("conv5_block3_out", 32),
        ),
        preprocessing="caffe",
    )
)


def get_encoder_spec(name: str) -> EncoderSpec:
    """Return the registered encoder ``name``.

    Raises:
        ValueError: If unknown; the message lists the valid names.
    """
    key = str(name).strip().lower()
    if key not in ENCODERS:
        raise ValueError(
            f"Unknown encoder {name!r}; valid encoders: {', '.join(sorted(ENCODERS))}."
        )
    return ENCODERS[key]


def check_input_shape(
    input_shape: Sequence[int | None], *, multiple: int = 32, channels: int | None = None
) -> tuple[int, int, int]:
    """Validate an ``(H, W, C)`` input shape for an encoder network.

    Args:
        input_shape: Shape without the batch axis.
        multiple: Height and width must be positive multiples of this.
        channels: Required channel count, or None for any.

    Returns:
        The shape as a tuple of ints.

    Raises:
        ValueError: If the shape is malformed, not a multiple, or has the wrong channels.
    """
    shape = tuple(input_shape)
    if len(shape) != 3 or any(d is None for d in shape):
        raise ValueError(
            f"input_shape must be a concrete (height, width, channels); got {input_shape!r}."
        )
    h, w, c = (int(d) for d in shape)
    if h <= 0 or w <= 0 or h % multiple or w % multiple:
        raise ValueError(
            f"Input height and width must be positive multiples of {multiple}; got {h}x{w}. "
            f"Pad or resize the image (e.g. to {max(multiple, -(-h // multiple) * multiple)}x"
            f"{max(multiple, -(-w // multiple) * multiple)})."
        )
    if channels is not None and c != channels:
        raise ValueError(f"This network expects {channels} input channels; got {c}.")
    return h, w, c


def pad_to_stride(
    tensor: Any, input_hw: tuple[int, int], stride: int, *, name: str | None = None
) -> Any:
    """Zero-pad a feature map on the top and left to ``(H // stride, W // stride)``.

    Args:
        tensor: Symbolic ``(batch, h, w, c)`` Keras tensor.
        input_hw: Height and width of the network input.
        stride: Stride of the map relative to the input.
        name: Name of the padding layer (only created when padding is needed).

    Returns:
        ``tensor`` unchanged when it has the target size, else the padded tensor.

    Raises:
        ValueError: If the map is larger than the target, or not statically shaped.
    """
    target_h, target_w = input_hw[0] // stride, input_hw[1] // stride
    h, w = tensor.shape[1], tensor.shape[2]
    if h is None or w is None:
        raise ValueError(f"Cannot pad a map of unknown spatial size {tensor.shape}.")
    dh, dw = target_h - h, target_w - w
    if dh < 0 or dw < 0:
        raise ValueError(
            f"Feature map {h}x{w} is larger than the stride-{stride} target "
            f"{target_h}x{target_w} of a {input_hw[0]}x{input_hw[1]} input."
        )
    if dh == 0 and dw == 0:
        return tensor
    return keras.layers.ZeroPadding2D(padding=((dh, 0), (dw, 0)), name=name)(tensor)


def build_encoder(
    name: str,
    inputs: Any,
    *,
    taps: Iterable[str] | None = None,
    weights: str | os.PathLike | None = "auto",
    pad: bool = True,
) -> tuple[keras.Model, dict[str, Any]]:
    """Build encoder ``name`` on ``inputs`` and return its tap tensors.

    Args:
        name: Registered encoder name (see :data:`ENCODERS`).
        inputs: A ``keras.Input`` tensor ``(batch, H, W, C)`` with static H and W that are
            multiples of the encoder's ``input_multiple``.
        taps: Layer names to return (``"input"`` for the input tensor itself); default:
            all taps of the spec.
        weights: ``None``, ``"imagenet"``, ``"auto"`` or a weight file path, see
            :func:`mammo_common.keras.weights.resolve_weights`.
        pad: Zero-pad taps on the top/left to ``H / stride`` (padding layers are named
            ``"<layer>_pad"``).

    Returns:
        ``(encoder model, {tap name: tensor})``; the tensors are connected to ``inputs`` so
        they can feed a functional model built on ``inputs``.

    Raises:
        ValueError: Unknown encoder or tap, or an invalid input shape.
    """
    spec = get_encoder_spec(name)
    h, w, _ = check_input_shape(tuple(inputs.shape[1:]), multiple=spec.input_multiple)
    strides = spec.strides
    wanted = list(strides) if taps is None else list(taps)
    unknown = [t for t in wanted if t not in strides]
    if unknown:
        raise ValueError(
            f"Unknown taps {unknown} for encoder {spec.name!r}; valid taps: {', '.join(strides)}."
        )
    model = build_application(spec.application, input_tensor=inputs, weights=weights)
    features: dict[str, Any] = {}
    for tap in wanted:
        tensor = inputs if tap == INPUT_TAP else model.get_layer(tap).output
        if pad:
            tensor = pad_to_stride(tensor, (h, w), strides[tap], name=f"{tap}_pad")
        features[tap] = tensor
    return model, features
