"""Registry of the ten mass-segmentation networks.

Each network lives in its own module ``massseg.models.<name>`` that defines
``DEFAULT_INPUT_SHAPE`` and ``build(input_shape=DEFAULT_INPUT_SHAPE, *, weights=None,
**kwargs) -> keras.Model``. The registry imports those modules (and so Keras) only when a
network is asked for, so ``import massseg.models`` is cheap and works without a backend.

Example:
    >>> from massseg.models import MODEL_NAMES, build_model
    >>> model = build_model("unet5l", (64, 64, 1), filters=4)  # doctest: +SKIP
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable, Sequence
from types import ModuleType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import keras

__all__ = [
    "MODEL_NAMES",
    "build_model",
    "check_model_kwargs",
    "count_parameters",
    "default_input_shape",
    "describe_models",
    "input_multiple",
    "model_kwargs_names",
    "weights_origin",
]

MODEL_NAMES: tuple[str, ...] = (
    "unet5l",
    "unetpp_xception",
    "unet_xception",
    "unet_vgg16",
    "unet_resnet50",
    "resunet",
    "deeplabv3plus",
    "multiresunet",
    "attention_unet",
    "unetpp",
)
"""Registry names, in the order of docs ARCHITECTURES.md."""

_INPUT_MULTIPLES: dict[str, int] = dict.fromkeys(MODEL_NAMES, 32) | {"unet5l": 16}
"""Height and width of a network's input must be multiples of these. 32 for every
network but unet5l (16), a multiple of each network's own structural requirement
(the module's ``INPUT_MULTIPLE`` where it defines one)."""


def _check_name(name: str) -> str:
    if name not in MODEL_NAMES:
        raise ValueError(
            f"Unknown mass-segmentation model {name!r}; valid names: {', '.join(MODEL_NAMES)}"
        )
    return name


def _module(name: str) -> ModuleType:
    """Import ``massseg.models.<name>`` (this imports Keras)."""
    return importlib.import_module(f"{__name__}.{_check_name(name)}")


#: Keyword arguments every network's ``build`` takes besides its model class's own.
_BUILD_KWARGS = frozenset({"weights", "name", "trainable"})


def model_kwargs_names(name: str) -> tuple[str, ...]:
    """The width and other keyword arguments network ``name`` accepts (imports Keras).

    They are the named parameters of the model classes of the network's module (each class
    passes ``**kwargs`` on to ``keras.Model``, which ignores names it does not know, so a
    misspelt width would otherwise be dropped silently).
    """
    import inspect

    import keras

    names: set[str] = set()
    for obj in vars(_module(name)).values():
        if isinstance(obj, type) and issubclass(obj, keras.Model) and obj is not keras.Model:
            for param in inspect.signature(obj.__init__).parameters.values():
                if param.kind in (param.POSITIONAL_OR_KEYWORD, param.KEYWORD_ONLY):
                    names.add(param.name)
    names.discard("self")
    names.discard("input_shape")
    return tuple(sorted(names - _BUILD_KWARGS))


def check_model_kwargs(name: str, kwargs: Iterable[str]) -> None:
    """Refuse keyword arguments network ``name`` does not know (imports Keras).

    Raises:
        TypeError: Naming the unknown arguments and the accepted ones.
    """
    accepted = model_kwargs_names(name)
    unknown = sorted(set(kwargs) - set(accepted) - _BUILD_KWARGS)
    if unknown:
        raise TypeError(
            f"{name} has no argument {', '.join(repr(k) for k in unknown)}; "
            f"it accepts {', '.join(accepted)}"
        )


def default_input_shape(name: str) -> tuple[int, int, int]:
    """Default ``(height, width, channels)`` of a network (its module's ``DEFAULT_INPUT_SHAPE``).

    Raises:
        ValueError: If ``name`` is not a registry name.
    """
    return tuple(int(d) for d in _module(name).DEFAULT_INPUT_SHAPE)


def input_multiple(name: str) -> int:
    """Height and width of the network's input must be multiples of this (no Keras import).

    Raises:
        ValueError: If ``name`` is not a registry name.
    """
    return _INPUT_MULTIPLES[_check_name(name)]


def build_model(
    name: str, input_shape: Sequence[int | None] | None = None, **kwargs: Any
) -> keras.Model:
    """Build a registered network.

    Args:
        name: One of :data:`MODEL_NAMES`.
        input_shape: ``(height, width, channels)``; ``None`` for the network's default.
            Height and width must be multiples of :func:`input_multiple`.
        **kwargs: Passed to the module's ``build`` (``weights`` and width parameters).

    Returns:
        The (uncompiled) Keras model.

    Raises:
        ValueError: If the name is unknown or the input shape is invalid.
        TypeError: If a keyword argument is not one the network knows.
    """
    module = _module(name)
    if input_shape is None:
        input_shape = module.DEFAULT_INPUT_SHAPE
    from mammo_common.keras.networks import validate_input_shape

    validate_input_shape(input_shape, input_multiple(name), name)
    check_model_kwargs(name, kwargs)
    return module.build(tuple(input_shape), **kwargs)


def count_parameters(model: keras.Model) -> tuple[int, int]:
    """Return ``(total, non_trainable)`` parameter counts of a built model."""
    import numpy as np

    non_trainable = sum(int(np.prod(w.shape)) for w in model.non_trainable_weights)
    return int(model.count_params()), non_trainable


def describe_models(
    names: Iterable[str] | None = None, *, count_params: bool = False
) -> list[dict[str, Any]]:
    """Describe registered networks, e.g. for the ``massseg models`` command.

    Args:
        names: Registry names to describe; ``None`` for all of :data:`MODEL_NAMES`.
        count_params: Build each network (random weights, default input shape) to count
            its parameters. Slow (seconds per network); the Keras session is cleared after
            each build.

    Returns:
        One dict per network: ``name``, ``module``, ``available`` (the module imports),
        ``error`` (import or build error, else ``None``), ``default_input_shape``,
        ``input_multiple``, ``total_params`` and ``non_trainable_params`` (``None`` unless
        counted).

    Raises:
        ValueError: If a name is not a registry name.
    """
    selected = MODEL_NAMES if names is None else tuple(_check_name(n) for n in names)
    rows: list[dict[str, Any]] = []
    for name in selected:
        row: dict[str, Any] = {
            "name": name,
            "module": f"{__name__}.{name}",
            "available": False,
            "error": None,
            "default_input_shape": None,
            "input_multiple": input_multiple(name),
            "total_params": None,
            "non_trainable_params": None,
        }
        try:
            row["default_input_shape"] = default_input_shape(name)
            row["available"] = True
        except ImportError as exc:
            row["error"] = f"{type(exc).__name__}: {exc}"
        if row["available"] and count_params:
            import keras

            try:
                model = build_model(name, weights=None)
                row["total_params"], row["non_trainable_params"] = count_parameters(model)
                del model
            except Exception as exc:
                row["error"] = f"{type(exc).__name__}: {exc}"
            finally:
                keras.backend.clear_session()
        rows.append(row)
    return rows


def encoder_of(name: str) -> str | None:
    """The ImageNet encoder (a :mod:`mammo_common.keras.networks.encoders` name) network ``name``
    is built on, or ``None`` for a network without one (imports Keras).

    Read from the network's module: its ``ENCODER`` constant, or that of the model class it
    defines (``unet_vgg16``, ``unet_resnet50``).
    """
    module = _module(name)
    encoder = getattr(module, "ENCODER", None)
    if not encoder:
        encoder = next(
            (
                value.ENCODER
                for value in vars(module).values()
                if isinstance(value, type)
                and value.__module__ == module.__name__
                and getattr(value, "ENCODER", "")
            ),
            None,
        )
    return str(encoder) if encoder else None


def weights_origin(name: str, weights: Any) -> str:
    """What a ``weights`` request gives network ``name``: ``imagenet``, ``scratch`` or a path.

    ``"auto"`` is resolved as the network's build resolves it: ImageNet for an encoder network
    whose weights are cached or may be downloaded, random initialisation otherwise and for a
    network without an ImageNet encoder (imports Keras).
    """
    if weights is None:
        return "scratch"
    request = weights.strip().lower() if isinstance(weights, str) else None
    if request not in {"auto", "imagenet"}:
        return str(weights)
    encoder = encoder_of(name)
    if encoder is None:
        return "scratch"
    if request == "imagenet":
        return "imagenet"
    from mammo_common.keras.networks.encoders import get_encoder_spec

    return "scratch" if get_encoder_spec(encoder).resolve_weights("auto") is None else "imagenet"
