"""ImageNet weights of the encoder registry, offline-first: the one resolver.

The pipeline must build on machines without network access. :func:`resolve` turns a
user-facing weights request for an encoder of :mod:`mammo_common.keras.networks.encoders` into the
``weights=`` value handed to ``keras.applications``:

* ``None``: random initialisation (train from scratch).
* a file path: that file (it must exist).
* ``"imagenet"``: ImageNet weights. For an encoder whose weight files are registered
  (:class:`ImageNetFiles`: Xception, VGG16, ResNet50, ResNet50V2, InceptionV3) they are taken
  from the Keras cache (``$KERAS_HOME/models`` or ``~/.keras/models``) or downloaded into it
  (:func:`obtain_imagenet_file`; a failed download raises ``RuntimeError`` explaining how to
  supply the file by hand); for any other ``keras.applications`` model Keras looks them up
  or downloads them itself.
* ``"auto"`` (default): ImageNet weights when the cache holds the registered file, else
  random initialisation, with one log message per encoder and process (logger ``"mammo"``).
  Encoders without registered files are not looked up in the cache: they start from
  scratch, saying so once. Setting ``MAMMO_ALLOW_WEIGHT_DOWNLOAD=1`` lets ``"auto"``
  download instead.

The name-based functions (:func:`resolve_weights`, :func:`build_application`,
:func:`weights_file_name`, :func:`cached_weights_path`, :func:`canonical_app_name`) take the
encoders with registered weight files by name and look them up in the encoder registry.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import keras

if TYPE_CHECKING:
    from mammo_common.keras.networks.encoders import Encoder

__all__ = [
    "ALLOW_DOWNLOAD_ENV",
    "ImageNetFiles",
    "build_application",
    "cached_weights_path",
    "canonical_app_name",
    "download_allowed",
    "keras_models_dir",
    "obtain_imagenet_file",
    "resolve",
    "resolve_weights",
    "weights_file_name",
]

logger = logging.getLogger("mammo")

#: Environment variable that lets ``weights="auto"`` download ImageNet weights.
ALLOW_DOWNLOAD_ENV = "MAMMO_ALLOW_WEIGHT_DOWNLOAD"

_BASE_URL = "https://storage.googleapis.com/tensorflow/keras-applications/"

# Encoders for which the "no weights offline" message was already logged.
_logged_offline: set[str] = set()


@dataclasses.dataclass(frozen=True)
class ImageNetFiles:
    """The ImageNet weight files of a ``keras.applications`` model, as Keras caches them.

    File names and hashes are the ones ``keras.applications`` uses, so files in the Keras
    cache are shared with it.

    Attributes:
        stem: File name stem (``"inception_v3"``); the files are
            ``<stem>_weights_tf_dim_ordering_tf_kernels[_notop].h5``.
        url_dir: Sub-folder of the Keras weights bucket.
        top_hash: MD5 of the file with the classification top, as Keras checks it.
        notop_hash: MD5 of the file without the top (``include_top=False``).
    """

    stem: str
    url_dir: str
    top_hash: str
    notop_hash: str

    def file_name(self, include_top: bool = False) -> str:
        """Return the weight file name (with or without the classification top)."""
        suffix = "" if include_top else "_notop"
        return f"{self.stem}_weights_tf_dim_ordering_tf_kernels{suffix}.h5"

    def file_hash(self, include_top: bool = False) -> str:
        """Return the MD5 of :meth:`file_name`."""
        return self.top_hash if include_top else self.notop_hash

    def cached(self, include_top: bool = False) -> Path | None:
        """Return the file in the Keras cache if it is there, else None."""
        path = keras_models_dir() / self.file_name(include_top)
        return path if path.is_file() else None


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


def download_allowed() -> bool:
    """Whether ``MAMMO_ALLOW_WEIGHT_DOWNLOAD`` lets ``weights="auto"`` download."""
    return os.environ.get(ALLOW_DOWNLOAD_ENV, "").strip().lower() in {"1", "true", "yes"}


def _log_scratch_once(name: str, files: ImageNetFiles | None, include_top: bool) -> None:
    if name in _logged_offline:
        return
    _logged_offline.add(name)
    if files is not None:
        logger.warning(
            "ImageNet weights for %s are unavailable offline (no %s in %s); the encoder "
            "is initialised randomly and trains from scratch. Put the file there, pass "
            "a weights path, or set %s=1 to allow downloading.",
            name,
            files.file_name(include_top),
            keras_models_dir(),
            ALLOW_DOWNLOAD_ENV,
        )
    else:
        logger.warning(
            "%s: weights='auto' does not look for cached ImageNet weights of this backbone "
            "offline; it is initialised randomly. Pass weights='imagenet' (uses the Keras "
            "cache or downloads), a weights file, or set %s=1.",
            name,
            ALLOW_DOWNLOAD_ENV,
        )


def resolve(
    name: str,
    weights: str | os.PathLike | None = "auto",
    *,
    files: ImageNetFiles | None = None,
    include_top: bool = False,
) -> str | None:
    """Resolve a weights request into the ``weights=`` value for ``keras.applications``.

    Args:
        name: Encoder name (for messages and the once-per-process offline message).
        weights: ``None`` (scratch), ``"imagenet"``, ``"auto"`` or a path to a weight file.
        files: The encoder's registered ImageNet files, or None when they are not known
            (``"auto"`` then starts from scratch unless downloads are allowed).
        include_top: Whether the classification top is built (selects the cache file).

    Returns:
        ``None``, ``"imagenet"`` or the path of an existing weight file.

    Raises:
        FileNotFoundError: If ``weights`` is a path that does not exist.
    """
    if weights is None:
        return None
    if isinstance(weights, str) and weights.strip().lower() in {"imagenet", "auto"}:
        if weights.strip().lower() == "imagenet":
            return "imagenet"
        cached = files is not None and files.cached(include_top) is not None
        if cached or download_allowed():
            return "imagenet"
        _log_scratch_once(name, files, include_top)
        return None
    path = Path(os.fspath(weights)).expanduser()
    if not path.is_file():
        raise FileNotFoundError(
            f"Weights file for {name} not found: {str(path)!r} "
            "(expected None, 'imagenet', 'auto' or the path of an existing .h5/.weights.h5 "
            "file)."
        )
    return str(path)


def obtain_imagenet_file(name: str, files: ImageNetFiles, include_top: bool = False) -> str:
    """Return a local path to the ImageNet weight file, downloading it into the cache if needed.

    Raises:
        RuntimeError: If the file is not cached and cannot be downloaded; the message says
            where to put it by hand.
    """
    cached = files.cached(include_top)
    if cached is not None:
        return str(cached)
    fname = files.file_name(include_top)
    models_dir = keras_models_dir()
    try:
        return keras.utils.get_file(
            fname,
            f"{_BASE_URL}{files.url_dir}/{fname}",
            cache_dir=str(models_dir.parent),
            cache_subdir=models_dir.name,
            file_hash=files.file_hash(include_top),
        )
    except Exception as exc:
        raise RuntimeError(
            f"ImageNet weights for {name} could not be obtained ({exc}). Offline, put "
            f"{fname} into {models_dir} (or ~/.keras/models), or pass weights=<path to the "
            "file>, or weights=None to train from scratch."
        ) from exc


# ------------------------------------------------------------------ by name, over the registry


def _application(app_name: str) -> tuple[Encoder, ImageNetFiles]:
    """The registered encoder ``app_name`` with its ImageNet files.

    Raises:
        ValueError: If no encoder of that name has registered weight files; the message
            lists the valid names.
    """
    from mammo_common.keras.networks import encoders

    try:
        encoder = encoders.get_encoder(app_name)
    except ValueError:
        encoder = None
    if encoder is None or encoder.imagenet is None:
        known = {e.imagenet.stem for e in encoders.ENCODERS.values() if e.imagenet is not None}
        raise ValueError(
            f"Unknown keras.applications model {app_name!r} (no registered ImageNet weight "
            f"files); valid names: {', '.join(sorted(known))}."
        )
    return encoder, encoder.imagenet


def canonical_app_name(app_name: str) -> str:
    """Normalise an application name (case, separators) to its encoder registry name.

    Raises:
        ValueError: If no encoder of that name has registered weight files.
    """
    return _application(app_name)[0].name


def weights_file_name(app_name: str, include_top: bool = False) -> str:
    """Return the ImageNet weight file name Keras caches for ``app_name``."""
    return _application(app_name)[1].file_name(include_top)


def cached_weights_path(app_name: str, include_top: bool = False) -> Path | None:
    """Return the cached ImageNet weight file of ``app_name`` if it exists, else None."""
    return _application(app_name)[1].cached(include_top)


def resolve_weights(
    app_name: str, weights: str | os.PathLike | None = "auto", *, include_top: bool = False
) -> str | None:
    """:func:`resolve` for an encoder with registered weight files, by name.

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
    encoder, files = _application(app_name)
    return resolve(encoder.name, weights, files=files, include_top=include_top)


def build_application(
    app_name: str,
    input_tensor: Any = None,
    input_shape: tuple[int | None, ...] | None = None,
    weights: str | os.PathLike | None = "auto",
    include_top: bool = False,
    **kwargs: Any,
) -> keras.Model:
    """Build a registered ``keras.applications`` encoder with offline-aware weights.

    Args:
        app_name: Name of an encoder with registered weight files.
        input_tensor: Optional Keras tensor (e.g. ``keras.Input``) to build the model on.
        input_shape: Optional input shape (without batch) when no tensor is given.
        weights: ``None``, ``"imagenet"``, ``"auto"`` or a weight file path; see
            :func:`resolve`.
        include_top: Whether to include the ImageNet classification top.
        **kwargs: Passed to the constructor (e.g. ``pooling``, ``name``).

    Returns:
        The application model.

    Raises:
        ValueError: Unknown application name or arguments Keras rejects.
        FileNotFoundError: Missing weights file.
        RuntimeError: ImageNet weights requested but neither cached nor downloadable.
    """
    encoder, _ = _application(app_name)
    return encoder.build(
        input_shape, weights, input_tensor=input_tensor, include_top=include_top, **kwargs
    )
