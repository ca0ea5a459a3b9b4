"""Segmentation networks shared by more than one pipeline stage.

Stages may not import each other, so a network used by both breast segmentation and mass
segmentation lives here:

- :mod:`mammo_common.keras.networks.unet5l`: the five-level U-Net (``UNet5L``).
- :mod:`mammo_common.keras.networks.encoders`: the one encoder registry (massseg's encoders,
  massclass's backbones: builder, skip taps P1..P5, preprocessing, input multiple).
- :mod:`mammo_common.keras.networks.weights`: the offline-first ImageNet weights resolver.

This package itself imports no Keras; :func:`validate_input_shape` and
:func:`load_weights_file` are the helpers the networks share (plain Python, also usable by
the stages' own networks).
"""

from __future__ import annotations

import os
from collections.abc import Sequence

__all__ = ["load_weights_file", "validate_input_shape"]


def validate_input_shape(
    input_shape: Sequence[int | None],
    multiple: int,
    network: str,
    *,
    min_channels: int = 1,
) -> tuple[int | None, int | None, int]:
    """Check a channels-last image shape ``(height, width, channels)`` for a network.

    Height and width must be positive multiples of ``multiple`` (the network's total
    down-sampling factor) or ``None`` (any size, fixed at call time); channels must be a
    known integer of at least ``min_channels``.

    Args:
        input_shape: ``(height, width, channels)`` without the batch dimension.
        multiple: Required divisor of height and width.
        network: Network name, used in error messages.
        min_channels: Smallest allowed number of channels.

    Returns:
        The shape as a tuple of ints (``None`` kept for free spatial sides).

    Raises:
        ValueError: If the shape is not three-dimensional, a side is not a positive
            multiple of ``multiple``, or the channel count is invalid.
    """
    try:
        shape = tuple(None if d is None else int(d) for d in input_shape)
    except (TypeError, ValueError) as exc:
        raise ValueError(
            f"{network}: input_shape must be (height, width, channels), got {input_shape!r}"
        ) from exc
    if len(shape) != 3:
        raise ValueError(
            f"{network}: input_shape must be (height, width, channels), got {input_shape!r}"
        )
    height, width, channels = shape
    bad = [
        f"{side}={size}"
        for side, size in (("height", height), ("width", width))
        if size is not None and (size <= 0 or size % multiple != 0)
    ]
    if bad:
        raise ValueError(
            f"{network}: input height and width must be positive multiples of {multiple} "
            f"(the network down-samples by {multiple}); got {', '.join(bad)} in "
            f"input_shape={shape}. Pad or resize the image to a multiple of {multiple}."
        )
    if channels is None or channels < min_channels:
        raise ValueError(
            f"{network}: input channels must be an integer >= {min_channels}, got {channels!r}"
        )
    return height, width, channels


def load_weights_file(model, weights: str | os.PathLike | None, network: str) -> None:
    """Load ``weights`` into ``model`` for a network that has no pretrained weights.

    Networks without a pretrained encoder accept ``weights=None`` (random initialisation)
    or the path of a Keras weights file (``.weights.h5``) saved from the same architecture.
    ``"auto"`` ("ImageNet weights where there are some, else random", the value
    ``params-full.yaml`` gives every mass network) is ``None`` here: such a network has no
    ImageNet set, so it starts from random weights, as an encoder network does when its set is
    not cached.

    Args:
        model: The freshly built Keras model.
        weights: ``None``, ``"auto"`` or a path to an existing weights file.
        network: Network name, used in error messages.

    Raises:
        ValueError: If ``weights`` names a pretrained set (e.g. ``"imagenet"``) or a file
            that does not exist.
    """
    if weights is None or (isinstance(weights, str) and weights.strip().lower() == "auto"):
        return
    path = os.fspath(weights)
    if not os.path.isfile(path):
        raise ValueError(
            f"{network}: has no pretrained weights; weights must be None or the path of a "
            f"weights file saved from this architecture, got {weights!r}"
        )
    model.load_weights(path)
