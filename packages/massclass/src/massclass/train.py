"""Training: the reference's three-stage fine-tuning of a classifier on mass ROIs, resumable.

:func:`train` (``massclass train``) takes a :class:`~massclass.config.TrainConfig` (settings,
paths and run options, e.g. from :func:`mammo_common.params.load_section`) and:

1. opens the ``masses`` store and the splits file, takes fold ``k``'s ``train`` and ``valid``
   cases and cuts their ROIs (:mod:`massclass.rois`); cases without a mass and ROIs without a
   known label are counted and reported, not silently dropped;
2. builds the classifier (:func:`massclass.models.build_model`, base frozen);
3. runs the phases of :attr:`TrainSettings.phases` (reference: head only at 1e-3 for 3 epochs;
   top 25 % of the backbone's layers at 1e-4 for 10; all layers at 1e-5 for up to 100 with early
   stopping on the validation loss), each with Adam and binary cross-entropy through
   :func:`mammo_common.keras.training.harness.fit_resumable`. Each phase keeps its best weights (by
   validation loss) and the next phase starts from them. Training batches are augmented
   (flips, rotation 90, shifts 0.2, zoom 0.2, constant fill); validation batches are not;
4. predicts the validation ROIs, chooses the Youden threshold there, computes the validation
   metrics, and writes the model folder (``model.keras``, ``model_card.json``,
   ``history.csv`` with one row per epoch of every phase).

Resuming: the work folder (default ``.<out name>.training`` next to ``out``,
:func:`mammo_common.stage.training_work_dir`) holds ``phases.json``
(which phases are finished) and one ``fit_resumable`` checkpoint folder per phase (its epoch
count and optimizer state). Re-running the same command continues at the phase and epoch where
it stopped; ``resume=False`` starts over. The work folder is removed once the model folder is
written (``keep_work=True`` keeps it).

Keras is imported when training runs, not with this module (as in ``massseg.train``), so
importing ``massclass.train`` (or the CLI) stays light. :func:`train_classifier` is the
deprecated positional form of :func:`train`.
"""

from __future__ import annotations

import csv
import functools
import io
import json
import logging
import shutil
import time
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from pydantic import BaseModel

from mammo_common.errors import ConfigError, InputFileError, MammoError
from mammo_common.keras.training.augment import AugmentConfig, with_intensity
from mammo_common.metrics import classification_report, youden_threshold
from mammo_common.schema.lineage import params_digest
from mammo_common.stage import load_fold, training_card, training_work_dir
from mammo_common.store import MassesStore, open_store, write_text_atomic
from massclass import __version__
from massclass.config import PhaseConfig, TrainConfig, TrainSettings
from massclass.rois import RoiSet, extract_rois

if TYPE_CHECKING:
    import keras

    from mammo_common.keras.training.data import ClassificationDataset
    from mammo_common.keras.training.harness import TrainResult as FitResult
    from massclass.models import MassClassifier

__all__ = [
    "NORMALIZATION",
    "PhaseSummary",
    "TrainResult",
    "fit_phases",
    "predict_rois",
    "train",
    "train_classifier",
]

logger = logging.getLogger("mammo")

#: How ROI pixels are scaled (recorded in the model card).
NORMALIZATION = "divide_by_image_max"

_HISTORY_COLUMNS = ["epoch", "phase", "phase_name", "phase_epoch", "loss", "auc", "accuracy",
                    "val_loss", "val_auc", "val_accuracy", "lr", "seconds"]


class PhaseSummary(BaseModel):
    """Outcome of one fine-tuning phase."""

    name: str
    trainable: str
    learning_rate: float
    epochs_run: int
    best_epoch: int | None = None
    best_val_loss: float | None = None
    stop_reason: str = "completed"
    skipped: bool = False


class TrainResult(BaseModel):
    """What :func:`train` did."""

    out: str
    model_id: str
    backbone: str
    fold: int
    phases: list[PhaseSummary]
    epochs_run: int
    train_rois: dict[str, Any]
    valid_rois: dict[str, Any]
    valid_metrics: dict[str, Any]
    threshold: float
    youden_threshold: float | None
    weights_origin: str
    seconds: float
    resumed: bool


@functools.cache
def _weighted_dataset_class() -> type:
    """:class:`WeightedDataset`, defined on first use (its base class needs Keras)."""
    from mammo_common.keras.training.data import ClassificationDataset

    class WeightedDataset(ClassificationDataset):
        """A :class:`ClassificationDataset` that also yields per-sample weights (class weights)."""

        def __init__(self, *args: Any, class_weight: dict[int, float], **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.class_weight = {int(k): float(v) for k, v in class_weight.items()}

        def __getitem__(self, idx: int):
            x, y = super().__getitem__(idx)
            w = np.array([self.class_weight[int(v)] for v in y.reshape(-1)], dtype=np.float32)
            return x, y, w

    WeightedDataset.__module__ = __name__
    WeightedDataset.__qualname__ = "WeightedDataset"
    return WeightedDataset


def __getattr__(name: str) -> Any:
    # ``massclass.train.WeightedDataset`` subclasses a Keras dataset: built when first asked
    # for, so that importing this module does not import Keras.
    if name == "WeightedDataset":
        return _weighted_dataset_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _to_uint16(images: np.ndarray) -> np.ndarray:
    """ROIs in [0, 1] kept compactly (ClassificationDataset divides uint16 by 65535)."""
    return np.round(np.clip(images, 0.0, 1.0) * 65535.0).astype(np.uint16)


def balanced_class_weight(labels: np.ndarray) -> dict[int, float]:
    """``n / (2 n_c)`` per class: scikit-learn's ``compute_class_weight("balanced")``.

    Both classes must be present (training refuses a single class before this is called).
    """
    from sklearn.utils.class_weight import compute_class_weight

    labels = np.asarray(labels).astype(int)
    weights = compute_class_weight("balanced", classes=np.array([0, 1]), y=labels)
    return {0: float(weights[0]), 1: float(weights[1])}


def _freeze_batchnorm(model: MassClassifier) -> None:
    import keras

    for layer in model.base.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.trainable = False


def _phase_dir(work: Path, k: int, phase: PhaseConfig) -> Path:
    return work / f"phase{k + 1}_{phase.name}"


def _history_rows(phases: list[PhaseConfig], results: dict[int, FitResult]) -> list[dict]:
    rows, epoch = [], 0
    for k, phase in enumerate(phases):
        result = results.get(k)
        if result is None:
            continue
        for row in result.history:
            epoch += 1
            out = {"epoch": epoch, "phase": k + 1, "phase_name": phase.name,
                   "phase_epoch": int(row.get("epoch", 0))}
            out.update({key: v for key, v in row.items() if key != "epoch"})
            rows.append(out)
    return rows


def _write_history(path: Path, rows: list[dict]) -> None:
    extra = sorted({k for r in rows for k in r} - set(_HISTORY_COLUMNS))
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=_HISTORY_COLUMNS + extra, lineterminator="\n",
                            extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        writer.writerow(row)
    write_text_atomic(path, buf.getvalue())


def _make_datasets(
    train_x: np.ndarray, train_y: np.ndarray, valid_x: np.ndarray, valid_y: np.ndarray,
    config: TrainSettings,
) -> tuple[ClassificationDataset, ClassificationDataset]:
    from mammo_common.keras.training.data import ClassificationDataset

    size = (int(train_x.shape[1]), int(train_x.shape[2]))
    common = {"image_size": size, "channels": 3, "batch_size": config.batch_size}
    augment = with_intensity(
        AugmentConfig.classifier() if config.augment else None, config.intensity_augment
    )
    if config.class_weight == "balanced":
        train_ds: ClassificationDataset = _weighted_dataset_class()(
            _to_uint16(train_x), train_y, shuffle=True, seed=config.seed, augment=augment,
            class_weight=balanced_class_weight(train_y), **common,
        )
    else:
        train_ds = ClassificationDataset(
            _to_uint16(train_x), train_y, shuffle=True, seed=config.seed, augment=augment,
            **common,
        )
    valid_ds = ClassificationDataset(_to_uint16(valid_x), valid_y, shuffle=False, **common)
    return train_ds, valid_ds


def fit_phases(
    model: MassClassifier,
    train_x: np.ndarray,
    train_y: np.ndarray,
    valid_x: np.ndarray,
    valid_y: np.ndarray,
    config: TrainSettings,
    work_dir: str | Path,
    *,
    resume: bool = True,
    progress: bool = False,
    strategy: Any = None,
) -> tuple[list[PhaseSummary], list[dict]]:
    """Run the fine-tuning phases on in-memory ROIs (float32 in [0, 1], labels 0/1).

    Args:
        model: The classifier (its weights change in place; it ends with the last phase's best).
        train_x: Training ROIs ``(n, S, S, 3)``.
        train_y: Their labels.
        valid_x: Validation ROIs (never augmented).
        valid_y: Their labels.
        config: Phases, batch size, augmentation, class weights, seed (a
            :class:`TrainSettings` or a :class:`TrainConfig`; only the settings count).
        work_dir: Checkpoints and ``phases.json`` (resumable).
        resume: Continue from ``work_dir`` when it holds a run of the same settings.
        progress: Show Keras progress bars.
        strategy: The ``tf.distribute`` strategy the model was built under (or None).

    Returns:
        ``(phase summaries, history rows)``; a history row per epoch of every phase.

    Raises:
        ConfigError: ``work_dir`` holds a run of other settings (and ``resume`` is on).
    """
    import keras

    from mammo_common.keras.training.distribute import is_chief
    from mammo_common.keras.training.harness import TrainResult as FitResult
    from mammo_common.keras.training.harness import fit_resumable
    from massclass.models import set_trainable

    writer = is_chief(strategy)  # multi-worker: only the chief writes the work folder
    work = Path(work_dir)
    if not resume and writer:
        shutil.rmtree(work, ignore_errors=True)
    if writer:
        work.mkdir(parents=True, exist_ok=True)
    state_path = work / "phases.json"
    fingerprint = params_digest({
        # the settings only (as before the paths joined the config): a TrainConfig resumes
        # the work folder of the same settings wherever its paths point
        "config": config.model_dump(mode="json", include=set(TrainSettings.model_fields)),
        "n_train": len(train_y), "n_valid": len(valid_y),
        "train_sum": float(np.asarray(train_x, dtype=np.float64).sum()),
    })
    state: dict[str, Any] = {"fingerprint": fingerprint, "completed": {}}
    if state_path.is_file():
        previous = json.loads(state_path.read_text(encoding="utf-8"))
        if previous.get("fingerprint") != fingerprint:
            raise ConfigError(
                "the work folder holds an interrupted training with other settings or data",
                path=work,
                fix="re-run with the same settings, pass --no-resume to start over, or delete "
                    "the folder",
            )
        state = previous
    train_ds, valid_ds = _make_datasets(train_x, train_y, valid_x, valid_y, config)
    metrics = [keras.metrics.AUC(name="auc"), keras.metrics.BinaryAccuracy(name="accuracy")]

    results: dict[int, FitResult] = {}
    summaries: list[PhaseSummary] = []
    last_best: Path | None = None
    for k, phase in enumerate(config.phases):
        trainable = str(phase.trainable)
        if phase.epochs == 0:
            summaries.append(PhaseSummary(name=phase.name, trainable=trainable,
                                          learning_rate=phase.learning_rate, epochs_run=0,
                                          skipped=True, stop_reason="skipped"))
            continue
        pdir = _phase_dir(work, k, phase)
        done = state["completed"].get(phase.name)
        if done is not None:
            result = FitResult.model_validate(done)
        else:
            if last_best is not None and writer:  # others hold the best weights in memory
                model.load_weights(last_best)
            set_trainable(model, phase.trainable)
            if config.freeze_batchnorm:
                _freeze_batchnorm(model)
            result = fit_resumable(
                model, train_ds, valid_ds, out_dir=pdir, epochs=phase.epochs,
                learning_rate=phase.learning_rate, loss=keras.losses.BinaryCrossentropy(),
                metrics=metrics, monitor="val_loss", reduce_lr=None,
                early_stopping_patience=phase.early_stopping_patience, seed=config.seed,
                resume=resume, progress=progress, strategy=strategy,
            )
            state["completed"][phase.name] = result.model_dump(mode="json")
            if writer:
                write_text_atomic(state_path, json.dumps(state, indent=1))
        results[k] = result
        last_best = Path(result.best_weights)
        best = None if result.best_epoch is None else result.history[result.best_epoch - 1]
        summaries.append(PhaseSummary(
            name=phase.name, trainable=trainable, learning_rate=phase.learning_rate,
            epochs_run=result.epochs_run, best_epoch=result.best_epoch,
            best_val_loss=None if best is None else best.get("val_loss"),
            stop_reason=result.stop_reason,
        ))
    if last_best is not None and writer and last_best.is_file():
        model.load_weights(last_best)
    return summaries, _history_rows(config.phases, results)


def predict_rois(model: keras.Model, images: np.ndarray, batch_size: int = 32) -> np.ndarray:
    """Malignancy probability of each ROI ``(n, S, S, 3)`` float32 in [0, 1].

    Every forward pass sees exactly ``batch_size`` ROIs (the last batch is padded with zeros
    and its padding dropped): one input shape, so oneDNN builds its convolution primitives
    (and their re-laid-out weights) once, instead of once per distinct remainder, which made
    memory grow with the number of chunks ``massclass predict`` streams; and a ROI's
    probability does not depend on how many others share its batch.
    """
    n = len(images)
    if n == 0:
        return np.zeros((0,), dtype=np.float64)
    batch_size = max(1, int(batch_size))
    out = np.empty((n,), dtype=np.float64)
    for start in range(0, n, batch_size):
        chunk = np.asarray(images[start:start + batch_size], dtype=np.float32)
        k = len(chunk)
        if k < batch_size:
            chunk = np.concatenate(
                [chunk, np.zeros((batch_size - k, *chunk.shape[1:]), np.float32)]
            )
        prob = np.asarray(model.predict_on_batch(chunk), dtype=np.float64).reshape(-1)
        out[start:start + k] = prob[:k]
    return out


def _labeled(rois: RoiSet, what: str, path: Path) -> tuple[np.ndarray, np.ndarray]:
    keep = rois.labeled
    x, y = rois.images[keep], rois.labels[keep]
    if x.shape[0] == 0:
        raise InputFileError(
            f"the {what} cases give no labelled ROI ({len(rois.missed)} of {len(rois.cases)} "
            "cases without a mass, the rest without a known pathology)",
            path=path,
            fix="check the masses store (mass_pred) and the cases' pathology, or use "
                "roi.source: truth",
        )
    return x, y


def _valid_metrics(y: np.ndarray, p: np.ndarray, threshold: float) -> dict[str, Any]:
    rep = classification_report(y.astype(int), p, threshold)
    return {k: v for k, v in rep.items() if isinstance(v, int | float)}


def train(config: TrainConfig) -> TrainResult:
    """Train a mass classifier on fold ``config.fold`` of a ``masses`` store; write its folder.

    Args:
        config: Settings, paths (``data``, ``splits``, ``fold``, ``out``) and run options
            (``resume``, ``work_dir``, ``keep_work``, ``progress``, ``strategy``), e.g. from
            :func:`mammo_common.params.load_section`.

    Returns:
        A :class:`TrainResult`.

    Raises:
        StoreError: Not a masses store, or fold cases missing from it.
        InputFileError: Bad splits file or fold, no usable ROI, a single class in training.
        ConfigError: Unknown backbone or a checkpoint of other settings.
    """
    started = time.perf_counter()
    from mammo_common.keras.training.distribute import get_strategy, is_chief, strategy_scope

    distribution = get_strategy(config.strategy)  # before any TensorFlow op runs
    settings = config.settings()
    fold = config.fold
    data, splits_path, out = Path(config.data), Path(config.splits), Path(config.out)
    store: MassesStore = open_store(data, "masses")  # type: ignore[assignment]
    split, train_ids, valid_ids = load_fold(splits_path, fold)
    if out.resolve() == data.resolve() or data.resolve() in out.resolve().parents:
        raise MammoError("the model folder would sit inside the input store", path=out,
                         fix="choose an output outside the store")
    size = settings.input_size
    train_rois = extract_rois(store, settings.roi, size=size, case_ids=train_ids)
    valid_rois = extract_rois(store, settings.roi, size=size, case_ids=valid_ids)
    train_x, train_y = _labeled(train_rois, "training", data)
    valid_x, valid_y = _labeled(valid_rois, "validation", data)
    if len(set(train_y.tolist())) < 2:
        raise InputFileError(
            "the training ROIs hold one class only (all benign or all malignant)",
            path=splits_path, fix="use a split with both classes in every fold",
        )
    for name, rois in (("training", train_rois), ("validation", valid_rois)):
        if rois.missed:
            logger.warning("%d %s case(s) without a mass have no ROI: %s", len(rois.missed),
                           name, ", ".join(rois.missed[:10]))

    import keras  # the inputs are good: now the network

    from mammo_common.keras.deployment.model_folder import save_model_folder
    from massclass.models import build_model, weights_origin

    keras.utils.set_random_seed(settings.seed)
    try:
        with strategy_scope(distribution):
            model = build_model(
                settings.arch, (size, size, 3), weights=settings.weights,
                backbone_options=settings.arch_options, dense_units=settings.dense_units,
                dropout=settings.dropout,
            )
    except (ValueError, FileNotFoundError, RuntimeError) as exc:
        raise ConfigError(
            str(exc), field="massclass.train.arch",
            fix="see `massclass models` for backbones and their input sizes",
        ) from None
    except TypeError as exc:
        if "keyword argument" not in str(exc) or not settings.arch_options:
            raise
        # a misspelt arch_options key (params.yaml): the builder refuses the name
        raise ConfigError(
            f"backbone {settings.arch!r} does not accept arch_options "
            f"{sorted(settings.arch_options)} ({exc})",
            field="massclass.train.arch_options",
            fix="check the option names against the backbone's builder (tinycnn: widths; "
                "keras.applications backbones: their constructor arguments, e.g. alpha)",
        ) from None
    origin = weights_origin(settings.arch, settings.weights)

    work = Path(config.work_dir) if config.work_dir else training_work_dir(out)
    resumed = config.resume and (work / "phases.json").is_file()
    phases, history = fit_phases(model, train_x, train_y, valid_x, valid_y, settings, work,
                                 resume=config.resume, progress=config.progress,
                                 strategy=distribution)

    p_valid = predict_rois(model, valid_x, batch_size=max(settings.batch_size, 32))
    both = len(set(valid_y.tolist())) == 2
    youden = float(np.clip(youden_threshold(valid_y.astype(int), p_valid), 1e-6, 1 - 1e-6)) \
        if both else None
    if settings.threshold == "youden" and youden is None:
        logger.warning("the validation ROIs hold one class; the threshold stays 0.5")
    threshold = (youden if youden is not None else 0.5) if settings.threshold == "youden" \
        else float(settings.threshold)
    valid_metrics = _valid_metrics(valid_y, p_valid, threshold)
    card_metrics = {f"valid_{k}": float(v) for k, v in valid_metrics.items()
                    if v is not None and np.isfinite(v)}
    if youden is not None:
        card_metrics["youden_threshold"] = youden

    training = {
        **settings.model_dump(mode="json"),
        "loss": "binary_crossentropy",
        "optimizer": "adam",
        "threshold_method": "youden" if settings.threshold == "youden" else "fixed",
        "phase_results": [p.model_dump(mode="json") for p in phases],
        "train_rois": _roi_counts(train_rois),
        "valid_rois": _roi_counts(valid_rois),
    }
    card = training_card(
        stage="massclass", package="mammo-massclass", package_version=__version__,
        arch=model.backbone_name, fold=fold, data=data, data_digest=store.digest,
        splits=splits_path, n_train=len(train_ids), n_valid=len(valid_ids),
        n_test=len(split.test), task="classification", input_shape=(size, size, 3),
        normalization=NORMALIZATION, threshold=threshold, training=training,
        strategy=config.strategy, distribution=distribution, metrics=card_metrics,
        weights_origin=origin,
    )
    mid = card.model_id
    keep_work = config.keep_work
    if is_chief(distribution):  # multi-worker: only the chief writes
        history_path = work / "history.csv"
        _write_history(history_path, history)
        save_model_folder(out, model, card, history_path)
    else:
        keep_work = True
    if not keep_work:
        shutil.rmtree(work, ignore_errors=True)
    return TrainResult(
        out=str(out), model_id=mid, backbone=model.backbone_name, fold=fold, phases=phases,
        epochs_run=len(history), train_rois=_roi_counts(train_rois),
        valid_rois=_roi_counts(valid_rois), valid_metrics=valid_metrics, threshold=threshold,
        youden_threshold=youden, weights_origin=origin,
        seconds=time.perf_counter() - started, resumed=resumed,
    )


def train_classifier(
    data: str | Path,
    splits: str | Path,
    fold: int,
    out: str | Path,
    config: TrainSettings | None = None,
    *,
    resume: bool = True,
    work_dir: str | Path | None = None,
    keep_work: bool = False,
    progress: bool = False,
    strategy: str = "none",
) -> TrainResult:
    """Deprecated: :func:`train` with the paths and run options as arguments.

    Builds a :class:`TrainConfig` from ``config``'s settings (defaults: the reference's) and
    the arguments, and calls :func:`train`. Use ``train(TrainConfig(...))`` or
    ``train(load_section(TrainConfig, ...))`` instead.

    Args:
        data: The ``masses`` store.
        splits: ``splits.json``.
        fold: 1-based fold number.
        out: Model folder to write.
        config: Training settings (a :class:`TrainSettings`; a :class:`TrainConfig`'s paths
            and run options are replaced by the arguments).
        resume: Continue an interrupted run of the same settings.
        work_dir: Checkpoint folder (default: ``.<out name>.training`` next to ``out``).
        keep_work: Keep the checkpoint folder after success.
        progress: Show Keras progress bars.
        strategy: ``none``, ``mirrored`` or ``multiworker``.

    Returns:
        A :class:`TrainResult`.
    """
    warnings.warn(
        "massclass.train.train_classifier(data, splits, fold, out, config, ...) is deprecated; "
        "use massclass.train.train(TrainConfig(..., data=, splits=, fold=, out=))",
        DeprecationWarning,
        stacklevel=2,
    )
    settings = (config or TrainSettings()).settings()
    return train(TrainConfig(
        **settings.model_dump(), data=data, splits=splits, fold=fold, out=out, resume=resume,
        work_dir=work_dir, keep_work=keep_work, progress=progress, strategy=strategy,
    ))


def _roi_counts(rois: RoiSet) -> dict[str, Any]:
    summary = rois.summary()
    summary["missed_cases"] = summary["missed_cases"][:50]
    return summary
