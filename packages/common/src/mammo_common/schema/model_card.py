"""The model card: what a trained model folder is, how to feed it and where it came from.

A model folder ``models/<stage>/<arch>/fold_<k>/`` holds ``model.keras``, ``model_card.json``
(this schema) and ``history.csv``; prediction needs nothing outside it. This module is part of
the core (no Keras import): listing and validating cards is cheap. Loading the model itself is
:func:`mammo_common.keras.deployment.model_folder.load_model_folder`.

Export the JSON schema with ``ModelCard.model_json_schema()``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from mammo_common.errors import ModelFolderError

__all__ = [
    "CARD_FILE",
    "HISTORY_FILE",
    "MODEL_CARD_SCHEMA_VERSION",
    "MODEL_FILE",
    "DataLineage",
    "ModelCard",
    "is_card_supported",
    "model_id",
    "read_model_card",
]

#: Version of the model card schema. Minor: backwards-compatible additions; major: breaking.
MODEL_CARD_SCHEMA_VERSION = "1.0"
SUPPORTED_CARD_MAJOR_VERSIONS = frozenset({1})

MODEL_FILE = "model.keras"
CARD_FILE = "model_card.json"
HISTORY_FILE = "history.csv"

_NAME = r"^[a-z][a-z0-9_]*$"

#: Known input normalisations (free text is allowed for new ones; document them).
Normalization = Literal[
    "divide_by_max_uint16",  # uint16 / 65535 -> [0, 1]
    "divide_by_max_uint8",  # uint8 / 255 -> [0, 1]
    # unsigned integer / dtype max (mammo_common.keras.training.data.normalize_image)
    "divide_by_max",
    "none",
]


def is_card_supported(version: str) -> bool:
    """Whether a card written with schema ``version`` can be read by this release."""
    try:
        return int(str(version).split(".", 1)[0]) in SUPPORTED_CARD_MAJOR_VERSIONS
    except ValueError:
        return False


def model_id(stage: str, architecture: str, fold: int | str | None) -> str:
    """The model id and relative folder: ``"<stage>/<arch>/fold_<k>"`` (``"all"`` if None)."""
    return f"{stage}/{architecture}/fold_{'all' if fold is None else fold}"


class DataLineage(BaseModel):
    """The data a model was trained on.

    Attributes:
        train_store: Path of the training store (as given on the command line).
        train_store_digest: Digest of its metadata (``mammo_common.store.meta_digest``).
        splits: Path of ``splits.json``.
        splits_digest: Digest of the splits file.
        fold: Validation fold (None: trained on all training folds).
        n_train_cases: Training cases.
        n_valid_cases: Validation cases.
        n_test_cases: Held-out test cases (not used in training).
    """

    model_config = ConfigDict(extra="forbid")

    train_store: str | None = None
    train_store_digest: str | None = None
    splits: str | None = None
    splits_digest: str | None = None
    fold: int | None = None
    n_train_cases: int | None = Field(None, ge=0)
    n_valid_cases: int | None = Field(None, ge=0)
    n_test_cases: int | None = Field(None, ge=0)


class ModelCard(BaseModel):
    """Self-description of a trained model folder (``model_card.json``).

    Attributes:
        schema_version: Card schema version.
        stage: Pipeline stage (``breastseg``, ``massseg``, ``massclass``).
        package: Distribution that trained it (``mammo-massseg``).
        package_version: Its version.
        keras_version: Keras version used to save ``model.keras``.
        backend: Keras backend used (``tensorflow``...).
        architecture: Registry name of the network (``unetpp_xception``).
        model_id: ``"<stage>/<architecture>/fold_<k>"``.
        task: ``segmentation`` (one sigmoid map) or ``classification`` (one probability).
        input_shape: Model input ``(H, W, C)``.
        normalization: How raw pixels become model input (``divide_by_max_uint16``...).
        threshold: Decision threshold on the sigmoid output.
        training: Training parameters (epochs, batch, lr, loss, augmentation, seed, ...).
        data: Data lineage.
        metrics: Validation metrics at the best epoch (``val_dice``...) and the like.
        weights_origin: ``"imagenet"``, ``"scratch"`` or the path of the initial weights.
        created_by: The command that wrote the folder.
        created_at: Optional ISO timestamp (left out by default for reproducible outputs).
        notes: Free text.
    """

    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    schema_version: str = MODEL_CARD_SCHEMA_VERSION
    stage: str = Field(pattern=_NAME)
    package: str
    package_version: str
    keras_version: str = ""
    backend: str = ""
    architecture: str = Field(pattern=_NAME)
    model_id: str
    task: Literal["segmentation", "classification"] = "segmentation"
    input_shape: tuple[int | None, int | None, int]
    normalization: Normalization | str = "divide_by_max_uint16"
    threshold: float = Field(0.5, ge=0, le=1)
    training: dict[str, Any] = Field(default_factory=dict)
    data: DataLineage = Field(default_factory=DataLineage)
    metrics: dict[str, float] = Field(default_factory=dict)
    weights_origin: str = "scratch"
    created_by: str = ""
    created_at: str | None = None
    notes: str = ""

    @model_validator(mode="after")
    def _check(self) -> ModelCard:
        if not is_card_supported(self.schema_version):
            raise ValueError(f"unsupported model card schema version {self.schema_version!r}")
        parts = self.model_id.split("/")
        if len(parts) < 2 or parts[0] != self.stage or parts[1] != self.architecture:
            raise ValueError(
                f"model_id {self.model_id!r} must start with '{self.stage}/{self.architecture}/'"
            )
        if self.input_shape[2] < 1:
            raise ValueError("input_shape channels must be at least 1")
        if not re.fullmatch(r"[A-Za-z0-9_.\-]+", self.package):
            raise ValueError(f"package {self.package!r} is not a distribution name")
        return self

    def to_json(self) -> str:
        """The card as ``model_card.json`` text (indented, trailing newline)."""
        return json.dumps(self.model_dump(mode="json"), indent=2, sort_keys=True) + "\n"


def read_model_card(folder: str | Path) -> ModelCard:
    """Reads and validates ``<folder>/model_card.json`` (no Keras needed).

    Raises:
        ModelFolderError: Missing folder or card, unreadable JSON, unsupported schema
            version or invalid fields; the message names the folder, the file and the fix.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise ModelFolderError(
            "the model folder does not exist",
            path=folder,
            fix="train the model first, or check the models path",
        )
    path = folder / CARD_FILE
    if not path.is_file():
        raise ModelFolderError(
            f"{CARD_FILE} is missing",
            path=folder,
            field=CARD_FILE,
            fix="re-train or re-export the model; a folder without its card is incomplete",
        )
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelFolderError(
            f"{CARD_FILE} is not valid JSON ({exc})", path=path, fix="re-export the model folder"
        ) from None
    if not isinstance(raw, dict):
        raise ModelFolderError(
            f"{CARD_FILE} must hold a JSON object", path=path, fix="re-export the model folder"
        )
    version = str(raw.get("schema_version", ""))
    if not is_card_supported(version):
        raise ModelFolderError(
            f"model card schema version {version or '(none)'} is not supported "
            f"(this release reads {sorted(SUPPORTED_CARD_MAJOR_VERSIONS)}.x)",
            path=path,
            field="schema_version",
            fix="install a mammo-common release that reads it, or re-train the model",
        )
    try:
        return ModelCard.model_validate(raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(p) for p in err.get("loc", ())) or "card"
        raise ModelFolderError(
            f"invalid model card: {err.get('msg', 'invalid')}",
            path=path,
            field=field,
            fix="re-export the model folder",
        ) from None
