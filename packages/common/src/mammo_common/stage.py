"""Small pieces every stage (breastseg, massseg, massclass) needs once: the shared stage toolkit.

* :func:`file_digest`: the ``sha256:<hex>`` digest a model card records for its splits file.
* :func:`load_splits`, :func:`load_fold`, :func:`split_cases`: read ``splits.json`` and pick a
  fold's or a part's case ids. Every problem (missing or invalid file, a fold that does not
  exist, a part without its fold) is one error type,
  :class:`~mammo_common.schema.splits.SplitsFileError`, whose message names the file, the field
  and the fix.
* :class:`CaseScore`: the per-case score record of the segmentation stages' ``evaluate``.
* :func:`training_card`: the model card (with its data lineage) a stage's ``train`` writes.
* :func:`training_work_dir`: the hidden folder next to a model folder that holds the resumable
  training state.

This module imports neither Keras nor TensorFlow.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any, Literal, Self

from pydantic import (
    BaseModel,
    ConfigDict,
    SerializerFunctionWrapHandler,
    model_serializer,
    model_validator,
)

from mammo_common.schema.model_card import DataLineage, ModelCard, model_id
from mammo_common.schema.splits import Fold, Splits, SplitsFileError

__all__ = [
    "CaseScore",
    "Part",
    "file_digest",
    "load_fold",
    "load_splits",
    "split_cases",
    "training_card",
    "training_work_dir",
]

#: A part of a split: a fold's ``train`` or ``valid`` cases, the ``test`` set, or ``all`` cases.
Part = Literal["train", "valid", "test", "all"]

_PARTS = ("train", "valid", "test", "all")
_FIX = "regenerate it with `mammo split`"


# --------------------------------------------------------------------------- digests


def file_digest(path: str | os.PathLike[str]) -> str:
    """The content digest of a file, as model cards record it (``splits_digest``).

    Args:
        path: The file (usually ``splits.json``).

    Returns:
        ``"sha256:"`` followed by the 64 hex digits of the file's SHA-256.

    Raises:
        OSError: If the file cannot be read.
    """
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return "sha256:" + digest.hexdigest()


# --------------------------------------------------------------------------- splits


def load_splits(path: str | os.PathLike[str]) -> Splits:
    """Read and validate a splits file (``mammo split``'s ``splits.json``).

    Args:
        path: The splits file.

    Returns:
        The validated splits.

    Raises:
        SplitsFileError: If the file is missing (the subclass ``SplitsNotFoundError``, also a
            ``FileNotFoundError``), not JSON, of another kind or does not validate; the message
            names the file, the offending fields and the fix.
    """
    try:
        return Splits.load(path)
    except SplitsFileError as exc:
        if exc.fix is not None:
            raise
        # Splits.load words the fix into the sentence ("...; regenerate the file with `mammo
        # split`"): make it the error's fix, so that CLIs print one "Fix:" like every error.
        problem, fix = exc.problem, _FIX
        head, _, tail = problem.rpartition("; ")
        if head and "\n" not in problem and "mammo split" in tail:
            problem, fix = head, tail
        raise type(exc)(problem, path=exc.path, field=exc.field, fix=fix) from None


def _fold(splits: Splits, fold: int | None, path: str | os.PathLike[str], part: str) -> Fold:
    if fold is None:
        raise SplitsFileError(
            f"part {part!r} is a fold's part and needs a fold number",
            path=path, field="folds",
            fix=f"pass a fold between 1 and {splits.n_folds} (--fold K, 1-based)",
        )
    try:
        return splits.fold(fold)
    except KeyError:
        raise SplitsFileError(
            f"fold {fold} does not exist (no fold {fold}: this splits file has folds "
            f"1..{splits.n_folds}, numbered from 1)",
            path=path, field="folds",
            fix=f"pass a fold between 1 and {splits.n_folds} (--fold K, 1-based)",
        ) from None


def load_fold(path: str | os.PathLike[str], fold: int) -> tuple[Splits, list[str], list[str]]:
    """The cases a training of fold ``fold`` uses.

    Args:
        path: The splits file.
        fold: The fold, 1-based.

    Returns:
        ``(splits, train ids, valid ids)``, the ids in the file's order.

    Raises:
        SplitsFileError: Missing or invalid file, or no such fold.
    """
    splits = load_splits(path)
    chosen = _fold(splits, fold, path, "train")
    return splits, list(chosen.train), list(chosen.valid)


def split_cases(
    splits: str | os.PathLike[str] | Splits,
    part: str,
    fold: int | None = None,
    *,
    path: str | os.PathLike[str] | None = None,
) -> list[str]:
    """Case ids of one part of a split.

    Args:
        splits: The splits file, or splits already loaded from ``path``.
        part: ``"train"`` or ``"valid"`` (of fold ``fold``), ``"test"`` (the fixed test set) or
            ``"all"`` (every case of the file, sorted).
        fold: The fold, 1-based; needed for ``train`` and ``valid``, ignored otherwise.
        path: The file loaded splits came from, for the messages (default: ``splits`` when it
            is a path).

    Returns:
        The case ids, in the file's order (``all``: sorted).

    Raises:
        SplitsFileError: Missing or invalid file, an unknown part, a ``train``/``valid`` part
            without a fold, or a fold that does not exist.
    """
    if isinstance(splits, Splits):
        loaded, where = splits, path if path is not None else "splits"
    else:
        loaded, where = load_splits(splits), splits
    if part not in _PARTS:
        raise SplitsFileError(
            f"unknown part {part!r}", path=where, field="part",
            fix="choose one of: " + ", ".join(_PARTS),
        )
    if part == "all":
        return loaded.cases
    if part == "test":
        return list(loaded.test)
    return list(getattr(_fold(loaded, fold, where, part), part))


# --------------------------------------------------------------------------- scores

_BREAST_FIELDS = ("reference", "reference_pixels", "empty_prediction")
_MASS_FIELDS = ("auc", "dice_unprocessed", "truth_pixels")


class CaseScore(BaseModel):
    """Scores of one case (image), one row of an ``evaluate`` per-case file.

    One record serves both segmentation stages: a row carries the shared fields and either the
    breast fields (``breastseg evaluate``) or the mass fields (``massseg evaluate``), never a
    mix. Only the fields a row was given are written (``model_dump``), so each stage's per-case
    JSON keeps exactly its own keys.

    Attributes:
        case_id: The case.
        dice: Dice of the predicted mask (1 when truth and prediction are both empty).
        jaccard: Jaccard of the predicted mask.
        pred_pixels: Predicted pixels.
        reference: Breast: where the reference mask came from (``store`` or ``labeller``).
        reference_pixels: Breast: pixels of the reference mask.
        empty_prediction: Breast: whether the prediction is empty.
        auc: Mass: pixel ROC AUC of the probabilities (``None`` when the truth is empty).
        dice_unprocessed: Mass: Dice of the thresholded probabilities, before post-processing.
        truth_pixels: Mass: ground-truth mass pixels.
    """

    model_config = ConfigDict(extra="forbid")

    case_id: str
    dice: float
    jaccard: float
    reference: str | None = None
    auc: float | None = None
    dice_unprocessed: float | None = None
    truth_pixels: int | None = None
    pred_pixels: int
    reference_pixels: int | None = None
    empty_prediction: bool | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> Self:
        given = self.model_fields_set
        breast = [f for f in _BREAST_FIELDS if f in given]
        mass = [f for f in _MASS_FIELDS if f in given]
        if breast and mass:
            raise ValueError(f"a row is breast ({breast}) or mass ({mass}) scores, not both")
        groups = (("breast", _BREAST_FIELDS, breast), ("mass", _MASS_FIELDS, mass))
        for kind, fields, have in groups:
            if have and len(have) != len(fields):
                missing = [f for f in fields if f not in have]
                raise ValueError(f"{kind} scores need {list(fields)}; missing {missing}")
        for name in (*breast, *(f for f in mass if f != "auc")):
            if getattr(self, name) is None:
                raise ValueError(f"{name} must not be None")
        return self

    @model_serializer(mode="wrap")
    def _only_given(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data = handler(self)
        return {k: v for k, v in data.items() if k in self.model_fields_set}


# --------------------------------------------------------------------------- model cards


def training_card(
    *,
    stage: str,
    package: str,
    package_version: str,
    arch: str,
    fold: int,
    data: str | os.PathLike[str],
    data_digest: str | None,
    splits: str | os.PathLike[str],
    n_train: int,
    n_valid: int,
    n_test: int,
    input_shape: tuple[int | None, int | None, int],
    normalization: str,
    threshold: float,
    training: dict[str, Any],
    strategy: str,
    distribution: Any = None,
    metrics: dict[str, float],
    weights_origin: str,
    task: Literal["segmentation", "classification"] = "segmentation",
    notes: str = "",
) -> ModelCard:
    """The model card a stage's ``train`` writes for one fold of one network.

    Every stage builds its card here, so the three read alike: the model id
    (``<stage>/<arch>/fold_<k>``), the data lineage (the training store and its digest, the
    splits file and its content digest, the fold and its case counts), the distribution
    strategy in the training record, and ``created_by`` (``"<stage> train"``).

    Args:
        stage: ``breastseg``, ``massseg`` or ``massclass``.
        package: The distribution that trained it (``mammo-massseg``).
        package_version: Its version.
        arch: The network's registry name.
        fold: The validation fold, 1-based.
        data: The training store, as given.
        data_digest: Its metadata digest (``store.digest``).
        splits: The splits file, as given (its content digest is recorded).
        n_train: Training cases.
        n_valid: Validation cases.
        n_test: Held-out test cases of the splits file.
        input_shape: The model input ``(H, W, C)``.
        normalization: How raw pixels become model input.
        threshold: The decision threshold.
        training: The training parameters (settings and what the run chose).
        strategy: The ``--strategy`` name (``none``, ``mirrored``, ``multiworker``), recorded in
            ``training`` with the number of replicas.
        distribution: The ``tf.distribute`` strategy used (``None``: one replica); only its
            ``num_replicas_in_sync`` is read.
        metrics: Validation metrics and the like.
        weights_origin: ``"imagenet"``, ``"scratch"`` or the initial weights' path.
        task: ``segmentation`` or ``classification``.
        notes: Free text.

    Returns:
        The validated card.

    Raises:
        OSError: If the splits file cannot be read (for its digest).
        pydantic.ValidationError: If a field is invalid (e.g. an architecture name).
    """
    replicas = 1 if distribution is None else int(distribution.num_replicas_in_sync)
    return ModelCard(
        stage=stage,
        package=package,
        package_version=package_version,
        architecture=arch,
        model_id=model_id(stage, arch, fold),
        task=task,
        input_shape=input_shape,
        normalization=normalization,
        threshold=threshold,
        training={**training, "strategy": strategy, "replicas": replicas},
        data=DataLineage(
            train_store=str(data),
            train_store_digest=data_digest,
            splits=str(splits),
            splits_digest=file_digest(splits),
            fold=fold,
            n_train_cases=n_train,
            n_valid_cases=n_valid,
            n_test_cases=n_test,
        ),
        metrics=metrics,
        weights_origin=weights_origin,
        created_by=f"{stage} train",
        notes=notes,
    )


# --------------------------------------------------------------------------- work folders


def training_work_dir(out: Path) -> Path:
    """The hidden working folder of a training that writes the model folder ``out``.

    It sits next to ``out`` (``models/x/fold_1`` -> ``models/x/.fold_1.training``) and holds the
    per-epoch checkpoints an interrupted training resumes from; the stage removes it once the
    model folder is written, so a model folder is complete or absent.

    Args:
        out: The model folder.

    Returns:
        ``out.parent / f".{out.name}.training"``.
    """
    out = Path(out)
    return out.parent / f".{out.name}.training"
