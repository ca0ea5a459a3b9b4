"""Self-describing model folders: ``models/<stage>/<arch>/fold_<k>/``.

A folder holds ``model.keras`` (the whole model, Keras' zip format), ``model_card.json``
(:class:`~mammo_common.schema.model_card.ModelCard`), ``history.csv`` (per-epoch training
history) and, when the history has rows, ``dvclive/``: the same curves in DVCLive's format
(``dvclive/plots/metrics/<quantity>.tsv`` and ``dvclive/metrics.json``, the last epoch's values,
which the pipeline's ``dvc.yaml`` declares as metrics; :mod:`mammo_common.keras.training.curves`).
:func:`save_model_folder` stages the whole folder under a hidden temporary name and
renames it into place, so a folder is complete or absent. :func:`load_model_folder` loads with
``keras.saving.load_model(safe_mode=True)``: nothing is unpickled and Lambda layers (arbitrary
code) are refused.
"""

from __future__ import annotations

import importlib
import shutil
import zipfile
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from typing import Any

import keras

from mammo_common.errors import ModelFolderError
from mammo_common.keras.deployment.optimize import FoldedBatchNormalization  # noqa: F401
from mammo_common.keras.training.curves import write_curves

# importing these registers the project's layer classes a saved model may name
from mammo_common.keras.training.fused_batchnorm import FusedBatchNormalization  # noqa: F401
from mammo_common.keras.training.harness import TrainResult, read_history_csv, write_history_csv
from mammo_common.model_cache import active_cache, memoized
from mammo_common.schema.model_card import (
    CARD_FILE,
    HISTORY_FILE,
    MODEL_FILE,
    ModelCard,
    read_model_card,
)
from mammo_common.store.atomic import atomic_path

__all__ = ["load_model_folder", "save_model_folder"]

_FIX_RETRAIN = "re-train the model or restore the folder from the DVC cache (`dvc checkout`)"


def _check_shape(model: keras.Model, card: ModelCard, where: Path) -> None:
    shape = getattr(model, "input_shape", None)
    if not isinstance(shape, tuple) or len(shape) != 4:
        return
    for have, want, axis in zip(
        shape[1:], card.input_shape, ("height", "width", "channels"), strict=True
    ):
        if have is not None and want is not None and int(have) != int(want):
            raise ModelFolderError(
                f"the model takes input {tuple(shape[1:])} but the card says "
                f"{tuple(card.input_shape)} ({axis} differs)",
                path=where,
                field="input_shape",
                fix="write the card's input_shape from the model that is saved",
            )


def save_model_folder(
    folder: str | Path,
    model: keras.Model,
    card: ModelCard,
    history: Sequence[Mapping[str, float]] | TrainResult | str | Path | None = None,
) -> ModelCard:
    """Writes a complete model folder atomically (replacing an existing one).

    ``keras_version`` and ``backend`` of the card are filled from the running environment.
    The training curves go into ``dvclive/`` as well (from the folder's ``history.csv``, so
    both hold the same values), carried over from the training's working folder, which is
    removed once the model folder is written.

    Args:
        folder: The folder, conventionally ``models/<stage>/<arch>/fold_<k>``.
        model: The trained model (the best weights, as :func:`fit_resumable` leaves it).
        card: Its model card; ``input_shape`` must agree with the model.
        history: Per-epoch rows, a :class:`TrainResult`, or a ``history.csv`` to copy; None
            writes a header-only file (and no ``dvclive/``).

    Returns:
        The card as written.

    Raises:
        ModelFolderError: If the card's input shape disagrees with the model.
    """
    folder = Path(folder)
    card = card.model_copy(
        update={"keras_version": keras.version(), "backend": keras.backend.backend()}
    )
    card = ModelCard.model_validate(card.model_dump())
    _check_shape(model, card, folder)
    with atomic_path(folder) as tmp:
        tmp.mkdir(parents=True)
        model.save(tmp / MODEL_FILE)
        (tmp / CARD_FILE).write_text(card.to_json(), encoding="utf-8")
        if isinstance(history, str | Path):
            shutil.copyfile(history, tmp / HISTORY_FILE)
        else:
            rows = history.history if isinstance(history, TrainResult) else list(history or [])
            write_history_csv(tmp / HISTORY_FILE, rows)
        rows = read_history_csv(tmp / HISTORY_FILE)
        if rows:
            write_curves(tmp, rows)
    return card


def _import_package(card: ModelCard) -> None:
    """Imports the modules that register the card's layers (best effort).

    Keras only knows a registered class once the module defining it has been imported, so
    besides the training package this imports, when they exist, the package's module for the
    architecture (``<package>.models.<architecture>``), its model registry
    (``<package>.models``) and the shared network of that name in
    :mod:`mammo_common.keras.networks`.
    """
    name = card.package.replace("-", "_")
    candidates = [name, name.removeprefix("mammo_")]
    arch = card.architecture
    for package in candidates:
        try:
            importlib.import_module(package)
        except ImportError:
            continue
        for module in (f"{package}.models.{arch}", f"{package}.models"):
            try:
                importlib.import_module(module)
            except ImportError:
                continue
        break
    try:
        importlib.import_module(f"mammo_common.keras.networks.{arch}")
    except ImportError:
        pass


def load_model_folder(
    folder: str | Path,
    expected_stage: str | None = None,
    *,
    known_architectures: Collection[str] | None = None,
    compile: bool = False,
    custom_objects: Mapping[str, Any] | None = None,
) -> tuple[keras.Model, ModelCard]:
    """Loads a model folder, refusing anything incomplete, foreign or unsafe.

    Args:
        folder: The model folder.
        expected_stage: Refuse a card of another stage (e.g. ``"massseg"``).
        known_architectures: Refuse architectures outside this set (the caller's registry).
        compile: Also restore the training configuration (not needed to predict).
        custom_objects: Extra classes for deserialisation (registered ones need none).

    Returns:
        ``(model, card)``.

    Raises:
        ModelFolderError: Missing folder or file, invalid or unsupported card, another
            stage, unknown architecture, a corrupt or unsafe ``model.keras``, or a model
            whose input shape disagrees with the card. The message names the folder, the
            file and the fix.

    While a :class:`~mammo_common.model_cache.ModelCache` is active (``mammo run``'s
    :class:`~mammo_common.oneshot.Cascade`), a folder whose ``model.keras`` is unchanged is
    loaded once and the same ``(model, card)`` returned again (not with ``custom_objects``).
    """
    folder = Path(folder)
    if custom_objects or active_cache() is None:
        return _load_model_folder(folder, expected_stage, known_architectures, compile,
                                  custom_objects)
    try:  # a changed model.keras is a new key
        stat = (folder / MODEL_FILE).stat()
        version: tuple[int, int] | None = (stat.st_mtime_ns, stat.st_size)
    except OSError:
        version = None
    key = (
        "load_model_folder", str(folder.resolve()), version, expected_stage,
        None if known_architectures is None else tuple(sorted(known_architectures)), compile,
    )
    return memoized(key, lambda: _load_model_folder(folder, expected_stage,
                                                    known_architectures, compile, None))


def _load_model_folder(
    folder: Path,
    expected_stage: str | None,
    known_architectures: Collection[str] | None,
    compile: bool,
    custom_objects: Mapping[str, Any] | None,
) -> tuple[keras.Model, ModelCard]:
    """:func:`load_model_folder` without the cache."""
    card = read_model_card(folder)
    if expected_stage is not None and card.stage != expected_stage:
        raise ModelFolderError(
            f"this is a {card.stage} model ({card.model_id}), not a {expected_stage} model",
            path=folder,
            field="stage",
            fix=f"point to a folder under models/{expected_stage}/",
        )
    if known_architectures is not None and card.architecture not in known_architectures:
        raise ModelFolderError(
            f"unknown architecture {card.architecture!r}; this release knows "
            f"{sorted(known_architectures)}",
            path=folder,
            field="architecture",
            fix=f"install the {card.package} version that trained it ({card.package_version})",
        )
    model_path = folder / MODEL_FILE
    if not model_path.is_file():
        raise ModelFolderError(
            f"{MODEL_FILE} is missing", path=folder, field=MODEL_FILE, fix=_FIX_RETRAIN
        )
    if not zipfile.is_zipfile(model_path):
        raise ModelFolderError(
            f"{MODEL_FILE} is corrupt (not a Keras zip archive)", path=model_path, fix=_FIX_RETRAIN
        )
    _import_package(card)
    try:
        model = keras.saving.load_model(
            model_path, custom_objects=dict(custom_objects or {}), compile=compile, safe_mode=True
        )
    except Exception as exc:
        text = str(exc)
        if "safe_mode" in text or "Lambda" in text:
            raise ModelFolderError(
                "model.keras contains a Lambda layer or other code that safe mode refuses",
                path=model_path,
                fix="rebuild the architecture with registered layers (no Lambda) and re-train",
            ) from None
        if "Could not locate" in text or "Unknown" in text or "not found" in text:
            raise ModelFolderError(
                f"model.keras uses a class this environment does not know ({text[:200]})",
                path=model_path,
                fix=f"install {card.package}=={card.package_version} (it registers the layers)",
            ) from None
        raise ModelFolderError(
            f"model.keras cannot be loaded ({type(exc).__name__}: {text[:200]})",
            path=model_path,
            fix=_FIX_RETRAIN,
        ) from None
    _check_shape(model, card, folder)
    return model, card
