"""Five-level U-Net (``unet5l``), the mass-segmentation baseline.

A thin registry entry: the network is shared with breast segmentation and lives in
:mod:`mammo_common.keras.networks.unet5l` (class ``UNet5L``, registered as
``mammo_common>UNet5L``). f=16: 1,947,153 parameters, 3,168 non-trainable, at any input
size whose sides are multiples of 16 (one channel by default).
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from mammo_common.keras.networks.unet5l import INPUT_MULTIPLE, UNet5L
from mammo_common.keras.networks.unet5l import build as _build

__all__ = ["DEFAULT_INPUT_SHAPE", "INPUT_MULTIPLE", "UNet5L", "build"]

DEFAULT_INPUT_SHAPE: tuple[int, int, int] = (640, 640, 1)
"""Default ``(height, width, channels)`` for mass segmentation."""


def build(
    input_shape: Sequence[int | None] = DEFAULT_INPUT_SHAPE,
    *,
    weights: str | os.PathLike | None = None,
    **kwargs,
) -> UNet5L:
    """Build a :class:`~mammo_common.keras.networks.unet5l.UNet5L`.

    Args:
        input_shape: ``(height, width, channels)``; sides multiples of 16.
        weights: ``None`` or a ``.weights.h5`` file of this architecture.
        **kwargs: ``filters`` (16), ``dropout`` (0.5), ``name``.

    Returns:
        The model.
    """
    return _build(input_shape, weights=weights, **kwargs)
