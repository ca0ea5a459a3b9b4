"""Validated settings of every massclass command (the ``massclass`` section of ``params.yaml``).

``params.yaml`` layout (every key optional; defaults are the reference's settings; unknown keys
are errors)::

    massclass:
      train:                     # TrainSettings
        arch: vgg16              # the network (a backbone and the classifier head)
        input_size: 224
        weights: auto            # auto | imagenet | null (none, scratch) | a weights file
        roi: {source: pred, representation: image, margin: 0.25}
        batch_size: 8
        phases:                  # the reference's three-stage fine-tuning
          - {name: head, trainable: head, learning_rate: 1.0e-3, epochs: 3}
          - {name: top, trainable: 0.25, learning_rate: 1.0e-4, epochs: 10}
          - {name: all, trainable: all, learning_rate: 1.0e-5, epochs: 100,
             early_stopping_patience: 10}
        class_weight: none       # none | balanced
      predict:                   # PredictSettings
        threshold: 0.5           # a number, youden (chosen on the fold's validation cases), card
      evaluate:                  # EvaluateSettings
        n_bootstrap: 1000

As in the other stages, each command has a ``*Settings`` model (its section of the file, no
paths) and a ``*Config`` model (the settings plus the paths and run options given on the
command line: data, splits, fold, out, models...), and the command loads it with
:func:`mammo_common.params.load_section`: the section, the command-line settings over it, then
the paths (a missing ``massclass`` section or sub-section counts as empty).
``massclass.train.train``, ``massclass.predict.predict`` and ``massclass.evaluate.evaluate``
take the resulting config::

    config = load_section(TrainConfig, "params.yaml", "massclass.train",
        {"arch": "resnet50v2", "epochs": "1,1,2"},
        paths={"data": "data/masses.zarr", "splits": "data/splits.json", "fold": 1,
               "out": "models/massclass/vgg16/fold_1"},
        settings_model=TrainSettings, missing_ok=True)

The settings accept what the command line writes, so the Python API and the CLI behave the
same: ``threshold`` as text (``"0.5"``, ``"youden"``), ``weights`` ``none``/``null``/``scratch``
(no pre-trained weights), and ``epochs`` (``"3,10,100"`` or a list: one number per phase, put
into ``phases``).

The keys renamed to the name every stage uses (``backbone`` -> ``arch``, ``backbone_options``
-> ``arch_options``) are refused with a message naming the new key.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from mammo_common.keras.training.augment import IntensityConfig
from mammo_common.params import RENAMED_KEYS, StrictConfig

__all__ = [
    "NO_WEIGHTS",
    "SECTION",
    "EvaluateConfig",
    "EvaluateSettings",
    "MassClassParams",
    "PhaseConfig",
    "PredictConfig",
    "PredictSettings",
    "RoiConfig",
    "TrainConfig",
    "TrainSettings",
    "parse_phase_epochs",
    "parse_threshold",
    "reference_phases",
]

#: Top-level key of this stage in ``params.yaml``.
SECTION = "massclass"

#: ``weights`` values that mean "no pre-trained weights" (random initialisation).
NO_WEIGHTS = ("none", "null", "scratch")


def parse_threshold(value: Any, words: tuple[str, ...]) -> Any:
    """A threshold written as text -> a number or one of ``words`` (lower case).

    ``" Youden "`` -> ``"youden"``, ``"0.3"`` -> ``0.3``; other types are returned unchanged
    for pydantic to judge.

    Raises:
        ValueError: Text that is neither a number nor one of ``words``.
    """
    if not isinstance(value, str):
        return value
    text = value.strip().lower()
    if text in words:
        return text
    try:
        return float(text)
    except ValueError:
        names = "/".join(repr(w) for w in words)
        raise ValueError(
            f"threshold {value!r} is neither a number nor {names} (e.g. 0.5 or {words[0]})"
        ) from None


def parse_phase_epochs(value: Any) -> Any:
    """Epochs per phase written as text -> a list of integers.

    ``"3,10,100"`` -> ``[3, 10, 100]``, ``5`` -> ``[5]``; lists are returned unchanged.

    Raises:
        ValueError: Text that is not a comma-separated list of integers.
    """
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return [value]
    if isinstance(value, str):
        try:
            return [int(v) for v in value.split(",") if v.strip() != ""]
        except ValueError:
            raise ValueError(
                f"epochs {value!r} is not a comma-separated list of integers "
                "(one per phase, e.g. 3,10,100)"
            ) from None
    return value


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
        outline: What the ``image+mask`` mask channel holds: ``mask``, the mass's mask as
            given (ground truth or the segmentation's); ``image``, the crop's own outline of
            the mass seeded by that mask (:mod:`massclass.outline`: the contour half-way
            between the mass and its surroundings), so that outlines drawn by different hands
            (an annotator at training, the network at prediction) read alike.
    """

    source: Literal["pred", "truth", "pred_matched"] = "pred"
    representation: Literal["image", "image+mask"] = "image"
    margin: float = Field(default=0.25, ge=0.0, le=5.0)
    min_pixels: int | None = Field(default=None, ge=0)
    min_side: int = Field(default=32, ge=1)
    benign_without_callback: Literal["benign", "malignant", "exclude"] = "benign"
    outline: Literal["mask", "image"] = "mask"

    @model_validator(mode="after")
    def _outline_needs_mask(self) -> RoiConfig:
        if self.outline == "image" and self.representation != "image+mask":
            raise ValueError(
                "roi.outline 'image' redraws the mask channel, which only the 'image+mask' "
                "representation has: set roi.representation: image+mask or roi.outline: mask"
            )
        return self


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


class TrainSettings(_Strict):
    """Training settings (section ``massclass.train``); defaults are the reference's.

    Attributes:
        arch: The network: a backbone registry name (``massclass models`` lists them) under
            the classifier head.
        input_size: Side of the square model input (reference: 224).
        weights: Backbone initialisation: ``auto``, ``imagenet``, ``None`` (also written
            ``none``, ``null`` or ``scratch``: random) or a weights file.
        arch_options: Extra backbone arguments (e.g. ``{alpha: 0.35}`` for MobileNetV2,
            ``{widths: [8, 16, 32]}`` for tinycnn).
        dense_units: Hidden dense widths of the head (reference: 256, 128).
        dropout: Head dropout (reference: 0.5).
        roi: Region-of-interest settings (kept in the model card; predict uses the same).
        batch_size: Batch size (reference: 8).
        phases: The fine-tuning phases, run in order.
        epochs: Shorthand for the phases' epochs, one value per phase (``"3,10,100"`` or
            ``[3, 10, 100]``, as ``--epochs``): put into ``phases`` and not kept (never
            dumped, so not in the model card or the resume fingerprint).
        augment: Augment training batches (flips, rotation 90, shift 0.2, zoom 0.2, constant
            fill); validation batches never are.
        intensity_augment: Random intensity changes of the training crops (tone curve,
            contrast, background level, noise, blur), as between mammogram sources
            (``mammo_common.keras.training.augment.IntensityConfig``; a mapping, or ``sources``).
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
    epochs: list[int] | None = Field(default=None, exclude=True)
    augment: bool = True
    intensity_augment: IntensityConfig = Field(default_factory=IntensityConfig)
    class_weight: Literal["none", "balanced"] = "none"
    freeze_batchnorm: bool = False
    seed: int = 0
    threshold: float | Literal["youden"] = 0.5

    @field_validator("weights", mode="before")
    @classmethod
    def _no_weights(cls, value: Any) -> Any:
        if isinstance(value, str) and value.strip().lower() in NO_WEIGHTS:
            return None
        return value

    @field_validator("threshold", mode="before")
    @classmethod
    def _threshold_text(cls, value: Any) -> Any:
        return parse_threshold(value, ("youden",))

    @field_validator("epochs", mode="before")
    @classmethod
    def _epochs_text(cls, value: Any) -> Any:
        return parse_phase_epochs(value)

    @field_validator("epochs")
    @classmethod
    def _epochs_per_phase(cls, value: list[int] | None, info: ValidationInfo) -> Any:
        if value is None:
            return value
        if not value or min(value) < 0:
            raise ValueError(
                f"epochs {value} needs non-negative integers, one per phase (e.g. 1,1,2)"
            )
        phases = info.data.get("phases")
        if phases is not None and len(value) != len(phases):
            raise ValueError(
                f"epochs gives {len(value)} values for {len(phases)} phases: give one value "
                "per phase, e.g. 3,10,100"
            )
        return value

    @model_validator(mode="after")
    def _check(self) -> TrainSettings:
        if self.epochs is not None:
            self.phases = [p.model_copy(update={"epochs": e})
                           for p, e in zip(self.phases, self.epochs, strict=True)]
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

    def settings(self) -> TrainSettings:
        """Only the settings (the params section): no paths, no run options.

        What the model card records and what the resume fingerprint covers, so a resumed run
        may change where its progress goes without being refused.
        """
        return TrainSettings.model_validate(
            self.model_dump(include=set(TrainSettings.model_fields))
        )


class TrainConfig(TrainSettings):
    """``massclass train``: one fold of one network.

    Attributes:
        data: The ``masses`` store (from ``massseg predict`` or any stand-in producer).
        splits: ``splits.json`` (``mammo split``); fold ``fold``'s ``train`` cases train,
            its ``valid`` cases validate and choose the Youden threshold.
        fold: 1-based fold number.
        out: Model folder to write (``models/massclass/<arch>/fold_<k>``).
        resume: Continue an interrupted run of the same settings (``False`` starts over).
        work_dir: Checkpoint folder (default: ``.<out name>.training`` next to ``out``).
        keep_work: Keep the checkpoint folder after success.
        progress: Show Keras progress bars.
        strategy: ``none``, ``mirrored`` or ``multiworker`` (docs/distributed.md); the batch
            size stays the global batch; only the chief writes the model folder.
    """

    data: Path
    splits: Path
    fold: int = Field(ge=1)
    out: Path
    resume: bool = True
    work_dir: Path | None = None
    keep_work: bool = False
    progress: bool = False
    strategy: str = "none"


class PredictSettings(_Strict):
    """Prediction settings (section ``massclass.predict``).

    Attributes:
        threshold: A number in (0, 1), ``youden`` (each model card's validation-chosen
            threshold; the mean over an ensemble) or ``card`` (the card's default threshold);
            text such as ``"0.3"`` or ``" Youden"`` is accepted.
        batch_size: Inference batch size.
        precision: Inference compute, ``float32`` or ``bfloat16`` (faster on CPUs with
            AVX-512 BF16/AMX and recent GPUs; probabilities move by ~0.01-0.03).
        fold_batchnorm: Fold BatchNorms into the convolutions before them (same function,
            fewer passes over memory; see ``mammo_common.keras.deployment.optimize``).
    """

    threshold: float | Literal["youden", "card"] = 0.5
    batch_size: int = Field(default=8, ge=1)
    precision: Literal["float32", "bfloat16"] = "float32"
    fold_batchnorm: bool = True

    @field_validator("threshold", mode="before")
    @classmethod
    def _threshold_text(cls, value: Any) -> Any:
        return parse_threshold(value, ("youden", "card"))

    @field_validator("threshold")
    @classmethod
    def _range(cls, value: Any) -> Any:
        if isinstance(value, float) and not 0.0 < value < 1.0:
            raise ValueError("threshold must be in (0, 1), 'youden' or 'card'")
        return value


class PredictConfig(PredictSettings):
    """``massclass predict``.

    Attributes:
        models: Model folders written by ``massclass train`` (several: a fold ensemble, the
            probabilities averaged).
        data: The ``masses`` store to classify.
        out: The ``diagnosis`` store to write (atomically).
        overwrite: Replace an existing output.
    """

    models: list[Path] = Field(min_length=1)
    data: Path
    out: Path
    overwrite: bool = False


class EvaluateSettings(_Strict):
    """Evaluation settings (section ``massclass.evaluate``).

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


class EvaluateConfig(EvaluateSettings):
    """``massclass evaluate``: score a ``diagnosis`` store.

    Attributes:
        data: The ``diagnosis`` store (from ``massclass predict``).
        out: Metrics JSON to write.
        roc: Optional case-level ROC JSON (list of ``{fpr, tpr, threshold}``, for DVC plots).
        roc_plot: Optional ROC PNG.
        splits: Optional splits file restricting the cases to ``part``.
        part: ``test``, ``valid``, ``train`` or ``all`` (with ``splits``; without it every
            case of the store is scored and the part is reported as ``all``).
        fold: Fold number for ``valid``/``train``.
        masses: The ``masses`` store for mass-level metrics (default: the store's parent when
            it still exists unchanged).
    """

    data: Path
    out: Path
    roc: Path | None = None
    roc_plot: Path | None = None
    splits: Path | None = None
    part: Literal["test", "valid", "train", "all"] = "test"
    fold: int | None = Field(default=None, ge=1)
    masses: Path | None = None


class MassClassParams(_Strict):
    """The whole ``massclass`` section of ``params.yaml`` (for validating it in one go)."""

    train: TrainSettings = Field(default_factory=TrainSettings)
    predict: PredictSettings = Field(default_factory=PredictSettings)
    evaluate: EvaluateSettings = Field(default_factory=EvaluateSettings)
