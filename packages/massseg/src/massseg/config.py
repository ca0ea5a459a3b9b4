"""Validated settings of every massseg command (the ``massseg`` section of ``params.yaml``).

``params.yaml`` layout (every key optional; unknown keys are errors)::

    massseg:
      train:            # TrainSettings: massseg train and massseg cv
        arch: unetpp_xception
        input_size: [640, 640]
        epochs: 100
        batch_size: 2
        loss: dice
      predict:          # PredictSettings
        threshold: 0.5
        min_object_pixels: 30
        tta: false
      evaluate:         # EvaluateSettings
        overlays: 3

Command-line options override the file. Paths (data, splits, output) are given on the command
line only; the ``*Config`` models add them to the settings. Every command loads its config with
:func:`mammo_common.params.load_section`, as the other stages do::

    config = load_section(TrainConfig, "params.yaml", "massseg.train", {"epochs": 3},
                          paths={"data": ..., "splits": ..., "fold": 1, "out": ...},
                          settings_model=TrainSettings)
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from mammo_common.keras.training.augment import IntensityConfig
from mammo_common.params import RENAMED_KEYS, Size, StrictConfig, parse_size

__all__ = [
    "LOSS_NAMES",
    "CVConfig",
    "EvaluateConfig",
    "EvaluateSettings",
    "FPReductionSettings",
    "MassSegParams",
    "PredictConfig",
    "PredictSettings",
    "RefineSettings",
    "TrainConfig",
    "TrainSettings",
    "parse_kwargs",
    "parse_size",
    "reference_learning_rate",
]

LOSS_NAMES = ("dice", "generalized_dice", "tversky", "focal_tversky", "bce_dice")
"""Losses offered by mammo_common.keras.training.losses.get_loss."""

MixedPrecision = Literal["bfloat16", "float16"]


def parse_kwargs(items: list[str] | None) -> dict[str, Any]:
    """``["filters=4", "dropout=0.1,deep_supervision=false"]`` -> typed keyword arguments."""
    result: dict[str, Any] = {}
    for item in items or []:
        for part in item.split(","):
            if not part.strip():
                continue
            if "=" not in part:
                raise ValueError(f"{part!r} must look like key=value (e.g. filters=4)")
            key, raw = (s.strip() for s in part.split("=", 1))
            if not key.isidentifier():
                raise ValueError(f"{key!r} is not a valid keyword name")
            result[key] = _typed(raw)
    return result


def _typed(raw: str) -> Any:
    low = raw.lower()
    if low in ("true", "false"):
        return low == "true"
    if low in ("none", "null"):
        return None
    for cast in (int, float):
        try:
            return cast(raw)
        except ValueError:
            pass
    return raw


def reference_learning_rate(arch: str) -> float:
    """The reference's Adam learning rate: 1e-3 for unet5l, 1e-4 for every other network."""
    return 1e-3 if arch == "unet5l" else 1e-4


class _Strict(StrictConfig):
    pass


class RefineSettings(_Strict):
    """The second-look refiner trained beside a whole-image network (:mod:`massseg.refine`).

    Attributes:
        size: Side of the refiner's square input (a multiple of 16).
        filters: Width of its five-level U-Net.
        dropout: Its dropout.
        margin: Square around a detected object: its box plus this share of its longer side
            on each side (prediction; training draws from ``margin_range``).
        margin_range: Random margin of the training squares.
        shift: Largest random offset of a training square's centre (share of its side).
        scale_range: Random extra factor on a training square's side.
        negative_fraction: Share of the training squares placed at random in the breast
            instead of on a mass (their truth: mostly empty), so that the refiner rejects
            false detections.
        epochs: Training epochs (the best by validation Dice is kept).
        samples_per_epoch: Random squares per epoch.
        batch_size: Squares per step.
        learning_rate: Adam learning rate.
        loss: Loss name.
    """

    size: int = Field(default=64, ge=16, multiple_of=16)
    filters: int = Field(default=16, ge=1)
    dropout: float = Field(default=0.1, ge=0.0, lt=1.0)
    margin: float = Field(default=0.5, ge=0.0)
    margin_range: tuple[float, float] = (0.25, 0.9)
    shift: float = Field(default=0.12, ge=0.0, lt=0.5)
    scale_range: tuple[float, float] = (0.8, 1.3)
    negative_fraction: float = Field(default=0.0, ge=0.0, lt=1.0)
    epochs: int = Field(default=30, ge=1)
    samples_per_epoch: int = Field(default=640, ge=1)
    batch_size: int = Field(default=32, ge=1)
    learning_rate: float = Field(default=1e-3, gt=0)
    loss: Literal["dice", "generalized_dice", "tversky", "focal_tversky", "bce_dice"] = "bce_dice"


class FPReductionSettings(_Strict):
    """False-positive reduction fitted after training (:mod:`massseg.fp_reduction`).

    Attributes:
        scorer: The classifier over each detected object's measurements: ``boosted_trees``
            (the default: gradient-boosted trees on every measurement, shape and breast
            context included) or ``logistic`` (a logistic regression on the first seven, the
            first version's scorer).
        c: Inverse L2 regularisation strength of the logistic regression.
        tolerance: Score thresholds whose validation Dice (images with a mass) is within this
            of the best count as equally good; the highest, which keeps the fewest false
            detections, is the operating point.
        min_object_pixels: Smallest object measured (as ``predict.min_object_pixels``).
        batch_size: Images per forward pass while collecting the examples.
        max_objects: Objects kept per image, the highest-scoring ones: ``"auto"`` (the
            default: the loosest of no cap, 3, 2 or 1 whose validation Dice is within
            ``tolerance`` of the best, so a cap is set only when it clearly helps), a number,
            or ``null`` (never cap).
    """

    scorer: Literal["boosted_trees", "logistic"] = "boosted_trees"
    c: float = Field(default=1.0, gt=0)
    tolerance: float = Field(default=0.005, ge=0.0, lt=1.0)
    max_objects: Literal["auto"] | Annotated[int, Field(ge=1)] | None = "auto"
    min_object_pixels: int = Field(default=30, ge=1)
    batch_size: int = Field(default=16, ge=1)


class TrainSettings(_Strict):
    """Training hyper-parameters (``massseg.train``); defaults are the reference recipe.

    Attributes:
        arch: Registry name of the network (``massseg models`` lists them).
        input_size: Network input (rows, cols); ``None`` uses the store's image size. Sides must
            be multiples of the network's input multiple (32; 16 for unet5l).
        arch_options: Keyword arguments for ``build_model`` (widths such as ``filters``,
            dropout), e.g. ``{"filters": 4}`` for a CPU-sized network.
        weights: Initial encoder weights for the networks with an ImageNet encoder: ``None``
            (random, the default offline), ``"imagenet"`` (download or local cache),
            ``"auto"`` (ImageNet when cached locally, else random with a message) or a
            weights file.
        epochs: Maximum number of epochs (reference 100).
        batch_size: Images per batch (reference 2).
        learning_rate: Adam learning rate; ``None`` is the reference's (1e-3 for unet5l, else
            1e-4).
        loss: Loss name (soft Dice pooled over the batch is the reference).
        steps_multiplier: Steps per epoch = multiplier x (training images // batch) (reference 3).
        steps_per_epoch: Batches per epoch, overriding ``steps_multiplier`` (``None``, the
            reference: the multiplier's count); a smoke run's 1 makes an epoch one step.
        patch_size: Train on random patches of this (rows, cols) size instead of whole images
            (``None``, the reference). Patches cost less per step and, with
            ``foreground_fraction``, show the network many more mass pixels; validation and
            prediction use whole images (the networks are fully convolutional). Needs a network
            that builds with an undefined input size (``unet5l``).
        foreground_fraction: Share of training patches that hold a mass pixel (foreground
            oversampling, as nnU-Net); the rest are placed uniformly.
        augment: On-the-fly augmentation of the training batches (mass preset).
        intensity_augment: Random intensity changes of the training images (tone curve,
            contrast, background level, noise, blur), as between mammogram sources
            (``mammo_common.keras.training.augment.IntensityConfig``; a mapping, or ``sources``).
            Identity by default; applied after the geometry, also with ``augment`` off.
        lr_schedule: How the learning rate changes: ``plateau`` (the reference:
            ReduceLROnPlateau on the monitored value, the ``reduce_lr_*`` settings) or
            ``poly`` (nnU-Net's polynomial decay over ``epochs``: epoch e of E trains at
            ``learning_rate * (1 - e / E) ** 0.9``; the ``reduce_lr_*`` settings are unused).
        reduce_lr_patience: ReduceLROnPlateau patience on validation loss (reference 3).
        reduce_lr_factor: ReduceLROnPlateau factor (reference 0.1).
        min_lr: ReduceLROnPlateau floor (reference 1e-8).
        early_stopping_patience: Early stopping patience on validation loss (reference 5);
            ``None`` never stops early.
        monitor: What the best-weights checkpoint, ReduceLROnPlateau and early stopping watch:
            ``val_loss`` (the reference), ``val_dice`` (per-image thresholded Dice over every
            validation image, 1 for an image without a mass predicted empty, so false
            detections count) or ``val_dice_mass`` (the mean thresholded Dice over the
            validation images with a mass: the number ``massseg evaluate`` reports as
            ``dice_mean``). ``val_dice`` rewards cautious epochs: in the demo it kept epoch 7
            of 18 and tracked the test Dice poorly (Spearman 0.47 over the 18 epochs' weights),
            where ``val_dice_mass`` tracked it (0.88) and kept epoch 17
            (``bench/massseg_epochs.py``).
        threshold: Decision threshold recorded in the model card (reference 0.5).
        seed: Seed of weights, shuffling and augmentation.
        mixed_precision: ``None``, ``"bfloat16"`` (CPU) or ``"float16"`` (GPU).
        deterministic: Ask the backend for deterministic kernels (slower).
        resume: Continue an interrupted training from its checkpoint.
        overwrite: Replace a finished model folder instead of refusing (train) or reusing
            it (cv).
        refine: Also train a second-look refiner (:class:`RefineSettings`) that redraws
            each detected mass at full resolution; ``None`` (the reference) trains none.
        fp_reduction: Also fit a false-positive scorer (:class:`FPReductionSettings`) on the
            objects the trained network (and refiner) find on the training images, its
            operating point on the validation images; ``None`` (the reference) fits none.
    """

    RENAMED: ClassVar[dict[str, str]] = {"model_kwargs": RENAMED_KEYS["model_kwargs"]}

    arch: str = "unetpp_xception"
    input_size: Size | None = None
    arch_options: dict[str, Any] = Field(default_factory=dict)
    weights: str | None = None
    epochs: int = Field(default=100, ge=1)
    batch_size: int = Field(default=2, ge=1)
    learning_rate: float | None = Field(default=None, gt=0)
    loss: Literal["dice", "generalized_dice", "tversky", "focal_tversky", "bce_dice"] = "dice"
    steps_multiplier: int = Field(default=3, ge=1)
    steps_per_epoch: int | None = Field(default=None, ge=1)
    patch_size: Size | None = None
    foreground_fraction: float = Field(default=0.5, ge=0.0, le=1.0)
    augment: bool = True
    intensity_augment: IntensityConfig = Field(default_factory=IntensityConfig)
    lr_schedule: Literal["plateau", "poly"] = "plateau"
    reduce_lr_patience: int = Field(default=3, ge=1)
    reduce_lr_factor: float = Field(default=0.1, gt=0, lt=1)
    min_lr: float = Field(default=1e-8, ge=0)
    early_stopping_patience: int | None = Field(default=5, ge=1)
    monitor: Literal["val_loss", "val_dice", "val_dice_mass"] = "val_loss"
    threshold: float = Field(default=0.5, gt=0, lt=1)
    seed: int = 0
    mixed_precision: MixedPrecision | None = None
    deterministic: bool = False
    resume: bool = True
    overwrite: bool = False
    refine: RefineSettings | None = None
    fp_reduction: FPReductionSettings | None = None

    @field_validator("arch")
    @classmethod
    def _arch(cls, value: str) -> str:
        from massseg.models import MODEL_NAMES

        if value not in MODEL_NAMES:
            raise ValueError(f"unknown network {value!r}; choose one of {', '.join(MODEL_NAMES)}")
        return value

    @field_validator("arch_options")
    @classmethod
    def _known_kwargs(cls, value: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
        # The network classes pass unknown names on to keras.Model, which drops them: a typo
        # (filterz: 4) would silently train the full-width network.
        arch = info.data.get("arch")
        if value and arch is not None:
            from massseg.models import check_model_kwargs

            try:
                check_model_kwargs(arch, value)
            except TypeError as exc:
                raise ValueError(str(exc)) from None
        return value

    @property
    def effective_learning_rate(self) -> float:
        """The learning rate used: the setting, or the reference's for the network."""
        return self.learning_rate or reference_learning_rate(self.arch)


class TrainConfig(TrainSettings):
    """``massseg train``: one fold of one network.

    Attributes:
        data: The ``breast`` store (with ground-truth ``mass_masks``).
        splits: ``splits.json`` made by ``mammo split``.
        fold: 1-based fold to train (its ``train`` cases) and validate (its ``valid`` cases).
        out: The model folder to write, e.g. ``models/massseg/unet5l/fold_1``.
    """

    data: Path
    splits: Path
    fold: int = Field(ge=1)
    out: Path


class CVConfig(TrainSettings):
    """``massseg cv``: every fold (or ``folds``) of one network, then the CV table.

    Attributes:
        data: The ``breast`` store.
        splits: ``splits.json``.
        out: The network's folder; fold ``k`` goes to ``out/fold_<k>``, the table to
            ``out/cv.json`` and ``out/cv.md``.
        folds: 1-based folds to train; ``None`` trains all folds of the splits file.
    """

    data: Path
    splits: Path
    out: Path
    folds: list[int] | None = None

    @field_validator("folds", mode="before")
    @classmethod
    def _folds(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [int(v) for v in re.split(r"[,\s]+", value.strip()) if v]
        if isinstance(value, int):
            return [value]
        return value

    @field_validator("folds")
    @classmethod
    def _positive_folds(cls, value: list[int] | None) -> list[int] | None:
        if value is not None and (not value or min(value) < 1 or len(set(value)) != len(value)):
            raise ValueError(f"folds {value} must be distinct 1-based fold numbers")
        return value

    def fold_config(self, fold: int) -> TrainConfig:
        """The :class:`TrainConfig` of one fold (model folder ``out/fold_<fold>``)."""
        values = self.model_dump(exclude={"folds", "out"})
        return TrainConfig(**values, fold=fold, out=self.out / f"fold_{fold}")


class PredictSettings(_Strict):
    """Prediction settings (``massseg.predict``).

    Attributes:
        threshold: Probability threshold of the binary mask; ``None`` uses the models' card
            threshold (0.5 in the reference).
        min_object_pixels: Predicted objects smaller than this are removed (reference 30).
        largest_component: Keep only the largest predicted object per image.
        tta: Average the predictions of the image and its horizontal/vertical flips.
        batch_size: Images per prediction batch (memory stays constant).
        precision: Inference compute, ``float32`` or ``bfloat16`` (faster on CPUs with
            AVX-512 BF16/AMX and recent GPUs; probabilities move by ~0.01-0.03).
        fold_batchnorm: Fold BatchNorms into the convolutions before them (same function,
            fewer passes over memory; see ``mammo_common.keras.deployment.optimize``).
        refine: Use the models' refiners (:mod:`massseg.refine`) when they were trained with
            one; ``False`` keeps the whole-image network's map.
        fp_reduction: Remove the detected objects that the models' false-positive scorer
            (:mod:`massseg.fp_reduction`) rejects, when they were trained with one.
        overwrite: Replace an existing output store.
    """

    threshold: float | None = Field(default=None, gt=0, lt=1)
    min_object_pixels: int = Field(default=30, ge=0)
    largest_component: bool = False
    tta: bool = False
    batch_size: int = Field(default=4, ge=1)
    precision: Literal["float32", "bfloat16"] = "float32"
    fold_batchnorm: bool = True
    refine: bool = True
    fp_reduction: bool = True
    overwrite: bool = False


class PredictConfig(PredictSettings):
    """``massseg predict``.

    Attributes:
        models: One model folder, or several (an ensemble; probabilities are averaged).
        data: The ``breast`` store to segment.
        out: The ``masses`` store to write.
    """

    models: list[Path] = Field(min_length=1)
    data: Path
    out: Path


class EvaluateSettings(_Strict):
    """Evaluation settings (``massseg.evaluate``).

    Attributes:
        part: Restrict to a part of the splits (``test``, or ``valid``/``train`` of ``fold``);
            needs ``splits``. ``None`` evaluates every case of the store.
        fold: Fold of ``part`` ``valid``/``train``.
        overlays: How many cases of each of best/median/worst to draw (0 = none).
    """

    part: Literal["train", "valid", "test"] | None = None
    fold: int | None = Field(default=None, ge=1)
    overlays: int = Field(default=1, ge=0)


class EvaluateConfig(EvaluateSettings):
    """``massseg evaluate``: a ``masses`` store against its ground truth, or a CV folder.

    Attributes:
        data: The ``masses`` store to score (needs ground-truth ``mass_masks``).
        cv: A network folder with ``fold_<k>`` model folders: summarise the CV instead.
        splits: ``splits.json``, to select ``part``.
        out: Metrics JSON (flat keys, for ``dvc metrics``).
        per_case: Optional per-case JSON (case id, Dice, Jaccard, AUC, areas).
        overlays_dir: Folder for the PNG overlays of the best, median and worst cases.
        markdown: Optional Markdown table (the CV table, or the metrics).
    """

    data: Path | None = None
    cv: Path | None = None
    splits: Path | None = None
    out: Path
    per_case: Path | None = None
    overlays_dir: Path | None = None
    markdown: Path | None = None

    @field_validator("overlays_dir")
    @classmethod
    def _folder_not_count(cls, value: Path | None) -> Path | None:
        if value is not None and str(value).isdigit():
            raise ValueError(
                f"overlays_dir {str(value)!r} looks like a count: --overlays is the folder for "
                "the PNGs; give the number of cases per category with --n-overlays "
                "(massseg.evaluate.overlays in params.yaml; 0 draws none)"
            )
        return value

    @model_validator(mode="after")
    def _one_source(self) -> EvaluateConfig:
        if (self.data is None) == (self.cv is None):
            raise ValueError("give exactly one of data (a masses store) or cv (a CV folder)")
        if self.part is not None and self.splits is None:
            raise ValueError(f"part={self.part!r} needs splits (a splits.json)")
        if self.part in ("train", "valid") and self.fold is None:
            raise ValueError(f"part={self.part!r} needs a fold")
        return self


class MassSegParams(_Strict):
    """The whole ``massseg`` section of ``params.yaml`` (for validating it in one go)."""

    train: TrainSettings = Field(default_factory=TrainSettings)
    predict: PredictSettings = Field(default_factory=PredictSettings)
    evaluate: EvaluateSettings = Field(default_factory=EvaluateSettings)
