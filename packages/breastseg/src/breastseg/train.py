"""``breastseg train``: the five-level U-Net on one fold, with the reference recipe.

Example:
    >>> from breastseg.config import TrainConfig
    >>> from breastseg.train import train
    >>> result = train(TrainConfig(  # doctest: +SKIP
    ...     data="mammograms.zarr", splits="splits.json", fold=1,
    ...     out="models/breastseg/unet5l/fold_1", input_size=(128, 96), filters=8, epochs=20))

Recipe (docs/ARCHITECTURES.md): soft Dice loss, Adam 1e-3, batch 3, 3 x (n // batch) steps per
epoch with the breast augmentation (rotation 45, shifts/shear/zoom 0.1, both flips, wrap fill;
the same random transform on image and mask), ReduceLROnPlateau (patience 3, factor 0.1, min
1e-8) and early stopping (patience 5) on the validation loss, at most 100 epochs. Unlike the
reference, validation batches are *not* augmented and the *best* weights are kept.

Data: each case's image and breast mask are read once, resized to the network input exactly as
the training pipeline resizes (``mammo_common.keras.training.data.prepare_image``) and kept in
memory as uint16 / uint8 (1024x768: 1.5 MiB + 0.75 MiB per case). Cases without a breast mask get
one from :mod:`breastseg.labeller` (``mask_source``); the model card counts them.

The working state (checkpoint, best weights, history) lives in a hidden folder next to the
model folder while the run is going (``fold_1`` -> ``.fold_1.training``,
:func:`training_dir`, the folder every stage uses); an interrupted run continues from its last
finished epoch when started again with the same settings. On success ``<out>`` is replaced
atomically by the finished model folder and the working folder is removed.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict

from breastseg import __version__
from breastseg.config import TrainConfig
from breastseg.labeller import LABELLER_DESCRIPTION, label_breast
from breastseg.models import build_model, model_names
from mammo_common.cli_support import track
from mammo_common.errors import ConfigError, StoreError
from mammo_common.stage import load_fold, training_card, training_work_dir
from mammo_common.store import MammogramsStore, open_store

__all__ = ["TrainResult", "load_fold", "train", "training_dir"]

PACKAGE = "mammo-breastseg"
STAGE = "breastseg"
#: The hidden working folder (checkpoints) of model folder ``out``: ``.<name>.training`` next to
#: it (:func:`mammo_common.stage.training_work_dir`, as in every stage).
training_dir = training_work_dir


class TrainResult(BaseModel):
    """What ``train`` produced.

    Attributes:
        out: The model folder.
        model_id: ``breastseg/<arch>/fold_<k>``.
        fold: 1-based fold.
        n_train: Training cases.
        n_valid: Validation cases.
        mask_sources: How many training+validation masks came from the store / the labeller.
        epochs_run: Epochs finished (including before a resume).
        resumed_from: Epochs already done when this run started (0: fresh start).
        best_epoch: 1-based epoch of the kept weights.
        best_val_loss: Validation loss there.
        best_val_dice: Validation Dice (threshold 0.5) there.
        stop_reason: ``completed``, ``early_stopping``, ``nan_loss`` or ``callback``.
        seconds: Training time (all sessions).
    """

    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    out: Path
    model_id: str
    fold: int
    n_train: int
    n_valid: int
    mask_sources: dict[str, int]
    epochs_run: int
    resumed_from: int
    best_epoch: int | None
    best_val_loss: float | None
    best_val_dice: float | None
    stop_reason: str
    seconds: float


def check_cases(store: MammogramsStore, case_ids: Sequence[str], what: str) -> None:
    """Refuse case ids (from a splits file) that the store does not hold."""
    known = set(store.case_ids)
    missing = [c for c in case_ids if c not in known]
    if missing:
        raise StoreError(
            f"{len(missing)} {what} case(s) of the splits file are not in the store "
            f"(first: {missing[:5]})",
            path=store.path,
            fix="make the splits from this store (`mammo split`), or pass the matching store",
        )


def _has_breast_mask(store: MammogramsStore, case_id: str) -> bool:
    return "breast_mask" in store.group[f"cases/{case_id}"]


def _check_mask_source(store: MammogramsStore, case_ids: Sequence[str], source: str) -> None:
    if source != "store":
        return
    lacking = [c for c in case_ids if not _has_breast_mask(store, c)]
    if lacking:
        raise StoreError(
            f"{len(lacking)} case(s) have no breast_mask (first: {lacking[:5]}) and "
            "mask_source is 'store'",
            path=store.path,
            fix="use --mask-source auto (the threshold labeller fills in) or labeller",
        )


def load_training_arrays(
    store: MammogramsStore,
    case_ids: Sequence[str],
    input_size: tuple[int, int],
    *,
    mask_source: str = "auto",
    labeller: Any = None,
    description: str = "loading cases",
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Read, resize and stack images and breast masks of some cases.

    Returns:
        ``(images uint16 (n, h, w), masks uint8 (n, h, w), source of each mask)``; sources are
        ``"store"`` or ``"labeller"``.
    """
    from mammo_common.keras.training.data import prepare_image, prepare_mask

    n = len(case_ids)
    images = np.zeros((n, *input_size), np.uint16)
    masks = np.zeros((n, *input_size), np.uint8)
    sources: list[str] = []
    for i, case_id in enumerate(track(case_ids, description)):
        image = store.array(case_id, "image")
        mask = None if mask_source == "labeller" else store.array(case_id, "breast_mask")
        if mask is None:
            if mask_source == "store":
                raise StoreError(
                    "has no breast_mask", path=store.path, field=f"cases/{case_id}/breast_mask",
                    fix="use --mask-source auto or labeller",
                )
            mask = label_breast(image, labeller, laterality=store.record(case_id).laterality)
            sources.append("labeller")
        else:
            sources.append("store")
        x = prepare_image(image, input_size, 1)[..., 0]
        images[i] = np.rint(np.clip(x, 0.0, 1.0) * 65535.0).astype(np.uint16)
        masks[i] = prepare_mask(mask, input_size)[..., 0].astype(np.uint8)
    return images, masks, sources


def _precision(config: TrainConfig) -> str | None:
    if config.mixed_precision is not None:
        return config.mixed_precision
    import keras

    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        return "float16" if tf.config.list_physical_devices("GPU") else None
    return None


def train(
    config: TrainConfig, *, callbacks: Sequence[Any] = (), strategy: str = "none"
) -> TrainResult:
    """Train the breast U-Net on one fold and write its model folder.

    Args:
        config: Validated settings.
        callbacks: Extra Keras callbacks (tests use one to interrupt a run).
        strategy: ``none``, ``mirrored`` or ``multiworker`` (docs/distributed.md); the
            batch size stays the global batch; only the chief writes the model folder.

    Returns:
        A summary of the run.

    Raises:
        StoreError: Invalid store, or split cases missing from it.
        SplitsFileError: Missing or invalid splits file, or no such fold
            (:func:`mammo_common.stage.load_fold`).
        ConfigError: Unknown model, or a checkpoint written with other settings.
    """
    start = time.perf_counter()
    if config.arch not in model_names():
        raise ConfigError(
            f"unknown network {config.arch!r}",
            field="model",
            fix=f"use one of: {', '.join(model_names())}",
        )
    store = open_store(config.data, "mammograms")
    assert isinstance(store, MammogramsStore)
    splits, train_ids, valid_ids = load_fold(config.splits, config.fold)
    check_cases(store, train_ids, "training")
    check_cases(store, valid_ids, "validation")
    if not train_ids or not valid_ids:
        raise ConfigError(
            f"fold {config.fold} has {len(train_ids)} training and {len(valid_ids)} "
            "validation cases; both must be non-empty",
            path=config.splits,
            fix="make splits with more patients (`mammo split`)",
        )
    _check_mask_source(store, train_ids + valid_ids, config.mask_source)
    from mammo_common.keras.training.distribute import get_strategy, is_chief, strategy_scope

    distribution = get_strategy(strategy)  # before any TensorFlow op runs
    out = Path(config.out)
    if out.exists() and not out.is_dir():
        raise ConfigError("the output exists and is not a folder", path=out, fix="pick a folder")

    import keras

    from mammo_common.cli_support import progress_enabled
    from mammo_common.keras.deployment.model_folder import save_model_folder
    from mammo_common.keras.training.augment import AugmentConfig, with_intensity
    from mammo_common.keras.training.data import SegmentationDataset
    from mammo_common.keras.training.harness import fit_resumable, mixed_precision_policy
    from mammo_common.keras.training.metrics import DiceCoefficient, IoU

    size = tuple(config.input_size)
    x_train, y_train, src_train = load_training_arrays(
        store, train_ids, size, mask_source=config.mask_source, labeller=config.labeller,
        description="loading training cases",
    )
    x_valid, y_valid, src_valid = load_training_arrays(
        store, valid_ids, size, mask_source=config.mask_source, labeller=config.labeller,
        description="loading validation cases",
    )
    sources = src_train + src_valid
    mask_sources = {"store": sources.count("store"), "labeller": sources.count("labeller")}

    augment = with_intensity(
        AugmentConfig.breast() if config.augment else None, config.intensity_augment
    )
    steps = config.steps_per_epoch or (
        config.steps_multiplier * max(1, len(train_ids) // config.batch_size)
    )
    train_ds = SegmentationDataset(
        x_train, y_train, batch_size=config.batch_size, shuffle=True, seed=config.seed,
        augment=augment, steps_per_epoch=steps,
    )
    valid_ds = SegmentationDataset(x_valid, y_valid, batch_size=config.batch_size)

    precision = _precision(config)
    keras.utils.set_random_seed(config.seed)
    with mixed_precision_policy(precision), strategy_scope(distribution):
        model = build_model(
            config.arch, input_shape=(*size, 1), filters=config.filters, dropout=config.dropout
        )
    from mammo_common.keras.training.harness import schedule_arguments

    work = training_dir(out)
    fit = fit_resumable(
        model,
        train_ds,
        valid_ds,
        out_dir=work,
        epochs=config.epochs,
        learning_rate=config.learning_rate,
        loss=config.loss,
        metrics=[DiceCoefficient(), IoU()],
        monitor="val_loss",
        **schedule_arguments(
            config.lr_schedule, config.reduce_lr_patience, config.reduce_lr_factor, config.min_lr
        ),
        early_stopping_patience=config.early_stopping_patience,
        seed=config.seed,
        resume=config.resume,
        mixed_precision=precision,
        deterministic=config.deterministic,
        progress=progress_enabled(),  # Keras's per-epoch bar on a terminal
        callbacks=list(callbacks),
        strategy=distribution,
    )
    best = next((r for r in fit.history if r.get("epoch") == fit.best_epoch), {})
    labelled = mask_sources["labeller"]
    notes = (
        f"{labelled} of {len(sources)} training/validation breast masks were made by the "
        f"{LABELLER_DESCRIPTION}, not drawn by hand."
        if labelled
        else "All training/validation breast masks came from the store."
    )
    card = training_card(
        stage=STAGE,
        package=PACKAGE,
        package_version=__version__,
        arch=config.arch,
        fold=config.fold,
        data=config.data,
        data_digest=store.digest,
        splits=config.splits,
        n_train=len(train_ids),
        n_valid=len(valid_ids),
        n_test=len(splits.test),
        task="segmentation",
        input_shape=(size[0], size[1], 1),
        normalization="divide_by_max",
        threshold=0.5,
        training={
            **config.model_dump(mode="json", exclude={"data", "splits", "out"}),
            "optimizer": "adam",
            "steps_per_epoch": steps,
            "augmentation": augment.model_dump() if augment else None,
            "validation_augmented": False,
            "mask_sources": mask_sources,
            "best_epoch": fit.best_epoch,
            "epochs_run": fit.epochs_run,
            "stop_reason": fit.stop_reason,
            "mixed_precision": precision,
        },
        strategy=strategy,
        distribution=distribution,
        metrics={k: float(v) for k, v in best.items() if k.startswith("val_")},
        weights_origin="scratch",
        notes=notes,
    )
    if is_chief(distribution):  # multi-worker: only the chief writes
        save_model_folder(out, model, card, fit)  # replaces <out> atomically
        shutil.rmtree(work, ignore_errors=True)
    return TrainResult(
        out=out,
        model_id=card.model_id,
        fold=config.fold,
        n_train=len(train_ids),
        n_valid=len(valid_ids),
        mask_sources=mask_sources,
        epochs_run=fit.epochs_run,
        resumed_from=fit.resumed_from,
        best_epoch=fit.best_epoch,
        best_val_loss=best.get("val_loss"),
        best_val_dice=best.get("val_dice"),
        stop_reason=fit.stop_reason,
        seconds=round(time.perf_counter() - start, 3),
    )
