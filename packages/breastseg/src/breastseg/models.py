"""Registry of breast-segmentation networks: ``build_model(name, input_shape=..., **kw)``.

Only the five-level U-Net of the reference is registered (``unet5l``, 1,947,153 parameters at
``filters=16`` for any input size); it lives in :mod:`mammo_common.keras.networks.unet5l` because
the mass-segmentation stage uses it as its baseline too.

Example:
    >>> from breastseg.models import build_model
    >>> model = build_model("unet5l", input_shape=(1024, 768, 1))  # doctest: +SKIP
    >>> model.count_params()  # doctest: +SKIP
    1947153
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

__all__ = ["DEFAULT_INPUT_SHAPE", "MODELS", "build_model", "model_names", "register_networks"]

#: Reference input of breast segmentation: 1024x768, one channel.
DEFAULT_INPUT_SHAPE: tuple[int, int, int] = (1024, 768, 1)


def _unet5l(input_shape: Sequence[int | None], **kwargs: Any):
    from mammo_common.keras.networks import unet5l

    return unet5l.build(input_shape, **kwargs)


#: name -> builder(input_shape, **kwargs) returning a Keras model.
MODELS: dict[str, Callable[..., Any]] = {"unet5l": _unet5l}

#: name -> module that defines (and registers with Keras) the network's classes.
MODULES: dict[str, str] = {"unet5l": "mammo_common.keras.networks.unet5l"}


def register_networks() -> None:
    """Import every registered network's module so ``.keras`` files of it can be loaded.

    Keras finds custom classes (``UNet5L``) by their registered name only once the module that
    registers them has been imported; loading a model folder in a fresh process needs this.
    """
    import importlib

    for module in MODULES.values():
        importlib.import_module(module)


def model_names() -> list[str]:
    """Names of the registered networks."""
    return sorted(MODELS)


def build_model(
    name: str = "unet5l",
    input_shape: Sequence[int | None] = DEFAULT_INPUT_SHAPE,
    **kwargs: Any,
):
    """Build a registered breast-segmentation network.

    Args:
        name: Registry name (see :func:`model_names`).
        input_shape: ``(height, width, channels)``; sides multiples of 16 for ``unet5l``.
        **kwargs: Width and options of the network (``filters``, ``dropout``, ``weights``).

    Returns:
        An uncompiled ``keras.Model`` with one sigmoid output channel.

    Raises:
        ValueError: For an unknown name (the message lists the valid ones) or a bad shape.
    """
    try:
        builder = MODELS[name]
    except KeyError:
        raise ValueError(
            f"unknown breast-segmentation model {name!r}; valid names: {', '.join(model_names())}"
        ) from None
    return builder(tuple(input_shape), **kwargs)
