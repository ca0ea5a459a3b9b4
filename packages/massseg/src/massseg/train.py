"""Train one network on one fold: the reference recipe, with its two defects fixed.

Recipe (docs ARCHITECTURES.md, "Segmentation training recipe"): Adam (1e-3 for unet5l, 1e-4
for the others), batch 2, soft Dice loss pooled over the batch, ``3 x (n_train // batch)``
augmented steps per epoch (rotation 90, shifts/shear/zoom 0.2, both flips, wrap fill; the same
transform on image and mask), ReduceLROnPlateau on validation loss (patience 3, factor 0.1,
min 1e-8), early stopping (patience 5), at most 100 epochs, inputs scaled to [0, 1]
(uint16 / 65535) with the gray image repeated for 3-channel networks.

Unlike the reference, validation batches are **not** augmented and the **best** weights (lowest
validation loss) are kept; see the package README.

Training runs in a hidden working folder next to the model folder (``.fold_1.training``) that
holds the per-epoch checkpoint; an interrupted run resumes from it. When training ends, the
model folder (``model.keras``, ``model_card.json``, ``history.csv``) is written atomically and
the working folder removed, so a model folder is complete or absent.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from mammo_common.errors import ConfigError, MammoError, ModelFolderError, StoreError
from mammo_common.schema.model_card import CARD_FILE, MODEL_FILE
from mammo_common.schema.splits import Splits
from mammo_common.stage import load_fold, training_card, training_work_dir
from mammo_common.store import BreastStore, open_store
from massseg import __version__
from massseg.config import FPReductionSettings, TrainConfig

__all__ = [
    "PACKAGE",
    "STAGE",
    "TrainResult",
    "is_complete",
    "resolve_input_shape",
    "train",
    "training_dir",
    "validate_inputs",
]

STAGE = "massseg"
PACKAGE = "mammo-massseg"


class TrainResult(BaseModel):
    """What ``massseg train`` produced.

    Attributes:
        arch: The network.
        fold: The fold (1-based).
        model_dir: The model folder written.
        model_id: ``massseg/<arch>/fold_<k>``.
        input_shape: Network input (H, W, C).
        n_train: Training images.
        n_valid: Validation images.
        epochs_run: Epochs run in all (including before a resume).
        resumed_from: Epochs already done when this run started (0: fresh).
        best_epoch: The epoch whose weights were kept (best ``monitor``, by default the
            lowest validation loss).
        best_val_loss: Its validation loss.
        best_val_dice: Its validation Dice (per image, thresholded).
        last_val_dice: Validation Dice of the last epoch.
        stop_reason: ``completed``, ``early_stopping`` or ``nan_loss``.
        seconds: Training time (all sessions).
    """

    model_config = ConfigDict(extra="forbid")

    arch: str
    fold: int
    model_dir: Path
    model_id: str
    input_shape: tuple[int, int, int]
    n_train: int
    n_valid: int
    epochs_run: int
    resumed_from: int
    best_epoch: int
    best_val_loss: float
    best_val_dice: float
    last_val_dice: float
    stop_reason: str
    seconds: float


#: The hidden working folder (checkpoints) of model folder ``out``: ``.<name>.training`` next to
#: it (:func:`mammo_common.stage.training_work_dir`).
training_dir = training_work_dir


def is_complete(out: Path) -> bool:
    """Whether ``out`` is a finished model folder (model and card, its refiner and
    false-positive scorer if it has them)."""
    if not ((out / MODEL_FILE).is_file() and (out / CARD_FILE).is_file()):
        return False
    from massseg.fp_reduction import FP_REDUCTION_FILE
    from massseg.refine import refiner_folder

    training = json.loads((out / CARD_FILE).read_text()).get("training", {})
    if training.get("fp_reduction") and not (out / FP_REDUCTION_FILE).is_file():
        return False
    if training.get("refine"):
        sub = refiner_folder(out)
        return (sub / MODEL_FILE).is_file() and (sub / CARD_FILE).is_file()
    return True


def _indices(store: BreastStore, ids: list[str], what: str, splits: Path) -> list[int]:
    position = {cid: i for i, cid in enumerate(store.case_ids)}
    missing = [c for c in ids if c not in position]
    if missing:
        raise StoreError(
            f"{len(missing)} {what} cases of {splits} are not in the store (first: {missing[:3]})",
            path=store.path,
            fix="use the splits made for this store (mammo split on the same data)",
        )
    return [position[c] for c in ids]


def validate_inputs(config: TrainConfig) -> Splits:
    """Check store, splits and fold before anything is built; returns the splits.

    Raises:
        StoreError: Missing or wrong-kind store, or one without ground-truth mass masks.
        SplitsFileError: Missing or invalid splits file, or a fold that does not exist.
        MammoError: An empty fold part.
    """
    store = open_store(config.data, "breast")
    if not store.meta.has_mass_masks:
        raise StoreError(
            "has no ground-truth mass_masks to train on",
            path=config.data,
            field="mass_masks",
            fix="ingest a dataset with ROI masks and run breastseg predict again",
        )
    splits, train_ids, valid_ids = load_fold(config.splits, config.fold)
    for part, ids in (("train", train_ids), ("valid", valid_ids)):
        if not ids:
            raise MammoError(f"fold {config.fold} has no {part} case", path=config.splits)
        _indices(store, ids, part, config.splits)  # type: ignore[arg-type]
    return splits


def resolve_input_shape(config: TrainConfig, image_size: tuple[int, int]) -> tuple[int, int, int]:
    """Network input ``(H, W, C)``: the configured size or the store's, the network's channels.

    Raises:
        ConfigError: If a side is not a multiple of the network's input multiple.
    """
    from massseg.models import default_input_shape, input_multiple

    size = config.input_size or tuple(image_size)
    multiple = input_multiple(config.arch)
    if size[0] % multiple or size[1] % multiple:
        raise ConfigError(
            f"input size {size[0]}x{size[1]} is not a multiple of {multiple}, which "
            f"{config.arch} needs",
            field="input_size",
            fix=f"pass --input-size with sides that are multiples of {multiple}, e.g. 640x640",
        )
    return int(size[0]), int(size[1]), int(default_input_shape(config.arch)[2])


def _check_output(config: TrainConfig) -> None:
    out = config.out
    if is_complete(out) and not config.overwrite:
        raise ModelFolderError(
            "a trained model folder already exists here",
            path=out,
            fix="choose another --out, delete it, or pass --overwrite",
        )
    if out.exists() and not out.is_dir():
        raise ModelFolderError("exists and is not a folder", path=out, fix="choose another --out")
    if out.is_dir() and not is_complete(out) and any(out.iterdir()) and not config.overwrite:
        raise ModelFolderError(
            "exists, is not empty and is not a model folder; it would be replaced",
            path=out,
            fix="choose another --out, or pass --overwrite",
        )
    data = config.data.resolve()
    if out.resolve() == data or data in out.resolve().parents:
        raise ModelFolderError("the model folder would sit inside the input store", path=out,
                               fix="choose another --out")


class _Rows:
    """``len()`` and row indexing over a lazy Zarr array (zarr 3 arrays have no ``len``)."""

    def __init__(self, array: Any) -> None:
        self.array = array

    def __len__(self) -> int:
        return int(self.array.shape[0])

    def __getitem__(self, index: int) -> Any:
        return self.array[index]


def _build(config: TrainConfig, shape: tuple[int, int, int]) -> Any:
    import keras

    from mammo_common.keras.training.harness import mixed_precision_policy
    from massseg.models import build_model

    kwargs = dict(config.arch_options)
    if config.weights is not None:
        kwargs["weights"] = config.weights
    keras.utils.set_random_seed(config.seed)
    try:
        with mixed_precision_policy(config.mixed_precision):
            return build_model(config.arch, shape, **kwargs)
    except TypeError as exc:
        raise ConfigError(
            f"{config.arch} does not accept these model arguments {sorted(kwargs)}: {exc}",
            field="arch_options",
            fix="check the --width names against the network's build() (e.g. filters)",
        ) from None
    except ValueError as exc:
        raise ConfigError(str(exc), field="arch_options", fix="check the model arguments") from None


#: Whole training images over which BatchNorm statistics are re-estimated (patch training).
RECALIBRATION_IMAGES = 32


def _recalibration(
    config: TrainConfig, images: Any, masks: Any, train_idx: Any, shape: tuple[int, int, int]
) -> Any:
    """Before each validation, BatchNorm statistics from whole training images (patches
    have other statistics; see :mod:`mammo_common.keras.training.batchnorm_calibration`)."""
    import numpy as np

    from mammo_common.keras.training.batchnorm_calibration import RecalibrateBatchNorm
    from mammo_common.keras.training.data import SegmentationDataset

    order = np.random.default_rng([config.seed, 0xBA7C4]).permutation(len(train_idx))
    chosen = np.asarray(train_idx)[np.sort(order[:RECALIBRATION_IMAGES])]
    whole = SegmentationDataset(images, masks, chosen, batch_size=min(8, config.batch_size),
                                image_size=shape[:2], channels=shape[2])
    return RecalibrateBatchNorm(lambda: (whole[i][0] for i in range(len(whole))))


def _patch_shape(config: TrainConfig, shape: tuple[int, int, int]) -> tuple[int, int] | None:
    """The training patch size, checked against the network's input multiple (or None)."""
    if config.patch_size is None:
        return None
    from massseg.models import input_multiple

    multiple = input_multiple(config.arch)
    ph, pw = config.patch_size
    if ph % multiple or pw % multiple or ph > shape[0] or pw > shape[1]:
        raise ConfigError(
            f"patch_size {config.patch_size} must be multiples of {multiple} and fit the input "
            f"size {shape[:2]}",
            field="patch_size",
            fix=f"use multiples of {multiple} no larger than the input size",
        )
    return (ph, pw)


def _save_refiner(
    config: TrainConfig,
    model: Any,
    card: Any,
    history: list[dict[str, float]],
    metrics: dict[str, float],
) -> None:
    """Write the refiner's model folder inside the whole-image model's folder."""
    from mammo_common.keras.deployment.model_folder import save_model_folder
    from massseg.refine import refiner_folder

    size = int(config.refine.size)  # type: ignore[union-attr]
    refiner_card = card.model_copy(
        update={
            "architecture": "unet5l",
            "model_id": f"{card.model_id}/refiner",
            "input_shape": (size, size, 1),
            "training": {"refine": config.refine.model_dump(mode="json"),  # type: ignore[union-attr]
                         "seed": config.seed, "source": "squares around the true masses"},
            "metrics": dict(metrics),
            "created_by": "massseg train (refiner)",
            "notes": "second-look refiner: squares around each detected mass (massseg.refine)",
        }
    )
    save_model_folder(refiner_folder(config.out), model, refiner_card, history)


def fit_scorer(
    settings: FPReductionSettings,
    model: Any,
    refiners: Any,
    images: Any,
    masks: Any,
    train_idx: list[int],
    valid_idx: list[int],
    *,
    threshold: float,
    seed: int,
    breasts: Any = None,
) -> Any:
    """Fit the false-positive scorer on what the trained network finds (massseg.fp_reduction).

    Args:
        settings: The :class:`~massseg.config.FPReductionSettings`.
        model: The trained network (unfolded, as training leaves it).
        refiners: Its :class:`~massseg.refine.Refiners`, or ``None``.
        images: ``(n, H, W)`` store images.
        masks: ``(n, H, W)`` ground-truth mass masks.
        train_idx: The fold's training cases (the scorer's examples).
        valid_idx: Its validation cases (the operating point).
        threshold: The segmentation threshold that defines the objects.
        seed: The scorer's random state.
        breasts: ``(n, H, W)`` breast masks, or ``None``.
    """
    from mammo_common.keras.deployment.inference import predict_probabilities
    from massseg.fp_reduction import train_fp_reduction

    shape = tuple(int(d) for d in model.input_shape[1:])

    def predict(x: Any) -> Any:
        return predict_probabilities([model], x, input_size=shape[:2], channels=shape[2],
                                     batch_size=settings.batch_size)

    refine = None
    if refiners is not None:

        def refine(image: Any, prob: Any) -> Any:
            return refiners(image, prob, threshold=threshold,
                            min_object_pixels=settings.min_object_pixels)

    return train_fp_reduction(
        predict, refine, images, masks, train_idx, valid_idx, threshold=threshold,
        min_object_pixels=settings.min_object_pixels, c=settings.c,
        tolerance=settings.tolerance, max_objects=settings.max_objects,
        batch=settings.batch_size, breasts=breasts, scorer=settings.scorer, seed=seed,
    )


def train(
    config: TrainConfig, *, callbacks: Sequence[Any] = (), strategy: str = "none"
) -> TrainResult:
    """Train ``config.arch`` on fold ``config.fold`` and write its model folder.

    Args:
        config: The validated training config.
        callbacks: Extra Keras callbacks (e.g. for monitoring; not checkpointed).
        strategy: ``none``, ``mirrored`` or ``multiworker`` (docs/distributed.md); the
            batch size stays the global batch; only the chief writes the model folder.

    Returns:
        The :class:`TrainResult`.

    Raises:
        MammoError: On bad inputs (checked before anything is built or written).
    """
    _check_output(config)
    splits = validate_inputs(config)
    store = open_store(config.data, "breast")
    assert isinstance(store, BreastStore)
    fold = splits.fold(config.fold)
    train_idx = _indices(store, fold.train, "train", config.splits)
    valid_idx = _indices(store, fold.valid, "valid", config.splits)
    shape = resolve_input_shape(config, store.image_size)

    # Keras is imported only once the inputs are known to be good.
    from mammo_common.cli_support import progress_enabled
    from mammo_common.keras.deployment.model_folder import save_model_folder
    from mammo_common.keras.training.augment import AugmentConfig, with_intensity
    from mammo_common.keras.training.data import SegmentationDataset
    from mammo_common.keras.training.distribute import get_strategy, is_chief, strategy_scope
    from mammo_common.keras.training.harness import fit_resumable, schedule_arguments
    from mammo_common.keras.training.metrics import DiceCoefficient, IoU
    from massseg.models import weights_origin

    distribution = get_strategy(strategy)
    patch = _patch_shape(config, shape)
    with strategy_scope(distribution):
        # patches: train a network of undefined input size, saved at the full size below
        model = _build(config, (None, None, shape[2]) if patch else shape)
    images, masks = _Rows(store.array("images")), _Rows(store.array("mass_masks"))
    steps = config.steps_per_epoch or (
        config.steps_multiplier * max(1, len(train_idx) // config.batch_size)
    )
    augment = with_intensity(
        AugmentConfig.mass() if config.augment else None, config.intensity_augment
    )
    train_ds = SegmentationDataset(
        images, masks, train_idx, batch_size=config.batch_size, image_size=shape[:2],
        channels=shape[2], shuffle=True, seed=config.seed, augment=augment,
        steps_per_epoch=steps, patch_size=patch,
        foreground_fraction=config.foreground_fraction,
    )
    valid_ds = SegmentationDataset(
        images, masks, valid_idx, batch_size=config.batch_size, image_size=shape[:2],
        channels=shape[2], shuffle=False,
    )
    callbacks = list(callbacks)
    if patch:
        callbacks.append(_recalibration(config, images, masks, train_idx, shape))
    work = training_dir(config.out)
    lr = config.effective_learning_rate
    result = fit_resumable(
        model,
        train_ds,
        valid_ds,
        out_dir=work,
        epochs=config.epochs,
        learning_rate=lr,
        loss=config.loss,
        # dice: every validation image counts (an image without a mass predicted empty scores
        # 1, with a false detection 0); dice_mass: the images with a mass only, the definition
        # `massseg evaluate` reports (monitor val_dice_mass)
        metrics=[
            DiceCoefficient(threshold=config.threshold),
            IoU(threshold=config.threshold),
            DiceCoefficient(threshold=config.threshold, empty="skip", name="dice_mass"),
        ],
        monitor=config.monitor,
        **schedule_arguments(
            config.lr_schedule, config.reduce_lr_patience, config.reduce_lr_factor, config.min_lr
        ),
        early_stopping_patience=config.early_stopping_patience,
        seed=config.seed,
        resume=config.resume,
        mixed_precision=config.mixed_precision,
        deterministic=config.deterministic,
        progress=progress_enabled(),
        callbacks=callbacks,
        strategy=distribution,
    )
    history = result.history
    if not history or result.best_epoch is None:
        raise MammoError("training ran no epoch", path=work, fix="check --epochs")
    best = history[result.best_epoch - 1]
    last = history[-1]
    dices = [r.get("val_dice", float("nan")) for r in history]
    training: dict[str, Any] = {
        **config.model_dump(mode="json", exclude={"data", "splits", "out", "fold", "overwrite",
                                                  "resume"}),
        "learning_rate": lr,
        "optimizer": "adam",
        "steps_per_epoch": steps,
        "augmentation": augment.model_dump(mode="json") if augment else None,
        "validation_augmented": False,
        "checkpoint": f"best {config.monitor} (not the last epoch)",
        "stop_reason": result.stop_reason,
    }
    card = training_card(
        stage=STAGE,
        package=PACKAGE,
        package_version=__version__,
        arch=config.arch,
        fold=config.fold,
        data=config.data,
        data_digest=store.digest,
        splits=config.splits,
        n_train=len(train_idx),
        n_valid=len(valid_idx),
        n_test=len(splits.test),
        input_shape=shape,
        normalization="divide_by_max_uint16",
        threshold=config.threshold,
        training=training,
        strategy=strategy,
        distribution=distribution,
        metrics={
            "best_epoch": float(result.best_epoch),
            "epochs_run": float(result.epochs_run),
            "best_val_loss": float(best["val_loss"]),
            "best_val_dice": float(best.get("val_dice", float("nan"))),
            "best_val_iou": float(best.get("val_iou", float("nan"))),
            "best_val_dice_mass": float(best.get("val_dice_mass", float("nan"))),
            "last_val_dice": float(last.get("val_dice", float("nan"))),
            "max_val_dice": float(max(d for d in dices)),
        },
        weights_origin=weights_origin(config.arch, config.weights),
    )
    if patch:
        full = _build(config, shape)
        full.set_weights(model.get_weights())
        model = full
    refiner = None
    breasts = _Rows(store.array("breast_masks")) if store.has("breast_masks") else None
    if config.refine is not None:
        from massseg.refine import train_refiner

        refiner, refine_history, refine_metrics = train_refiner(
            config.refine, images, masks, train_idx, valid_idx, seed=config.seed,
            breasts=breasts,
        )
        card.metrics.update({f"refiner_{k}": v for k, v in refine_metrics.items()})
    scorer = None
    if config.fp_reduction is not None:
        refiners = None
        if refiner is not None:
            from massseg.refine import Refiners

            assert config.refine is not None
            refiners = Refiners(models=[refiner], margin=float(config.refine.margin),
                                size=int(config.refine.size), model_ids=[])
        scorer = fit_scorer(config.fp_reduction, model, refiners, images, masks, train_idx,
                            valid_idx, threshold=config.threshold, seed=config.seed,
                            breasts=breasts)
        card.metrics.update(scorer.card_metrics())
    if is_chief(distribution):  # multi-worker: only the chief writes
        save_model_folder(config.out, model, card, result)
        if refiner is not None:
            _save_refiner(config, refiner, card, refine_history, refine_metrics)
        if scorer is not None:
            scorer.save(config.out)
        shutil.rmtree(work, ignore_errors=True)
    return TrainResult(
        arch=config.arch,
        fold=config.fold,
        model_dir=config.out,
        model_id=card.model_id,
        input_shape=shape,
        n_train=len(train_idx),
        n_valid=len(valid_idx),
        epochs_run=result.epochs_run,
        resumed_from=result.resumed_from,
        best_epoch=result.best_epoch,
        best_val_loss=float(best["val_loss"]),
        best_val_dice=float(best.get("val_dice", float("nan"))),
        last_val_dice=float(last.get("val_dice", float("nan"))),
        stop_reason=result.stop_reason,
        seconds=result.seconds,
    )
