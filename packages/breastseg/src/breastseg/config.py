"""Validated settings of the three commands (``extra="forbid"``: a typo is an error).

Each command builds its config from the ``breastseg.<command>`` section of ``params.yaml``
(optional) overridden by command-line options, through :func:`mammo_common.params.load_section`::

    breastseg:
      train:   {input_size: 128x96, filters: 8, epochs: 20, batch_size: 3}
      predict: {output_size: 128x128, margin: 0.02, postprocess: {chest_wall: auto}}
      evaluate: {part: test}

Sizes are ``(rows, cols)`` (:data:`mammo_common.params.Size`): ``1024x768``, ``[1024, 768]``
or ``640`` for a square. Keys renamed to the name every stage uses (``model`` -> ``arch``,
``tta_flips`` -> ``tta``, ``lr_patience`` -> ``reduce_lr_patience``, ``lr_factor`` ->
``reduce_lr_factor``, ``steps_per_epoch_factor`` -> ``steps_multiplier``) are refused with a
message naming the new key.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import Field, model_validator

from breastseg.labeller import LabellerConfig
from breastseg.postprocess import PostprocessConfig
from mammo_common.keras.training.augment import IntensityConfig
from mammo_common.params import RENAMED_KEYS, Size, StrictConfig, parse_size

__all__ = [
    "EvaluateConfig",
    "MaskSource",
    "PredictConfig",
    "Size",
    "TrainConfig",
    "parse_size",
]

MaskSource = Literal["auto", "store", "labeller"]


class _Config(StrictConfig):
    pass


def _legacy_fill_holes(data: Any) -> Any:
    """Move a top-level ``fill_holes`` (before ``postprocess``) into ``postprocess``."""
    if not isinstance(data, dict) or "fill_holes" not in data:
        return data
    data = dict(data)
    value = data.pop("fill_holes")
    post = data.get("postprocess")
    post = post.model_dump() if isinstance(post, PostprocessConfig) else dict(post or {})
    if value is not None:
        post.setdefault("fill_holes", value)
    data["postprocess"] = post
    return data


class TrainConfig(_Config):
    """Settings of ``breastseg train`` (defaults: the reference recipe at full size).

    Attributes:
        data: ``mammograms`` store (from ``mammo ingest``).
        splits: ``splits.json`` (from ``mammo split``).
        fold: 1-based fold: trains on its ``train`` cases, validates on its ``valid`` cases.
        out: Model folder to write (``model.keras``, ``model_card.json``, ``history.csv``).
        arch: Registered network (``unet5l``).
        input_size: Network input (rows, cols), multiples of 16; 1024x768 in the reference.
        filters: Width ``f`` of the first level (16 in the reference).
        epochs: Maximum number of epochs (early stopping usually ends sooner).
        batch_size: Images per step (3 in the reference).
        learning_rate: Adam learning rate (1e-3).
        loss: Loss name for ``mammo_common.keras.training.losses.get_loss`` (soft ``dice``).
        steps_multiplier: Steps per epoch = multiplier x (train images // batch) (3).
        steps_per_epoch: Batches per epoch, overriding ``steps_multiplier`` (``None``, the
            reference: the multiplier's count); a smoke run's 1 makes an epoch one step.
        augment: Random transform (the same on image and mask) on training batches.
        intensity_augment: Random intensity changes of the training images (tone curve,
            contrast, background level, noise, blur), as between mammogram sources
            (``mammo_common.keras.training.augment.IntensityConfig``; a mapping, or ``sources``).
            Identity by default; applied after the geometry, also with ``augment`` off.
        lr_schedule: ``plateau`` (the reference: ReduceLROnPlateau on validation loss with
            the three settings below) or ``poly`` (nnU-Net's decay over ``epochs``: epoch e of
            E trains at ``learning_rate * (1 - e / E) ** 0.9``).
        reduce_lr_patience / reduce_lr_factor / min_lr: ReduceLROnPlateau on validation loss.
        early_stopping_patience: Epochs without improvement before stopping.
        mask_source: ``store`` (breast masks must be in the store), ``labeller`` (always the
            threshold labeller) or ``auto`` (the store's mask where present, else the labeller).
        seed: Seed of weights, shuffling and augmentation.
        resume: Continue from the checkpoint in ``out`` if an earlier run was interrupted.
        mixed_precision: ``bfloat16``, ``float16`` or ``float32`` compute (``None``: float16
            on a GPU, float32 otherwise).
        deterministic: Ask the backend for deterministic kernels (slower).
    """

    RENAMED: ClassVar[dict[str, str]] = {
        k: RENAMED_KEYS[k]
        for k in ("model", "lr_patience", "lr_factor", "steps_per_epoch_factor")
    }

    data: Path
    splits: Path
    fold: int = Field(default=1, ge=1)
    out: Path
    arch: str = "unet5l"
    input_size: Size = (1024, 768)
    filters: int = Field(default=16, ge=1)
    dropout: float = Field(default=0.5, ge=0, lt=1)
    epochs: int = Field(default=100, ge=1)
    batch_size: int = Field(default=3, ge=1)
    learning_rate: float = Field(default=1e-3, gt=0)
    loss: str = "dice"
    steps_multiplier: int = Field(default=3, ge=1)
    steps_per_epoch: int | None = Field(default=None, ge=1)
    augment: bool = True
    intensity_augment: IntensityConfig = Field(default_factory=IntensityConfig)
    lr_schedule: Literal["plateau", "poly"] = "plateau"
    reduce_lr_patience: int = Field(default=3, ge=1)
    reduce_lr_factor: float = Field(default=0.1, gt=0, lt=1)
    min_lr: float = Field(default=1e-8, ge=0)
    early_stopping_patience: int = Field(default=5, ge=1)
    mask_source: MaskSource = "auto"
    labeller: LabellerConfig = Field(default_factory=LabellerConfig)
    seed: int = 0
    resume: bool = True
    mixed_precision: Literal["bfloat16", "float16", "float32"] | None = None
    deterministic: bool = False

    @model_validator(mode="after")
    def _sizes(self) -> TrainConfig:
        bad = [s for s in self.input_size if s % 16]
        if bad:
            raise ValueError(
                f"input_size {self.input_size[0]}x{self.input_size[1]}: sides must be multiples "
                "of 16 (the U-Net pools four times), e.g. 1024x768 or 128x96"
            )
        return self


class PredictConfig(_Config):
    """Settings of ``breastseg predict``.

    Attributes:
        data: ``mammograms`` store to segment.
        out: ``breast`` store to write.
        model: Model folder (from ``breastseg train``); needed for ``method="unet"``.
        method: ``unet`` (the trained network) or ``threshold`` (Otsu plus morphology).
        output_size: Size of the stored, cropped images (640x640 in the reference).
        margin: Margin around the breast's bounding box, as a fraction of its sides.
        normalize: Intensities of the stored crops: ``percentile`` stretches each breast's
            0.5th-99.5th percentiles to a fixed range (the next stages see one scale whatever
            the source), ``none`` keeps the mammogram's values.
        threshold: Probability threshold of the breast mask.
        tta: Average the prediction over flipped copies (test-time augmentation).
        batch_size: Images per prediction batch.
        postprocess: Breast-mask post-processing (:class:`~breastseg.postprocess.PostprocessConfig`:
            ``largest_component``, ``fill_holes``, ``chest_wall`` auto/left/right/none,
            ``cut_width``), also applied inside the threshold labeller. A top-level
            ``fill_holes`` (older params files) is read as ``postprocess.fill_holes``.
        precision: Inference compute, ``float32`` or ``bfloat16`` (faster on CPUs with
            AVX-512 BF16/AMX and recent GPUs; probabilities move by ~0.01-0.03).
        fold_batchnorm: Fold BatchNorms into the convolutions before them (same function,
            fewer passes over memory; see ``mammo_common.keras.deployment.optimize``).
        labeller_fallback: The safeguard of ``method: unet`` against a network that lost the
            breast or took in the background (:func:`breastseg.segment.check_with_labeller`):
            where the network's mask holds less than this share of the threshold labeller's
            breast and lies within it, or is more than its inverse times the labeller's breast
            and holds it, the labeller's mask is used and the case's record says so (0.7:
            outside 70-143 % of the labeller's breast); ``null`` turns it off.
        overwrite: Replace an existing output store.
    """

    RENAMED: ClassVar[dict[str, str]] = {k: RENAMED_KEYS[k] for k in ("tta_flips",)}

    data: Path
    out: Path
    model: Path | None = None
    method: Literal["unet", "threshold"] = "unet"
    output_size: Size = (640, 640)
    margin: float = Field(default=0.02, ge=0, le=1)
    normalize: Literal["none", "percentile"] = "percentile"
    threshold: float = Field(default=0.5, gt=0, lt=1)
    tta: bool = False
    batch_size: int = Field(default=1, ge=1)
    postprocess: PostprocessConfig = Field(default_factory=PostprocessConfig)
    labeller: LabellerConfig = Field(default_factory=LabellerConfig)
    precision: Literal["float32", "bfloat16"] = "float32"
    fold_batchnorm: bool = True
    labeller_fallback: float | None = Field(default=0.7, gt=0, lt=1)
    overwrite: bool = False

    _fill_holes = model_validator(mode="before")(_legacy_fill_holes)

    @property
    def fill_holes(self) -> bool:
        """``postprocess.fill_holes`` (the setting's older, top-level name)."""
        return self.postprocess.fill_holes

    @model_validator(mode="after")
    def _check(self) -> PredictConfig:
        if self.method == "unet" and self.model is None:
            raise ValueError("method 'unet' needs a model folder (--model DIR)")
        return self


class EvaluateConfig(_Config):
    """Settings of ``breastseg evaluate``.

    Attributes:
        data: ``mammograms`` store with the cases to score.
        out: Metrics JSON (flat keys, for ``dvc metrics``).
        model: Model folder; needed for ``method="unet"``.
        method: ``unet`` or ``threshold`` (scores the stand-in segmenter).
        splits: ``splits.json``; without it every case of the store is scored.
        part: ``test``, ``valid`` (of ``fold``), ``train`` (of ``fold``) or ``all``.
        fold: 1-based fold for ``valid``/``train``; defaults to the model card's fold.
        per_case: Per-case JSON (default: ``<out stem>.cases.json`` next to ``out``).
        plot: PNG of the best and worst cases with contours (optional).
        n_plot: How many best and how many worst cases the PNG shows.
        reference: Masks scored against: ``store``, ``labeller`` or ``auto``.
        threshold: Probability threshold.
        postprocess: Breast-mask post-processing, as ``breastseg predict`` (the predicted masks
            are scored as predict stores them).
        precision: Inference compute, as ``breastseg predict --precision``.
        fold_batchnorm: Fold BatchNorms, as ``breastseg predict``.
        labeller_fallback: As ``breastseg predict`` (the masks are scored as predict stores
            them; the metrics count the cases where the labeller's mask was used).
    """

    RENAMED: ClassVar[dict[str, str]] = {k: RENAMED_KEYS[k] for k in ("tta_flips",)}

    data: Path
    out: Path
    model: Path | None = None
    method: Literal["unet", "threshold"] = "unet"
    splits: Path | None = None
    part: Literal["test", "valid", "train", "all"] = "test"
    fold: int | None = Field(default=None, ge=1)
    per_case: Path | None = None
    plot: Path | None = None
    n_plot: int = Field(default=2, ge=1, le=8)
    reference: MaskSource = "auto"
    threshold: float = Field(default=0.5, gt=0, lt=1)
    tta: bool = False
    batch_size: int = Field(default=1, ge=1)
    postprocess: PostprocessConfig = Field(default_factory=PostprocessConfig)
    labeller: LabellerConfig = Field(default_factory=LabellerConfig)
    precision: Literal["float32", "bfloat16"] = "float32"
    fold_batchnorm: bool = True
    labeller_fallback: float | None = Field(default=0.7, gt=0, lt=1)

    _fill_holes = model_validator(mode="before")(_legacy_fill_holes)

    @property
    def fill_holes(self) -> bool:
        """``postprocess.fill_holes`` (the setting's older, top-level name)."""
        return self.postprocess.fill_holes

    @model_validator(mode="after")
    def _check(self) -> EvaluateConfig:
        if self.method == "unet" and self.model is None:
            raise ValueError("method 'unet' needs a model folder (--model DIR)")
        if self.part != "all" and self.splits is None:
            raise ValueError(f"part {self.part!r} needs --splits (or use --part all)")
        return self

    @property
    def per_case_path(self) -> Path:
        """Where the per-case JSON goes."""
        return self.per_case or self.out.with_name(f"{self.out.stem}.cases.json")
