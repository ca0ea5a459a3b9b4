"""``tf.distribute`` strategies for training: ``--strategy none|mirrored|multiworker``.

* ``none``: the default strategy (one device; Keras uses the first GPU if there is one).
* ``mirrored``: :class:`tf.distribute.MirroredStrategy` over every GPU of this machine, or,
  without GPUs, over every logical CPU device (split a CPU into several with
  ``logical_cpus=N`` *before TensorFlow initialises*: tests do this in a fresh process).
* ``multiworker``: :class:`tf.distribute.MultiWorkerMirroredStrategy` across processes or
  machines described by the ``TF_CONFIG`` environment variable (``cluster`` and ``task``);
  every worker runs the same command. Only the chief (task ``chief``, or ``worker`` 0 when the
  cluster has no chief) writes checkpoints and the model folder (:func:`is_chief`).

The model must be **built and compiled inside** :func:`strategy_scope` (variables are created
mirrored there); :func:`mammo_common.keras.training.harness.fit_resumable` takes ``strategy=`` and
compiles, restores and trains inside its scope.

Batch size and learning rate: the batch a dataset yields is the **global** batch, split
evenly across the replicas (``per_replica = global / num_replicas_in_sync``). Our CLIs keep
``--batch-size`` as the global batch, so results do not depend on the device count unless you
ask; :func:`scale_learning_rate` applies the linear scaling rule only when asked
(docs/distributed.md).

TensorFlow only: under another Keras backend every strategy but ``none`` raises
:class:`~mammo_common.errors.ConfigError`.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from typing import Any, Literal

from mammo_common.errors import ConfigError

__all__ = [
    "STRATEGIES",
    "get_strategy",
    "global_batch_size",
    "is_chief",
    "num_replicas",
    "patch_multiworker_build",
    "scale_learning_rate",
    "split_cpu",
    "strategy_scope",
    "task_info",
]

StrategyName = Literal["none", "mirrored", "multiworker"]
#: Accepted ``--strategy`` values.
STRATEGIES: tuple[str, ...] = ("none", "mirrored", "multiworker")


def _check_name(name: str | None) -> str:
    value = (name or "none").strip().lower().replace("-", "").replace("_", "")
    value = {"multiworkermirrored": "multiworker", "default": "none"}.get(value, value)
    if value not in STRATEGIES:
        raise ConfigError(
            f"unknown distribution strategy {name!r}", field="strategy",
            fix=f"use one of {', '.join(STRATEGIES)}",
        )
    return value


def _tensorflow(name: str) -> Any:
    import keras

    backend = keras.backend.backend()
    if backend != "tensorflow":
        raise ConfigError(
            f"--strategy {name} uses tf.distribute and needs the TensorFlow backend, not "
            f"{backend!r}",
            field="strategy",
            fix="run with KERAS_BACKEND=tensorflow, or use --strategy none "
            "(for JAX use keras.distribution; see docs/backends.md)",
        )
    import tensorflow as tf

    return tf


def split_cpu(n: int) -> None:
    """Split the first CPU into ``n`` logical devices (call before TensorFlow initialises).

    Raises:
        ConfigError: When TensorFlow's devices are already initialised.
    """
    tf = _tensorflow("mirrored")
    cpus = tf.config.list_physical_devices("CPU")
    try:
        tf.config.set_logical_device_configuration(
            cpus[0], [tf.config.LogicalDeviceConfiguration() for _ in range(int(n))]
        )
    except RuntimeError as exc:
        raise ConfigError(
            f"cannot split the CPU into {n} logical devices: {exc}",
            fix="call split_cpu / get_strategy(logical_cpus=...) before anything runs on "
            "TensorFlow (first thing in the process)",
        ) from None


def task_info() -> tuple[str, int, int]:
    """``(task type, task index, number of workers)`` from ``TF_CONFIG`` (``("", 0, 1)``
    when it is not set)."""
    raw = os.environ.get("TF_CONFIG", "").strip()
    if not raw:
        return "", 0, 1
    try:
        config = json.loads(raw)
        cluster = config.get("cluster", {})
        task = config.get("task", {})
        workers = sum(len(cluster.get(k, [])) for k in ("chief", "worker"))
        return str(task.get("type", "")), int(task.get("index", 0)), max(1, workers)
    except (ValueError, TypeError, AttributeError) as exc:
        raise ConfigError(
            f"TF_CONFIG is not valid JSON with 'cluster' and 'task' ({exc})",
            field="TF_CONFIG",
            fix='set e.g. {"cluster": {"worker": ["host1:12345", "host2:12345"]}, '
            '"task": {"type": "worker", "index": 0}}',
        ) from None


def _is_multiworker(strategy: Any) -> bool:
    # tf.distribute.MultiWorkerMirroredStrategy is the class CollectiveAllReduceStrategy
    names = {cls.__name__ for cls in type(strategy).__mro__}
    return bool(names & {"MultiWorkerMirroredStrategy", "CollectiveAllReduceStrategy"})


def is_chief(strategy: Any = None) -> bool:
    """Whether this process writes checkpoints and model folders.

    True without a strategy, for in-process strategies, and for the chief of a multi-worker
    cluster (task ``chief``, or ``worker`` 0 when ``TF_CONFIG`` names no chief).
    """
    if strategy is None or not _is_multiworker(strategy):
        return True
    kind, index, _ = task_info()
    raw = json.loads(os.environ.get("TF_CONFIG") or "{}")
    has_chief = bool(raw.get("cluster", {}).get("chief"))
    if kind == "chief":
        return True
    return kind in ("worker", "") and index == 0 and not has_chief


def get_strategy(name: str | None = "none", logical_cpus: int | None = None) -> Any:
    """The ``tf.distribute`` strategy of a ``--strategy`` value (None for ``none``).

    Args:
        name: ``none``, ``mirrored`` or ``multiworker``.
        logical_cpus: With ``mirrored`` on a machine without GPUs, first split the CPU into
            this many logical devices (only possible before TensorFlow initialises).

    Returns:
        The strategy, or None for ``none``.

    Raises:
        ConfigError: Unknown name, a backend other than TensorFlow, ``multiworker`` without
            ``TF_CONFIG``, or a CPU split after initialisation.
    """
    name = _check_name(name)
    if name == "none":
        return None
    tf = _tensorflow(name)
    if name == "multiworker":
        if not os.environ.get("TF_CONFIG"):
            raise ConfigError(
                "--strategy multiworker needs the TF_CONFIG environment variable",
                field="TF_CONFIG",
                fix='set TF_CONFIG on every worker, e.g. {"cluster": {"worker": '
                '["10.0.0.1:12345", "10.0.0.2:12345"]}, "task": {"type": "worker", '
                '"index": 0}} (index 1 on the second); see docs/distributed.md',
            )
        task_info()  # validates the JSON
        options = tf.distribute.experimental.CommunicationOptions(
            implementation=tf.distribute.experimental.CommunicationImplementation.AUTO
        )
        return tf.distribute.MultiWorkerMirroredStrategy(communication_options=options)
    if logical_cpus:
        split_cpu(logical_cpus)
    gpus = tf.config.list_logical_devices("GPU")
    if gpus:
        return tf.distribute.MirroredStrategy(devices=[d.name for d in gpus])
    cpus = [d.name for d in tf.config.list_logical_devices("CPU")]
    return tf.distribute.MirroredStrategy(
        devices=cpus, cross_device_ops=tf.distribute.ReductionToOneDevice()
    )


@contextlib.contextmanager
def strategy_scope(strategy: Any = "none", logical_cpus: int | None = None) -> Iterator[Any]:
    """Context manager: build and compile models under a strategy.

    Args:
        strategy: A strategy name (see :func:`get_strategy`), a strategy object, or None.
        logical_cpus: See :func:`get_strategy`.

    Yields:
        The strategy object (None for ``none``).

    Example:
        >>> with strategy_scope("mirrored") as strategy:  # doctest: +SKIP
        ...     model = build_model(...)
        ...     fit_resumable(model, ..., strategy=strategy)
    """
    if strategy is None or isinstance(strategy, str):
        strategy = get_strategy(strategy, logical_cpus=logical_cpus)
    if strategy is None:
        yield None
        return
    with strategy.scope():
        yield strategy


def patch_multiworker_build(model: Any, strategy: Any) -> None:
    """Work around two Keras 3 bugs under ``MultiWorkerMirroredStrategy``.

    Keras 3.15's TensorFlow trainer builds the model from the first batch by *reducing* it
    across replicas (``strategy.reduce("MEAN", batch)``), which ``MultiWorkerMirroredStrategy``
    cannot do in eager mode ("Attempt to convert a value (PerReplica...) to a Tensor";
    keras-team/keras#20585, tensorflow/tensorflow#72388). The build only needs shapes, so this
    instance-level patch builds from the first replica's local batch instead. It does nothing
    for other strategies.
    """
    if strategy is None or not _is_multiworker(strategy):
        return
    if getattr(model, "_mammo_mw_patched", False):
        return
    tf = _tensorflow("multiworker")

    def local(value: Any) -> Any:
        if isinstance(value, tf.distribute.DistributedValues):
            return strategy.experimental_local_results(value)[0]
        return value

    def build(iterator: Any = None, data_batch: Any = None) -> None:
        if iterator is not None:
            for _, _, it in iterator:
                data_batch = tf.nest.map_structure(local, next(it))
                break
        with strategy.scope():
            model._symbolic_build(data_batch=data_batch)

    model._maybe_symbolic_build = build
    model._mammo_mw_patched = True
    _patch_reduce_per_replica(tf)


def _patch_reduce_per_replica(tf: Any) -> None:
    """Keras 3.15 averages multi-worker step logs with ``strategy.reduce("MEAN", v, axis=0)``,
    which fails for the scalar losses and metrics ("Invalid reduction dimension 0 for input
    with 0 dimensions"); reduce scalars with ``axis=None`` instead (once, process-wide; other
    strategies and reductions are untouched)."""
    from keras.src.backend.tensorflow import trainer as tf_trainer

    original = tf_trainer.reduce_per_replica
    if getattr(original, "_mammo_patched", False):
        return

    def reduce_per_replica(values: Any, strategy: Any, reduction: str) -> Any:
        if not _is_multiworker(strategy) or reduction not in ("auto", "mean"):
            return original(values, strategy, reduction)

        def mean(v: Any) -> Any:
            if not isinstance(v, tf.distribute.DistributedValues) and not tf.is_tensor(v):
                return v
            local = strategy.experimental_local_results(v)[0]
            axis = 0 if local.shape.rank else None
            return strategy.reduce("MEAN", v, axis=axis)

        return tf.nest.map_structure(mean, values)

    reduce_per_replica._mammo_patched = True  # type: ignore[attr-defined]
    tf_trainer.reduce_per_replica = reduce_per_replica


def num_replicas(strategy: Any = None) -> int:
    """Replicas that train in sync (1 without a strategy)."""
    return 1 if strategy is None else int(strategy.num_replicas_in_sync)


def global_batch_size(per_replica: int, strategy: Any = None) -> int:
    """The global batch: ``per_replica x num_replicas_in_sync``."""
    return int(per_replica) * num_replicas(strategy)


def scale_learning_rate(
    learning_rate: float, strategy: Any = None, rule: Literal["none", "linear"] = "none",
    *, reference_replicas: int = 1,
) -> float:
    """The learning rate for a strategy: unchanged (``none``) or linearly scaled.

    The linear scaling rule (Goyal et al., 2017) multiplies the rate by
    ``replicas / reference_replicas`` when the global batch grows with the replicas. It is
    never applied unless asked.
    """
    if rule == "none":
        return float(learning_rate)
    if rule != "linear":
        raise ConfigError(f"unknown learning-rate scaling rule {rule!r}", field="lr_scaling",
                          fix="use none or linear")
    return float(learning_rate) * num_replicas(strategy) / max(1, int(reference_replicas))
