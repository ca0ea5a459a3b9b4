"""The training harness of every stage: best-weights checkpointing and exact resume.

:func:`fit_resumable` compiles a built model with Adam and trains it epoch by epoch:

* it keeps the **best** weights by the monitored value in ``out_dir/best.weights.h5``. The
  reference's ``ModelCheckpoint`` kept the *last* epoch (5 after the best, because of a
  misspelt argument); we document that defect and do not copy it;
* ``ReduceLROnPlateau`` (patience 3, factor 0.1, min 1e-8, min_delta 1e-4) and early stopping
  (patience 5, min_delta 0) are implemented here with Keras' rules, so their state (best
  values, wait and cooldown counters, current learning rate) is saved and restored;
* or, instead of the plateau rule, ``lr_schedule="poly"``: nnU-Net's polynomial decay, epoch
  ``e`` (0-based) of ``E`` trains at ``learning_rate * (1 - e / E) ** 0.9``: a function of the
  epoch alone, so a resumed run follows it exactly;
* after every epoch it writes a checkpoint (model variables including BatchNorm statistics
  and dropout seed-generator states, optimizer variables, callback state, history) that is
  complete or absent: ``checkpoint/epoch_NNNN/`` is staged under a temporary name and renamed,
  then ``checkpoint/state.json`` (the pointer) is replaced with one atomic ``os.replace``;
* ``history.csv`` (epoch, loss, metrics, val_loss, val_metrics, lr, seconds: the reference's
  model_performance files) is rewritten atomically from the checkpoint after every epoch,
  and with it ``out_dir/dvclive/``: the same values logged with DVCLive (step = epoch,
  :mod:`mammo_common.keras.training.curves`), to watch a run while it trains. The pipeline's
  ``dvc.yaml`` plots the model folders' ``history.csv`` (docs/pipeline.md);
* validation uses the *unaugmented* validation data as given (the reference augmented its
  validation batches, a defect we document, not copy).

A process killed at any moment (SIGKILL included) resumes from its last finished epoch with
``resume=True``; with the same seed, ``deterministic=True`` and datasets whose batches are a
function of the epoch (:class:`~mammo_common.keras.training.data.SegmentationDataset` and
:class:`~mammo_common.keras.training.data.ClassificationDataset`: the harness passes
``dataset.for_epoch(e)`` to Keras), it ends with the same weights as an uninterrupted run.

Mixed precision: the policy must be set **before the model is built** (layers take their
dtype policy when created). Build inside ``with mixed_precision_policy("bfloat16"):`` (or call
:func:`set_mixed_precision`); ``fit_resumable(..., mixed_precision="bfloat16")`` then only
checks that the model was built that way. Under ``mixed_float16`` Keras wraps Adam in a
``LossScaleOptimizer`` at compile time.
"""

from __future__ import annotations

import contextlib
import csv
import io
import logging
import math
import os
import shutil
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import keras
import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from mammo_common.errors import ConfigError
from mammo_common.history import read_history_rows
from mammo_common.keras.training.curves import CURVES_DIR, write_curves
from mammo_common.keras.training.losses import LOSSES, get_loss

__all__ = [
    "BEST_WEIGHTS",
    "CHECKPOINT_DIR",
    "HISTORY_CSV",
    "EarlyStoppingConfig",
    "ReduceLROnPlateauConfig",
    "TrainResult",
    "fit_resumable",
    "mixed_precision_policy",
    "poly_learning_rate",
    "read_history_csv",
    "schedule_arguments",
    "set_global_determinism",
    "set_mixed_precision",
    "write_history_csv",
]

logger = logging.getLogger("mammo")

BEST_WEIGHTS = "best.weights.h5"
HISTORY_CSV = "history.csv"
CHECKPOINT_DIR = "checkpoint"
_STATE = "state.json"
_STATE_VERSION = 1
_MAX_MODES = (
    "acc",
    "dice",
    "iou",
    "jaccard",
    "auc",
    "precision",
    "recall",
    "f1",
    "sensitivity",
    "specificity",
    "mcc",
    "kappa",
)

Precision = Literal["bfloat16", "float16", "float32"]
LRSchedule = Literal["constant", "poly"]
#: Exponent of the polynomial learning-rate decay (nnU-Net's ``poly_lr``).
POLY_EXPONENT = 0.9


def poly_learning_rate(learning_rate: float, epoch: int, epochs: int) -> float:
    """nnU-Net's polynomial decay: the learning rate of 0-based ``epoch`` of ``epochs``.

    Args:
        learning_rate: The first epoch's learning rate.
        epoch: 0-based epoch.
        epochs: Total epochs of the run.

    Returns:
        ``learning_rate * (1 - epoch / epochs) ** 0.9``: the full rate at epoch 0, falling to
        ``learning_rate * (1 / epochs) ** 0.9`` in the last epoch.
    """
    return float(learning_rate) * (1.0 - epoch / max(1, epochs)) ** POLY_EXPONENT


# --------------------------------------------------------------------------- configs, result


class ReduceLROnPlateauConfig(BaseModel):
    """``ReduceLROnPlateau`` settings (the reference: patience 3, factor 0.1, min 1e-8)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    patience: int = Field(3, ge=1)
    factor: float = Field(0.1, gt=0, lt=1)
    min_lr: float = Field(1e-8, ge=0)
    min_delta: float = Field(1e-4, ge=0, description="as Keras' default")
    cooldown: int = Field(0, ge=0)


def schedule_arguments(
    lr_schedule: Literal["plateau", "poly"], patience: int, factor: float, min_lr: float
) -> dict[str, Any]:
    """The :func:`fit_resumable` arguments of a stage config's ``lr_schedule`` setting.

    Args:
        lr_schedule: ``plateau`` (ReduceLROnPlateau with the other three settings) or ``poly``
            (:func:`poly_learning_rate` every epoch; the plateau settings are unused).
        patience: ReduceLROnPlateau patience.
        factor: ReduceLROnPlateau factor.
        min_lr: ReduceLROnPlateau floor.

    Returns:
        ``reduce_lr`` and ``lr_schedule`` keyword arguments.
    """
    if lr_schedule == "poly":
        return {"reduce_lr": None, "lr_schedule": "poly"}
    plateau = ReduceLROnPlateauConfig(patience=patience, factor=factor, min_lr=min_lr)
    return {"reduce_lr": plateau, "lr_schedule": "constant"}


class EarlyStoppingConfig(BaseModel):
    """Early stopping settings (the reference: patience 5)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    patience: int = Field(5, ge=1)
    min_delta: float = Field(0.0, ge=0)


class TrainResult(BaseModel):
    """What :func:`fit_resumable` did.

    Attributes:
        best_epoch: 1-based epoch with the best monitored value (None if no epoch ran).
        best_value: That value.
        monitor: The monitored log key (e.g. ``val_loss``).
        epochs_run: Epochs finished in all (including before a resume).
        resumed_from: Epochs already finished when this call started (0: fresh).
        stopped_early: True when early stopping (or a NaN loss / a callback) ended training.
        stop_reason: ``"completed"``, ``"early_stopping"``, ``"nan_loss"`` or ``"callback"``.
        history: One dict per epoch (the rows of ``history.csv``).
        seconds: Training seconds summed over the epochs (all sessions).
        out_dir: The output folder.
        best_weights: Path of ``best.weights.h5``.
    """

    model_config = ConfigDict(extra="forbid")

    best_epoch: int | None
    best_value: float | None
    monitor: str
    epochs_run: int
    resumed_from: int = 0
    stopped_early: bool
    stop_reason: str
    history: list[dict[str, int | float]]
    seconds: float
    out_dir: str
    best_weights: str


# --------------------------------------------------------------------------- global helpers


def set_global_determinism(seed: int) -> None:
    """Seeds Python, NumPy and the backend, and makes TensorFlow ops deterministic.

    Call it before building the model. Op determinism (TensorFlow only) is process-wide and
    slows some GPU ops; ops without a deterministic kernel then raise instead of varying.
    """
    keras.utils.set_random_seed(int(seed))
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        tf.config.experimental.enable_op_determinism()


def set_mixed_precision(precision: Precision | None) -> str:
    """Sets the global Keras dtype policy; call before building the model.

    Args:
        precision: ``"bfloat16"`` (``mixed_bfloat16``: recent GPUs/TPUs and CPUs),
            ``"float16"`` (``mixed_float16``: GPUs with tensor cores; loss scaling is added
            at compile), ``"float32"`` or None (full precision).

    Returns:
        The policy name now in force.
    """
    name = "float32" if precision in (None, "float32") else f"mixed_{precision}"
    if precision not in (None, "float32", "bfloat16", "float16"):
        raise ConfigError(
            f"unknown mixed precision {precision!r}",
            fix="use None, 'float32', 'bfloat16' or 'float16'",
        )
    keras.mixed_precision.set_global_policy(name)
    return name


@contextlib.contextmanager
def mixed_precision_policy(precision: Precision | None) -> Iterator[str]:
    """Context manager: build models under a precision policy, then restore the previous one.

    Example:
        >>> with mixed_precision_policy("bfloat16"):  # doctest: +SKIP
        ...     model = build_unet(...)
    """
    previous = keras.mixed_precision.global_policy().name
    try:
        yield set_mixed_precision(precision)
    finally:
        keras.mixed_precision.set_global_policy(previous)


# --------------------------------------------------------------------------- files


def _fsync(path: Path) -> None:
    with contextlib.suppress(OSError), open(path, "rb") as fh:
        os.fsync(fh.fileno())


def _replace_file(path: Path, data: bytes) -> None:
    """Writes ``path`` atomically: temporary sibling, fsync, one ``os.replace``."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def _columns(history: Sequence[Mapping[str, float]]) -> list[str]:
    keys: list[str] = []
    for row in history:
        for k in row:
            if k not in keys:
                keys.append(k)
    train = sorted(
        k for k in keys if k not in ("epoch", "lr", "seconds") and not k.startswith("val_")
    )
    val = sorted(k for k in keys if k.startswith("val_"))
    train = (["loss"] if "loss" in train else []) + [k for k in train if k != "loss"]
    val = (["val_loss"] if "val_loss" in val else []) + [k for k in val if k != "val_loss"]
    tail = [k for k in ("lr", "seconds") if k in keys]
    return ["epoch", *train, *val, *tail]


def write_history_csv(
    path: str | Path, history: Sequence[Mapping[str, float]], *, curves: bool = False
) -> None:
    """Writes per-epoch rows atomically: ``epoch, loss, <metrics>, val_loss, <val_...>, lr,
    seconds`` (epoch is 1-based; missing values are empty).

    Args:
        path: The ``history.csv`` to write.
        history: One dict per epoch.
        curves: Also write the same values as DVCLive files in a ``dvclive/`` folder beside
            ``path`` (:func:`mammo_common.keras.training.curves.write_curves`; step = epoch). The
            harness does so in its working folder; the default leaves a model folder's files
            as :mod:`mammo_common.keras.deployment.model_folder` documents them.
    """
    buf = io.StringIO()
    writer = csv.DictWriter(
        buf, fieldnames=_columns(history), extrasaction="ignore", lineterminator="\n"
    )
    writer.writeheader()
    for row in history:
        writer.writerow({k: (int(v) if k == "epoch" else repr(float(v))) for k, v in row.items()})
    _replace_file(Path(path), buf.getvalue().encode())
    if curves:
        write_curves(Path(path).parent, history)


def read_history_csv(path: str | Path) -> list[dict[str, Any]]:
    """Reads a ``history.csv`` back (:func:`mammo_common.history.read_history_rows`: ``epoch``
    an int, numbers as floats, text columns as text, empty cells left out)."""
    return read_history_rows(path)


# --------------------------------------------------------------------------- state


def _is_max_mode(monitor: str) -> bool:
    name = monitor.lower()
    return any(tag in name for tag in _MAX_MODES)


class _State(BaseModel):
    """Everything besides variables needed to continue training (``state.json``)."""

    model_config = ConfigDict(extra="forbid")

    version: int = _STATE_VERSION
    fingerprint: dict[str, Any]
    epochs_done: int = 0
    checkpoint: str | None = None  # name of the epoch folder holding the variables
    finished: bool = False
    stop_reason: str = "completed"
    lr: float
    best_value: float | None = None
    best_epoch: int | None = None
    early_wait: int = 0
    early_best: float | None = None
    plateau_best: float | None = None
    plateau_wait: int = 0
    plateau_cooldown: int = 0
    history: list[dict[str, int | float]] = Field(default_factory=list)


def _better(current: float, best: float | None, maximize: bool, delta: float = 0.0) -> bool:
    if current is None or math.isnan(current):
        return False
    if best is None:
        return True
    return current > best + delta if maximize else current < best - delta


def _save_variables(path: Path, variables: Sequence[Any]) -> None:
    arrays = {f"v{i:05d}": np.asarray(v.numpy()) for i, v in enumerate(variables)}
    arrays["paths"] = np.array([v.path for v in variables], dtype=np.str_)
    with open(path, "wb") as fh:
        np.savez(fh, **arrays)
        fh.flush()
        os.fsync(fh.fileno())


def _restore_variables(path: Path, variables: Sequence[Any], what: str) -> None:
    with np.load(path, allow_pickle=False) as data:
        n = len(data.files) - 1
        if n != len(variables):
            raise ConfigError(
                f"the checkpoint holds {n} {what} variables but the model has {len(variables)}",
                path=path,
                fix="resume with the same architecture and settings, or pass resume=False",
            )
        for i, var in enumerate(variables):
            value = data[f"v{i:05d}"]
            if tuple(value.shape) != tuple(var.shape):
                raise ConfigError(
                    f"{what} variable {var.path} has shape {tuple(var.shape)} but the "
                    f"checkpoint holds {tuple(value.shape)}",
                    path=path,
                    fix="resume with the same architecture and settings, or pass resume=False",
                )
            var.assign(value.astype(var.dtype))


def _link_or_copy(src: Path, dst: Path) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


class _Checkpointer:
    """Reads and writes ``out_dir/checkpoint`` and publishes best weights and history.

    With ``write=False`` (multi-worker training, workers other than the chief) it only reads.
    """

    def __init__(self, out_dir: Path, write: bool = True):
        self.out_dir = out_dir
        self.dir = out_dir / CHECKPOINT_DIR
        self.state_path = self.dir / _STATE
        self.write = write

    def clear(self) -> None:
        if not self.write:
            return
        shutil.rmtree(self.dir, ignore_errors=True)
        shutil.rmtree(self.out_dir / CURVES_DIR, ignore_errors=True)
        for name in (BEST_WEIGHTS, HISTORY_CSV):
            with contextlib.suppress(FileNotFoundError):
                (self.out_dir / name).unlink()

    def load(self) -> _State | None:
        if not self.state_path.is_file():
            return None
        try:
            state = _State.model_validate_json(self.state_path.read_text(encoding="utf-8"))
        except ValueError as exc:
            raise ConfigError(
                f"the training checkpoint state is unreadable ({exc})",
                path=self.state_path,
                fix="delete the checkpoint folder or pass resume=False",
            ) from None
        if state.checkpoint and not (self.dir / state.checkpoint).is_dir():
            raise ConfigError(
                f"the checkpoint folder {state.checkpoint} is missing",
                path=self.state_path,
                fix="delete the checkpoint folder or pass resume=False",
            )
        return state

    def cleanup(self, keep: str | None) -> None:
        """Removes epoch folders and temporaries not referenced by the state."""
        if not self.write or not self.dir.is_dir():
            return
        for entry in self.dir.iterdir():
            if entry.name in (_STATE, keep):
                continue
            if entry.is_dir():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                with contextlib.suppress(FileNotFoundError):
                    entry.unlink()

    def save(self, model: keras.Model, state: _State, improved: bool) -> None:
        if not self.write:
            return
        self.dir.mkdir(parents=True, exist_ok=True)
        name = f"epoch_{state.epochs_done:04d}"
        tmp = self.dir / f".{name}.tmp-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        _save_variables(tmp / "model.npz", model.variables)
        _save_variables(tmp / "optimizer.npz", model.optimizer.variables)
        best_tmp = tmp / BEST_WEIGHTS
        previous = self.dir / state.checkpoint / BEST_WEIGHTS if state.checkpoint else None
        if improved:
            model.save_weights(best_tmp)
            _fsync(best_tmp)
        elif previous is not None and previous.is_file():
            _link_or_copy(previous, best_tmp)
        final = self.dir / name
        shutil.rmtree(final, ignore_errors=True)
        os.replace(tmp, final)
        state.checkpoint = name
        _replace_file(self.state_path, state.model_dump_json(indent=1).encode())
        self.cleanup(keep=name)
        self.publish(state)

    def publish(self, state: _State) -> None:
        """Makes ``best.weights.h5`` and ``history.csv`` agree with the checkpoint."""
        if not self.write:
            return
        write_history_csv(self.out_dir / HISTORY_CSV, state.history, curves=True)
        if state.checkpoint is None:
            return
        src = self.dir / state.checkpoint / BEST_WEIGHTS
        if src.is_file():
            tmp = self.out_dir / f".{BEST_WEIGHTS}.tmp-{os.getpid()}"
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
            _link_or_copy(src, tmp)
            os.replace(tmp, self.out_dir / BEST_WEIGHTS)

    def restore(self, model: keras.Model, state: _State) -> None:
        folder = self.dir / str(state.checkpoint)
        _restore_variables(folder / "model.npz", model.variables, "model")
        model.optimizer.build(model.trainable_variables)
        _restore_variables(folder / "optimizer.npz", model.optimizer.variables, "optimizer")


# --------------------------------------------------------------------------- the harness


def _set_lr(model: keras.Model, lr: float) -> None:
    model.optimizer.learning_rate.assign(float(lr))


def _check_precision(model: keras.Model, mixed_precision: str | None) -> None:
    if mixed_precision is None:
        return
    want = "float32" if mixed_precision == "float32" else f"mixed_{mixed_precision}"
    if mixed_precision not in ("float32", "bfloat16", "float16"):
        raise ConfigError(
            f"unknown mixed precision {mixed_precision!r}",
            fix="use None, 'float32', 'bfloat16' or 'float16'",
        )
    have = model.dtype_policy.name
    if have != want:
        raise ConfigError(
            f"mixed_precision={mixed_precision!r} needs a model built under the {want!r} policy "
            f"but it was built under {have!r}",
            fix="build the model inside `with mixed_precision_policy(...)` "
            "(mammo_common.keras.training.harness) before calling fit_resumable",
        )


def _fingerprint(
    seed: int, monitor: str, maximize: bool, learning_rate: float, loss: Any, model: keras.Model
) -> dict[str, Any]:
    loss_id = loss if isinstance(loss, str) else type(loss).__name__
    return {
        "seed": int(seed),
        "monitor": monitor,
        "maximize": maximize,
        "learning_rate": float(learning_rate),
        "loss": str(loss_id),
        "n_variables": len(model.variables),
    }


def _resolve_loss(loss: Any) -> Any:
    """Our loss names first (``get_loss``), then Keras' own (``"binary_crossentropy"``...)."""
    if not isinstance(loss, str):
        return loss
    if loss.strip().lower().replace("-", "_") in LOSSES:
        return get_loss(loss)
    try:
        return keras.losses.get(loss)
    except ValueError:
        raise ConfigError(
            f"unknown loss {loss!r}",
            fix=f"use one of {', '.join(LOSSES)} or a Keras loss name",
        ) from None


def _epoch_view(dataset: Any, epoch: int) -> Any:
    for_epoch = getattr(dataset, "for_epoch", None)
    return for_epoch(epoch) if callable(for_epoch) else dataset


def _logs_to_row(logs: Mapping[str, Any]) -> dict[str, float]:
    row: dict[str, float] = {}
    for key, values in logs.items():
        if key == "learning_rate":
            continue
        value = values[-1] if isinstance(values, list | tuple) else values
        row[key] = float(np.asarray(value))
    return row


def _result(state: _State, monitor: str, out_dir: Path, resumed_from: int) -> TrainResult:
    return TrainResult(
        best_epoch=state.best_epoch,
        best_value=state.best_value,
        monitor=monitor,
        epochs_run=state.epochs_done,
        resumed_from=resumed_from,
        stopped_early=state.finished,
        stop_reason=state.stop_reason if state.finished else "completed",
        history=[dict(r) for r in state.history],
        seconds=float(sum(r.get("seconds", 0.0) for r in state.history)),
        out_dir=str(out_dir),
        best_weights=str(out_dir / BEST_WEIGHTS),
    )


def fit_resumable(
    model: keras.Model,
    train_ds: Any,
    valid_ds: Any | None,
    *,
    out_dir: str | Path,
    epochs: int,
    learning_rate: float = 1e-3,
    loss: str | keras.losses.Loss = "dice",
    metrics: Sequence[Any] | None = None,
    monitor: str = "val_loss",
    mode: Literal["auto", "min", "max"] = "auto",
    reduce_lr: ReduceLROnPlateauConfig | None = ReduceLROnPlateauConfig(),
    lr_schedule: LRSchedule = "constant",
    early_stopping_patience: int | None = 5,
    seed: int = 0,
    resume: bool = True,
    mixed_precision: Precision | None = None,
    deterministic: bool = False,
    progress: bool = True,
    callbacks: Sequence[keras.callbacks.Callback] = (),
    restore_best: bool = True,
    jit_compile: bool | str = "auto",
    strategy: Any = None,
    fused_batchnorm: bool = True,
) -> TrainResult:
    """Trains ``model`` with Adam, keeping the best weights, resumable after any interruption.

    Args:
        model: A built, uncompiled (or to be recompiled) Keras model.
        train_ds: Training data: a dataset with ``for_epoch(epoch)`` (exact resume), a
            ``PyDataset``, a ``tf.data.Dataset`` or anything ``model.fit`` takes as ``x``.
        valid_ds: Unaugmented validation data (or None: then monitor a training key).
        out_dir: Folder for ``best.weights.h5``, ``history.csv`` and ``checkpoint/``.
        epochs: Total epochs (including those finished before a resume).
        learning_rate: Initial Adam learning rate.
        loss: A loss name for :func:`~mammo_common.keras.training.losses.get_loss`, a Keras
            loss name (``"binary_crossentropy"``) or a loss object.
        metrics: Keras metrics (e.g. ``[DiceCoefficient(), IoU()]``).
        monitor: Log key watched by best-weights, plateau and early stopping.
        mode: ``"min"``, ``"max"`` or ``"auto"`` (max for accuracy/dice/iou/auc-like keys).
        reduce_lr: Plateau settings, or None to keep the learning rate.
        lr_schedule: ``"constant"`` (``learning_rate`` throughout, or what the plateau rule
            makes of it) or ``"poly"`` (:func:`poly_learning_rate` per epoch; needs
            ``reduce_lr=None``).
        early_stopping_patience: Epochs without improvement before stopping (None: never).
        seed: Seed of the run (recorded; with ``deterministic`` also applied globally).
        resume: Continue from ``out_dir/checkpoint`` if there is one; False starts afresh
            (deleting the previous checkpoint, best weights and history).
        mixed_precision: Expected precision of the model (checked, see module docs).
        deterministic: Seed everything and enable TensorFlow op determinism.
        progress: Show Keras' progress bar.
        callbacks: Extra Keras callbacks (their state is not checkpointed; they see one
            ``fit`` call per epoch).
        restore_best: Load the best weights into ``model`` before returning.
        jit_compile: Passed to ``compile`` (``"auto"``: XLA on GPU, not on CPU).
        strategy: A ``tf.distribute`` strategy the model was built under
            (:mod:`mammo_common.keras.training.distribute`); compile, restore and training
            then run in its scope. Under ``MultiWorkerMirroredStrategy`` only the chief writes
            ``out_dir`` (the others read a shared checkpoint to resume, and keep their best
            weights in memory).
        fused_batchnorm: Switch the model's BatchNorms to
            :class:`~mammo_common.keras.training.fused_batchnorm.FusedBatchNormalization`
            first (same results, TensorFlow's fused kernel while training: ~20 % faster unet5l
            steps on a CPU; in place, see
            :func:`~mammo_common.keras.training.fused_batchnorm.use_fused_batchnorm`).

    Returns:
        The :class:`TrainResult`.

    Raises:
        ConfigError: For an unknown monitor key, a checkpoint of other settings or
            architecture, or a model built under another precision policy.
    """
    out = Path(out_dir)
    chief = True
    if strategy is not None:
        from mammo_common.keras.training.distribute import is_chief, patch_multiworker_build

        chief = is_chief(strategy)
        patch_multiworker_build(model, strategy)
    if chief:
        out.mkdir(parents=True, exist_ok=True)
    if fused_batchnorm:
        from mammo_common.keras.training.fused_batchnorm import use_fused_batchnorm

        use_fused_batchnorm(model)
    return _fit(
        model, train_ds, valid_ds, out=out, chief=chief, strategy=strategy, epochs=epochs,
        learning_rate=learning_rate, loss=loss, metrics=metrics, monitor=monitor, mode=mode,
        reduce_lr=reduce_lr, lr_schedule=lr_schedule,
        early_stopping_patience=early_stopping_patience, seed=seed,
        resume=resume, mixed_precision=mixed_precision, deterministic=deterministic,
        progress=progress, callbacks=callbacks, restore_best=restore_best,
        jit_compile=jit_compile,
    )


def _fit(
    model: keras.Model,
    train_ds: Any,
    valid_ds: Any | None,
    *,
    out: Path,
    chief: bool,
    strategy: Any,
    epochs: int,
    learning_rate: float,
    loss: Any,
    metrics: Sequence[Any] | None,
    monitor: str,
    mode: str,
    reduce_lr: ReduceLROnPlateauConfig | None,
    lr_schedule: LRSchedule,
    early_stopping_patience: int | None,
    seed: int,
    resume: bool,
    mixed_precision: Precision | None,
    deterministic: bool,
    progress: bool,
    callbacks: Sequence[keras.callbacks.Callback],
    restore_best: bool,
    jit_compile: bool | str,
) -> TrainResult:
    """The body of :func:`fit_resumable`.

    Compile, optimizer restore and ``fit`` run in the strategy's scope; saving does not (under
    ``MultiWorkerMirroredStrategy`` a variable created in the scope is a collective op that
    every worker would have to join, and only the chief saves).
    """

    def scope() -> Any:
        return strategy.scope() if strategy is not None else contextlib.nullcontext()

    if valid_ds is None and monitor.startswith("val_"):
        raise ConfigError(
            f"monitor {monitor!r} needs validation data",
            fix="pass valid_ds or monitor a training key such as 'loss'",
        )
    if lr_schedule not in ("constant", "poly"):
        raise ConfigError(f"unknown lr_schedule {lr_schedule!r}", fix="use 'constant' or 'poly'")
    if lr_schedule == "poly" and reduce_lr is not None:
        raise ConfigError(
            "lr_schedule 'poly' sets every epoch's learning rate: it cannot be combined with "
            "the plateau rule",
            fix="pass reduce_lr=None with lr_schedule='poly'",
        )
    _check_precision(model, mixed_precision)
    if deterministic:
        set_global_determinism(seed)
    maximize = mode == "max" or (mode == "auto" and _is_max_mode(monitor))
    early = (
        None
        if early_stopping_patience is None
        else EarlyStoppingConfig(patience=early_stopping_patience)
    )

    with scope():
        model.compile(
            optimizer=keras.optimizers.Adam(learning_rate=learning_rate),
            loss=_resolve_loss(loss),
            metrics=list(metrics or []),
            jit_compile=jit_compile,
        )
    ckpt = _Checkpointer(out, write=chief)
    fingerprint = _fingerprint(seed, monitor, maximize, learning_rate, loss, model)
    if lr_schedule == "poly":
        # the schedule depends on the run's length: a resume must keep both
        fingerprint.update(lr_schedule="poly", epochs=int(epochs))
    state = None
    if resume:
        state = ckpt.load()
    else:
        ckpt.clear()
    if state is not None:
        diff = {
            k: (state.fingerprint.get(k), v)
            for k, v in fingerprint.items()
            if state.fingerprint.get(k) != v
        }
        if diff:
            field, (was, now) = next(iter(diff.items()))
            raise ConfigError(
                f"the checkpoint was written with {field}={was!r}, this run has {now!r}",
                path=ckpt.state_path,
                fix="use the same settings to resume, or pass resume=False to start afresh",
            )
        if state.checkpoint is not None:
            with scope():
                ckpt.restore(model, state)
        ckpt.cleanup(keep=state.checkpoint)
        ckpt.publish(state)
        logger.info("resuming %s after epoch %d", out, state.epochs_done)
    else:
        ckpt.clear()
        state = _State(fingerprint=fingerprint, lr=float(learning_rate))
    resumed_from = state.epochs_done

    verbose: Any = "auto" if progress else 0
    best_in_memory: list[Any] | None = None  # non-chief workers keep the best weights here
    while not state.finished and state.epochs_done < epochs:
        epoch = state.epochs_done
        if lr_schedule == "poly":
            state.lr = poly_learning_rate(learning_rate, epoch, epochs)
        _set_lr(model, state.lr)
        if progress:
            logger.info("Epoch %d/%d (lr %.3g)", epoch + 1, epochs, state.lr)
        start = time.perf_counter()
        # Our datasets order their batches themselves: Keras would also shuffle a finite
        # PyDataset's batch order with Python's global `random`, which a resume cannot replay.
        own_order = callable(getattr(train_ds, "for_epoch", None))
        with scope():
            hist = model.fit(
                _epoch_view(train_ds, epoch),
                validation_data=valid_ds,
                initial_epoch=epoch,
                epochs=epoch + 1,
                verbose=verbose,
                callbacks=list(callbacks),
                shuffle=not own_order,
            )
        seconds = time.perf_counter() - start
        row = {"epoch": epoch + 1, **_logs_to_row(hist.history), "lr": state.lr, "seconds": seconds}
        if monitor not in row:
            raise ConfigError(
                f"monitor {monitor!r} is not among the logged values "
                f"{sorted(k for k in row if k not in ('epoch', 'lr', 'seconds'))}",
                fix="pick one of those keys (metric names come from the metric objects)",
            )
        current = row[monitor]
        improved = _better(current, state.best_value, maximize)
        if improved:
            state.best_value, state.best_epoch = current, epoch + 1
            if not chief:
                best_in_memory = model.get_weights()
        if early is not None:
            if _better(current, state.early_best, maximize, early.min_delta):
                state.early_best, state.early_wait = current, 0
            else:
                state.early_wait += 1
                if state.early_wait >= early.patience:
                    state.finished, state.stop_reason = True, "early_stopping"
        if reduce_lr is not None:
            _plateau_step(state, current, maximize, reduce_lr)
        if math.isnan(row.get("loss", 0.0)):
            state.finished, state.stop_reason = True, "nan_loss"
        elif model.stop_training and not state.finished:
            state.finished, state.stop_reason = True, "callback"
        state.history.append(row)
        state.epochs_done = epoch + 1
        ckpt.save(model, state, improved)
        if progress and state.finished:
            logger.info("Stopped after epoch %d: %s", epoch + 1, state.stop_reason)

    if restore_best and chief and (out / BEST_WEIGHTS).is_file():
        model.load_weights(out / BEST_WEIGHTS)
    elif restore_best and not chief and best_in_memory is not None:
        model.set_weights(best_in_memory)
    return _result(state, monitor, out, resumed_from)


def _plateau_step(
    state: _State, current: float, maximize: bool, cfg: ReduceLROnPlateauConfig
) -> None:
    """Keras' ReduceLROnPlateau rule; updates ``state.lr`` for the next epoch."""
    in_cooldown = state.plateau_cooldown > 0
    if in_cooldown:
        state.plateau_cooldown -= 1
        state.plateau_wait = 0
    if _better(current, state.plateau_best, maximize, cfg.min_delta):
        state.plateau_best, state.plateau_wait = current, 0
    elif not in_cooldown:
        state.plateau_wait += 1
        if state.plateau_wait >= cfg.patience:
            if state.lr > cfg.min_lr:
                new_lr = max(state.lr * cfg.factor, cfg.min_lr)
                logger.info("reducing the learning rate to %.3g", new_lr)
                state.lr = new_lr
                state.plateau_cooldown = cfg.cooldown
            state.plateau_wait = 0
