"""Validated settings of the ``massclass`` section of ``params.yaml`` (unknown keys are errors).

Layout of the section (every key optional; defaults are the reference's settings)::

    massclass:
      train:                     # TrainConfig
        arch: vgg16              # the network (a backbone and the classifier head)
        input_size: 224
        weights: auto            # auto | imagenet | null | path to a weights file
        roi: {source: pred, representation: image, margin: 0.25}
        batch_size: 8
        phases:                  # the reference's three-stage fine-tuning
          - {name: head, trainable: head, learning_rate: 1.0e-3, epochs: 3}
          - {name: top, trainable: 0.25, learning_rate: 1.0e-4, epochs: 10}
          - {name: all, trainable: all, learning_rate: 1.0e-5, epochs: 100,
             early_stopping_patience: 10}
        class_weight: none       # none | balanced
      predict:                   # PredictConfig
        threshold: 0.5           # a number, or youden (chosen on the fold's validation cases)
      evaluate:                  # EvaluateConfig
        n_bootstrap: 1000

Load a section with :func:`load_section`, e.g. ``load_section(TrainConfig, "params.yaml",
"train", overrides={"arch": "resnet50v2"})``. The keys renamed to the name every stage uses
(``backbone`` -> ``arch``, ``backbone_options`` -> ``arch_options``) are refused with a message
naming the new key.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, Field, field_validator, model_validator

from mammo_common.errors import ConfigError
from mammo_common.keras.augment import IntensityConfig
from mammo_common.params import (
    RENAMED_KEYS,
    StrictConfig,
    deep_merge,
    load_config,
    read_params_section,
)

__all__ = [
    "SECTION",
    "EvaluateConfig",
    "PhaseConfig",
    "PredictConfig",
    "RoiConfig",
    "TrainConfig",
    "load_section",
    "reference_phases",
]

#: Top-level key of this stage in ``params.yaml``.
SECTION = "massclass"


class _Strict(StrictConfig):
    pass


class RoiConfig(_Strict):
    """How regions of interest are cut from a ``masses`` store.

    Attributes:
        source: ``pred``: connected components of the predicted ``mass_pred`` (prediction and
            normal training); ``truth``: components of the ground-truth ``mass_masks``
            (training on annotated masses, when the store carries them); ``pred_matched``:
            the predicted components that overlap a ground-truth mass (training on the
            outlines the segmentation draws, without its false detections; prediction always
            uses ``pred``).
        representation: ``image``: the gray crop repeated to 3 channels; ``image+mask``:
            channels (image, image, this mass's mask).
        margin: Context around the mass, as a fraction of its bounding box's longer side added
            on each side; the crop is square, centred on the box.
        min_pixels: Components smaller than this are dropped; ``None`` uses the store's own
            ``min_object_pixels``.
        min_side: Smallest crop side in store pixels (tiny masses keep some context).
        benign_without_callback: How ``BENIGN_WITHOUT_CALLBACK`` counts: ``benign`` (default),
            ``malignant`` or ``exclude`` (such cases get no label).
    """

    source: Literal["pred", "truth", "pred_matched"] = "pred"
    representation: Literal["image", "image+mask"] = "image"
    margin: float = Field(default=0.25, ge=0.0, le=5.0)
    min_pixels: int | None = Field(default=None, ge=0)
    min_side: int = Field(default=32, ge=1)
    benign_without_callback: Literal["benign", "malignant", "exclude"] = "benign"


class PhaseConfig(_Strict):
    """One fine-tuning phase.

    Attributes:
        name: Phase name (shown in the history).
        trainable: Backbone layers trained: ``head`` (none), ``all`` or a fraction in (0, 1]
            of the backbone's layers counted from the top.
        learning_rate: Adam learning rate.
        epochs: Most epochs of this phase (0 skips it).
        early_stopping_patience: Epochs without a better validation loss before stopping;
            ``None`` runs every epoch. The best weights of the phase are always restored.
    """

    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_\-]+$")
    trainable: Literal["head", "all"] | float = "head"
    learning_rate: float = Field(gt=0.0, lt=1.0)
    epochs: int = Field(ge=0)
    early_stopping_patience: int | None = Field(default=None, ge=1)

    @field_validator("trainable")
    @classmethod
    def _fraction(cls, value: Any) -> Any:
        if isinstance(value, float) and not 0.0 < value <= 1.0:
            raise ValueError("a trainable fraction must be in (0, 1]")
        return value


def reference_phases() -> list[PhaseConfig]:
    """The reference's three phases: head 1e-3 x3; top 25 % 1e-4 x10; all 1e-5 up to 100."""
    return [
        PhaseConfig(name="head", trainable="head", learning_rate=1e-3, epochs=3),
        PhaseConfig(name="top", trainable=0.25, learning_rate=1e-4, epochs=10),
        PhaseConfig(
            name="all", trainable="all", learning_rate=1e-5, epochs=100, early_stopping_patience=10
        ),
    ]


class TrainConfig(_Strict):
    """Settings of ``massclass train`` (section ``massclass.train``).

    Attributes:
        arch: The network: a backbone registry name (``massclass models`` lists them) under
            the classifier head.
        input_size: Side of the square model input (reference: 224).
        weights: Backbone initialisation: ``auto``, ``imagenet``, ``null`` or a weights file.
        arch_options: Extra backbone arguments (e.g. ``{alpha: 0.35}`` for MobileNetV2,
            ``{widths: [8, 16, 32]}`` for tinycnn).
        dense_units: Hidden dense widths of the head (reference: 256, 128).
        dropout: Head dropout (reference: 0.5).
        roi: Region-of-interest settings (kept in the model card; predict uses the same).
        batch_size: Batch size (reference: 8).
        phases: The fine-tuning phases, run in order.
        augment: Augment training batches (flips, rotation 90, shift 0.2, zoom 0.2, constant
            fill); validation batches never are.
        intensity_augment: Random intensity changes of the training crops (tone curve,
            contrast, background level, noise, blur), as between mammogram sources
            (``mammo_common.keras.augment.IntensityConfig``; a mapping, or ``sources``).
            Identity by default; applied after the geometry, also with ``augment`` off.
        class_weight: ``none`` or ``balanced`` (weights inverse to the class frequencies).
        freeze_batchnorm: Keep backbone BatchNorm layers frozen in every phase (not the
            reference's behaviour; helps with small batches).
        seed: Seed of weights initialisation, shuffling and augmentation.
        threshold: Decision threshold written into the model card: a number, or ``youden``
            (chosen on the fold's validation masses); both are recorded.
    """

    RENAMED: ClassVar[dict[str, str]] = {
        "backbone": RENAMED_KEYS["backbone"],
        "backbone_options": RENAMED_KEYS["backbone_options"],
    }

    arch: str = "vgg16"
    input_size: int = Field(default=224, ge=16, le=1024)
    weights: str | None = "auto"
    arch_options: dict[str, Any] = Field(default_factory=dict)
    dense_units: tuple[int, int] = (256, 128)
    dropout: float = Field(default=0.5, ge=0.0, lt=1.0)
    roi: RoiConfig = Field(default_factory=RoiConfig)
    batch_size: int = Field(default=8, ge=1)
    phases: list[PhaseConfig] = Field(default_factory=reference_phases, min_length=1)
    augment: bool = True
    intensity_augment: IntensityConfig = Field(default_factory=IntensityConfig)
    class_weight: Literal["none", "balanced"] = "none"
    freeze_batchnorm: bool = False
    seed: int = 0
    threshold: float | Literal["youden"] = 0.5

    @model_validator(mode="after")
    def _check(self) -> TrainConfig:
        names = [p.name for p in self.phases]
        if len(set(names)) != len(names):
            raise ValueError(f"phase names must be unique, got {names}")
        if not any(p.epochs > 0 for p in self.phases):
            raise ValueError("at least one phase needs epochs > 0")
        if isinstance(self.threshold, float) and not 0.0 < self.threshold < 1.0:
            raise ValueError("threshold must be in (0, 1) or 'youden'")
        if "".join(ch for ch in self.arch.lower() if ch.isalnum()) == "descriptors" and (
            self.roi.representation != "image+mask"
        ):
            raise ValueError(
                "the descriptors backbone measures the mass outline, so it needs "
                "roi.representation: image+mask"
            )
        return self


class PredictConfig(_Strict):
    """Settings of ``massclass predict`` (section ``massclass.predict``).

    Attributes:
        threshold: A number in (0, 1), ``youden`` (each model card's validation-chosen
            threshold; the mean over an ensemble) or ``card`` (the card's default threshold).
        batch_size: Inference batch size.
        precision: Inference compute, ``float32`` or ``bfloat16`` (faster on CPUs with
            AVX-512 BF16/AMX and recent GPUs; probabilities move by ~0.01-0.03).
        fold_batchnorm: Fold BatchNorms into the convolutions before them (same function,
            fewer passes over memory; see ``mammo_common.keras.optimize``).
    """

    threshold: float | Literal["youden", "card"] = 0.5
    batch_size: int = Field(default=8, ge=1)
    precision: Literal["float32", "bfloat16"] = "float32"
    fold_batchnorm: bool = True

    @field_validator("threshold")
    @classmethod
    def _range(cls, value: Any) -> Any:
        if isinstance(value, float) and not 0.0 < value < 1.0:
            raise ValueError("threshold must be in (0, 1), 'youden' or 'card'")
        return value


class EvaluateConfig(_Strict):
    """Settings of ``massclass evaluate`` (section ``massclass.evaluate``).

    Attributes:
        n_bootstrap: Bootstrap resamples of the ROC AUC confidence interval.
        confidence: Coverage of the interval.
        seed: Bootstrap seed.
        missed: How cases without a found mass count at case level: ``benign`` (probability
            0: the pipeline called them negative; default) or ``exclude``.
    """

    n_bootstrap: int = Field(default=1000, ge=1)
    confidence: float = Field(default=0.95, gt=0.0, lt=1.0)
    seed: int = 0
    missed: Literal["benign", "exclude"] = "benign"


def load_section(
    model: type[BaseModel],
    params_file: str | Path | None,
    part: str,
    overrides: dict[str, Any] | None = None,
) -> Any:
    """Load ``massclass.<part>`` of ``params_file`` (if given) with ``overrides`` on top.

    Nested overrides (e.g. ``{"roi": {"margin": 0.5}}``) are merged key by key into the file's
    values; ``None`` values are ignored. A missing ``massclass`` section or ``<part>``
    sub-section counts as empty (defaults), a typo in a key is an error.

    Raises:
        ConfigError: Naming the file, the bad key and the fix.
    """
    values: dict[str, Any] = {}
    if params_file is not None:
        try:
            values = read_params_section(params_file, f"{SECTION}.{part}")
        except ConfigError as exc:
            if exc.problem != "section is missing":
                raise
    merged = deep_merge(values, overrides or {})
    try:
        return load_config(model, base=merged)
    except ConfigError as exc:
        raise ConfigError(
            exc.problem, path=params_file, field=f"{SECTION}.{part}.{exc.field}", fix=exc.fix
        ) from None
