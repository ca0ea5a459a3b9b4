"""Resolution of ``keras.applications`` weights, offline-first.

The pipeline must build on machines without network access. ``resolve_weights`` turns a
user-facing weights request into the value handed to ``keras.applications`` and
``build_application`` wraps the application constructors with clear errors:

* ``None``: random initialisation (train from scratch).
* a file path: that file (it must exist).
* ``"imagenet"``: ImageNet weights; taken from the Keras cache
  (``$KERAS_HOME/models`` or ``~/.keras/models``) or downloaded by Keras. A failed
  download raises ``RuntimeError`` explaining how to supply the file by hand.
* ``"auto"`` (default): ImageNet weights when the cache holds the file, else random
  initialisation, with one log message per application and process (logger ``"mammo"``).
  Setting ``MAMMO_ALLOW_WEIGHT_DOWNLOAD=1`` lets ``"auto"`` download instead.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import keras

__all__ = [
    "ALLOW_DOWNLOAD_ENV",
    "APPLICATIONS",
    "ApplicationSpec",
    "build_application",
    "cached_weights_path",
    "canonical_app_name",
    "keras_models_dir",
    "resolve_weights",
    "weights_file_name",
]

logger = logging.getLogger("mammo")

#: Environment variable that lets ``weights="auto"`` download ImageNet weights.
ALLOW_DOWNLOAD_ENV = "MAMMO_ALLOW_WEIGHT_DOWNLOAD"

_BASE_URL = "https://storage.googleapis.com/tensorflow/keras-applications/"


@dataclasses.dataclass(frozen=True)
class ApplicationSpec:
    """A ``keras.applications`` model and its ImageNet weight files.

    Attributes:
        name: Canonical name (``"xception"``, ``"vgg16"``...).
        builder: Name of the constructor in ``keras.applications``.
        url_dir: Sub-folder of the Keras weights bucket.
        top_file: Weight file name with the classification top.
        top_hash: MD5 of ``top_file`` as Keras checks it.
        notop_file: Weight file name without the top (``include_top=False``).
        notop_hash: MD5 of ``notop_file``.
    """

    name: str
    builder: str
    url_dir: str
    top_file: str
    top_hash: str
    notop_file: str
    notop_hash: str

    def constructor(self) -> Callable[..., keras.Model]:
        """Return the ``keras.applications`` constructor."""
        return getattr(keras.applications, self.builder)


def _spec(name: str, builder: str, url_dir: str, top_hash: str, notop_hash: str) -> ApplicationSpec:
    stem = f"{name}_weights_tf_dim_ordering_tf_kernels"
    return ApplicationSpec(
        name=name,
        builder=builder,
        url_dir=url_dir,
        top_file=f"{stem}.h5",
        top_hash=top_hash,
        notop_file=f"{stem}_notop.h5",
        notop_hash=notop_hash,
    )


#: The applications the pipeline uses, by canonical name. File names and hashes are the
#: ones ``keras.applications`` uses, so files in the Keras cache are shared with it.
APPLICATIONS: dict[str, ApplicationSpec] = {
    s.name: s
    for s in (
        _spec(
            "xception",
            "Xception",
            "xception",
            "0a58e3b7378bc2990ea3b43d5981f1f6",
            "b0042744bf5b25fce3cb969f33bebb97",
        ),
        _spec(
            "vgg16",
            "VGG16",
            "vgg16",
            "64373286793e3c8b2b4e3219cbf3544b",
            "6d6bbae143d832006294945121d1f1fc",
        ),
        _spec(
            "resnet50",
            "ResNet50",
            "resnet",
            "2cb95161c43110f7111970584f804107",
            "4d473c1dd8becc155b73f8504c6f6626",
        ),
        _spec(
            "resnet50v2",
            "ResNet50V2",
            "resnet",
            "3ef43a0b657b3be2300d5770ece849e0",
            "fac2f116257151a9d068a22e544a4917",
        ),
        _spec(
            "inception_v3",
            "InceptionV3",
            "inception_v3",
            "9a0d58056eeedaa3f26cb7ebd46da564",
            "bcbd6486424b2319ff4ef7d526e38f63",
        ),
    )
}

_ALIASES = {"inceptionv3": "inception_v3", "resnet50_v2": "resnet50v2"}

# Applications for which the "no weights offline" message was already logged.
_logged_offline: set[str] = set()


def canonical_app_name(app_name: str) -> str:
    """Normalise an application name (case, ``-``, aliases) to a key of ``APPLICATIONS``.

    Raises:
        ValueError: If the name is unknown; the message lists the valid names.
    """
    key = str(app_name).strip().lower().replace("-", "_")
    key = _ALIASES.get(key, key)
    if key not in APPLICATIONS:
        raise ValueError(
            f"Unknown keras.applications model {app_name!r}; "
            f"valid names: {', '.join(sorted(APPLICATIONS))}."
        )
    return key


def weights_file_name(app_name: str, include_top: bool = False) -> str:
    """Return the ImageNet weight file name Keras caches for ``app_name``."""
    spec = APPLICATIONS[canonical_app_name(app_name)]
    return spec.top_file if include_top else spec.notop_file


def keras_models_dir() -> Path:
    """Return the Keras cache folder for model weights.

    ``$KERAS_HOME/models`` when ``KERAS_HOME`` is set (read now, not at import), else
    ``~/.keras/models`` (``/tmp/.keras/models`` when the home folder is not writable, as
    Keras does).
    """
    home = os.environ.get("KERAS_HOME")
    if home:
        return Path(home).expanduser() / "models"
    base = Path("~").expanduser()
    if not os.access(base, os.W_OK):
        base = Path("/tmp")
    return base / ".keras" / "models"


def cached_weights_path(app_name: str, include_top: bool = False) -> Path | None:
    """Return the cached ImageNet weight file of ``app_name`` if it exists, else None."""
    path = keras_models_dir() / weights_file_name(app_name, include_top)
    return path if path.is_file() else None


def _download_allowed() -> bool:
    return os.environ.get(ALLOW_DOWNLOAD_ENV, "").strip().lower() in {"1", "true", "yes"}


def resolve_weights(
    app_name: str, weights: str | os.PathLike | None = "auto", *, include_top: bool = False
) -> str | None:
    """Resolve a weights request into the ``weights=`` value for ``keras.applications``.

    Args:
        app_name: Application name (``"xception"``, ``"vgg16"``, ``"resnet50"``,
            ``"resnet50v2"``, ``"inception_v3"``).
        weights: ``None`` (scratch), ``"imagenet"``, ``"auto"`` or a path to a weight file.
        include_top: Whether the classification top is built (selects the cache file name).

    Returns:
        ``None``, ``"imagenet"`` or the path of an existing weight file.

    Raises:
        ValueError: For an unknown application name.
        FileNotFoundError: If ``weights`` is a path that does not exist.
    """
    canonical_app_name(app_name)
    if weights is None:
        return None
    if isinstance(weights, str) and weights.strip().lower() in {"imagenet", "auto"}:
        mode = weights.strip().lower()
        if mode == "imagenet":
            return "imagenet"
        if cached_weights_path(app_name, include_top) is not None or _download_allowed():
            return "imagenet"
        key = canonical_app_name(app_name)
        if key not in _logged_offline:
            _logged_offline.add(key)
            logger.warning(
                "ImageNet weights for %s are unavailable offline (no %s in %s); the encoder "
                "is initialised randomly and trains from scratch. Put the file there, pass "
                "a weights path, or set %s=1 to allow downloading.",
                key,
                weights_file_name(key, include_top),
                keras_models_dir(),
                ALLOW_DOWNLOAD_ENV,
            )
        return None
    path = Path(os.fspath(weights)).expanduser()
    if not path.is_file():
        raise FileNotFoundError(
            f"Weights file for {app_name} not found: {str(path)!r} "
            "(expected None, 'imagenet', 'auto' or the path of an existing .h5/.weights.h5 "
            "file)."
        )
    return str(path)


def _obtain_imagenet_file(app_name: str, include_top: bool) -> str:
    """Return a local path to the ImageNet weight file, downloading it if needed."""
    cached = cached_weights_path(app_name, include_top)
    if cached is not None:
        return str(cached)
    spec = APPLICATIONS[canonical_app_name(app_name)]
    fname = spec.top_file if include_top else spec.notop_file
    fhash = spec.top_hash if include_top else spec.notop_hash
    models_dir = keras_models_dir()
    try:
        return keras.utils.get_file(
            fname,
            f"{_BASE_URL}{spec.url_dir}/{fname}",
            cache_dir=str(models_dir.parent),
            cache_subdir=models_dir.name,
            file_hash=fhash,
        )
    except Exception as exc:
        raise RuntimeError(
            f"ImageNet weights for {spec.name} could not be obtained ({exc}). Offline, put "
            f"{fname} into {models_dir} (or ~/.keras/models), or pass weights=<path to the "
            "file>, or weights=None to train from scratch."
        ) from exc


def build_application(
    app_name: str,
    input_tensor: Any = None,
    input_shape: tuple[int | None, ...] | None = None,
    weights: str | os.PathLike | None = "auto",
    include_top: bool = False,
    **kwargs: Any,
) -> keras.Model:
    """Build a ``keras.applications`` model with offline-aware weight resolution.

    Args:
        app_name: Application name, see :data:`APPLICATIONS`.
        input_tensor: Optional Keras tensor (e.g. ``keras.Input``) to build the model on.
        input_shape: Optional input shape (without batch) when no tensor is given.
        weights: ``None``, ``"imagenet"``, ``"auto"`` or a weight file path; see
            :func:`resolve_weights`.
        include_top: Whether to include the ImageNet classification top.
        **kwargs: Passed to the constructor (e.g. ``pooling``, ``name``).

    Returns:
        The application model.

    Raises:
        ValueError: Unknown application name or arguments Keras rejects.
        FileNotFoundError: Missing weights file.
        RuntimeError: ImageNet weights requested but neither cached nor downloadable.
    """
    key = canonical_app_name(app_name)
    resolved = resolve_weights(key, weights, include_top=include_top)
    if resolved == "imagenet":
        # A local file path loads exactly like "imagenet" in keras.applications and avoids
        # Keras looking in another cache folder than the one checked here.
        resolved = _obtain_imagenet_file(key, include_top)
    constructor = APPLICATIONS[key].constructor()
    try:
        return constructor(
            include_top=include_top,
            weights=resolved,
            input_tensor=input_tensor,
            input_shape=input_shape,
            **kwargs,
        )
    except ValueError as exc:
        raise ValueError(
            f"Could not build keras.applications.{constructor.__name__}: {exc}"
        ) from exc
