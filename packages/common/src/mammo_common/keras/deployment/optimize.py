"""Inference-only rewrites of a trained model: BatchNorm folding and bfloat16 compute.

Every predict command runs its networks through :func:`inference_model` first::

    model = inference_model(model)                         # float32, BatchNorms folded
    model = inference_model(model, precision="bfloat16")   # and bfloat16 compute

**BatchNorm folding.** At inference a ``BatchNormalization`` is a fixed per-channel affine
map, ``y = s * x + t`` with ``s = gamma / sqrt(moving_variance + epsilon)`` and
``t = beta - moving_mean * s``. When it directly follows a convolution (or dense layer) whose
output feeds nothing else, the map is folded into that layer's kernel and bias
(``W' = W * s`` per output channel, ``b' = b * s + t``) and the BatchNorm becomes a
:class:`FoldedBatchNormalization` pass-through (kept so that layer names, and so the model's
structure, stay the same). This removes a full pass over every normalised feature map; on
this project's 2-core CPU it makes unet5l at 1024x768 about 15 % faster (docs/benchmarks.md).
The folded model computes the same function up to float32 rounding (max |dp| ~ 1e-6 on the
networks of the registry, tested).

Foldable producers: ``Conv2D``, ``SeparableConv2D`` (folded into the pointwise kernel),
``DepthwiseConv2D``, ``Conv2DTranspose`` and ``Dense``, without an activation of their own.
BatchNorms anywhere else (after an addition, a concatenation, an activation, or a layer whose
output is used twice) are left as they are. Nested models (a classifier's backbone) are
folded too. One foldable pattern is also left alone: a BatchNorm whose only consumer is an
addition whose sum feeds more than one layer (Xception's middle-flow residuals: the sum goes to
the next block's ReLU and to the next addition). Folded, its convolution's bias add, the
addition and the ReLU look fusable to TensorFlow's Grappler remapper, which then fails on the
sum's second consumer ("remapper failed: INVALID_ARGUMENT: Mutation::Apply error: fanout ...
exist for missing node .../Add", TensorFlow 2.21 with oneDNN) and skips its convolution +
bias + activation fusions for the whole graph. Keeping those BatchNorms keeps the log clean;
in a one-off timing (unetpp_xception 256x256, not kept in a results file) it cost no
measurable CPU time.

**bfloat16.** ``precision="bfloat16"`` rebuilds every layer under Keras' ``mixed_bfloat16``
policy (bfloat16 compute, float32 weights; BatchNorm statistics and the model's output layers
stay float32). It is about 1.5-2x faster on CPUs with AVX-512 BF16/AMX and on recent GPUs, and
slower where bfloat16 is emulated. Probabilities move by up to ~0.03; docs/benchmarks.md
reports the Dice on the synthetic test set in both precisions.

The original model is never modified; the returned one shares no variables with it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import keras
import numpy as np

__all__ = [
    "FOLDABLE_LAYERS",
    "FoldReport",
    "FoldedBatchNormalization",
    "InferencePrecision",
    "foldable_pairs",
    "inference_model",
]

InferencePrecision = Literal["float32", "bfloat16"]

FOLDABLE_LAYERS: tuple[type, ...] = (
    keras.layers.Conv2D,
    keras.layers.SeparableConv2D,
    keras.layers.DepthwiseConv2D,
    keras.layers.Conv2DTranspose,
    keras.layers.Dense,
)


@keras.saving.register_keras_serializable(package="mammo")
class FoldedBatchNormalization(keras.layers.Layer):
    """What is left of a ``BatchNormalization`` folded into the layer before it: its input.

    Args:
        folded_into: Name of the layer whose kernel and bias now carry the normalisation.
        **kwargs: Base layer arguments (``name``, ``dtype``).
    """

    def __init__(self, folded_into: str = "", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.folded_into = folded_into
        self.supports_masking = True

    def call(self, inputs, training=None, mask=None):
        return inputs

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "folded_into": self.folded_into}


@dataclass
class FoldReport:
    """What :func:`inference_model` did.

    Attributes:
        precision: ``float32`` or ``bfloat16``.
        folded: ``{batchnorm name: producer name}`` of every folded BatchNorm.
        kept: Names of the BatchNorms that could not be folded.
    """

    precision: str
    folded: dict[str, str] = field(default_factory=dict)
    kept: list[str] = field(default_factory=list)


def _leaf_layers(model: keras.Model) -> list[keras.layers.Layer]:
    out: list[keras.layers.Layer] = []
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            out.extend(_leaf_layers(layer))
        else:
            out.append(layer)
    return out


def _bn_axis_is_last(bn: keras.layers.BatchNormalization) -> bool:
    axis = bn.axis if isinstance(bn.axis, int) else (bn.axis[0] if len(bn.axis) == 1 else None)
    rank = len(bn.input.shape)
    return axis is not None and axis in (-1, rank - 1)


def _producer(layer: keras.layers.Layer) -> keras.layers.Layer | None:
    if len(layer._inbound_nodes) != 1:
        return None
    tensors = layer._inbound_nodes[0].input_tensors
    if len(tensors) != 1:
        return None
    return tensors[0]._keras_history.operation


def _feeds_shared_addition(layer: keras.layers.Layer) -> bool:
    """Whether ``layer``'s only consumer is an ``Add`` whose sum is used more than once."""
    consumers = [node.operation for node in layer._outbound_nodes]
    return (
        len(consumers) == 1
        and isinstance(consumers[0], keras.layers.Add)
        and len(consumers[0]._outbound_nodes) > 1
    )


def _fold_pairs(
    model: keras.Model,
) -> list[tuple[keras.layers.BatchNormalization, keras.layers.Layer]]:
    outputs = {id(t._keras_history.operation) for t in model.outputs}
    pairs = []
    for layer in _leaf_layers(model):
        if not isinstance(layer, keras.layers.BatchNormalization):
            continue
        if len(layer._inbound_nodes) != 1 or not _bn_axis_is_last(layer):
            continue
        producer = _producer(layer)
        if not isinstance(producer, FOLDABLE_LAYERS):
            continue
        if len(producer._inbound_nodes) != 1 or len(producer._outbound_nodes) != 1:
            continue
        if id(producer) in outputs:  # its raw output is also a model output
            continue
        if keras.activations.serialize(producer.activation) != "linear":
            continue
        if _feeds_shared_addition(layer):  # Grappler's remapper fails on the folded form
            continue
        pairs.append((layer, producer))
    return pairs


def foldable_pairs(model: keras.Model) -> dict[str, str]:
    """``{batchnorm name: producer name}`` of the BatchNorms :func:`inference_model` folds.

    A BatchNorm is foldable when it normalises the last axis, is used once, and its only
    input comes from a :data:`FOLDABLE_LAYERS` layer without activation whose output feeds
    nothing else and is not a model output (nested models included), unless its only consumer
    is an addition whose sum is used more than once (see the module docstring).
    """
    return {bn.name: producer.name for bn, producer in _fold_pairs(model)}


def _batchnorm_affine(bn: keras.layers.BatchNormalization) -> tuple[np.ndarray, np.ndarray]:
    """``(s, t)`` with ``bn(x) == s * x + t`` at inference (float64)."""
    mean = np.asarray(keras.ops.convert_to_numpy(bn.moving_mean), np.float64)
    var = np.asarray(keras.ops.convert_to_numpy(bn.moving_variance), np.float64)
    gamma = np.asarray(keras.ops.convert_to_numpy(bn.gamma), np.float64) if bn.scale else 1.0
    beta = np.asarray(keras.ops.convert_to_numpy(bn.beta), np.float64) if bn.center else 0.0
    s = gamma / np.sqrt(var + bn.epsilon)
    return s * np.ones_like(mean), beta - mean * s


def _folded_weights(layer: keras.layers.Layer, s: np.ndarray, t: np.ndarray) -> list[np.ndarray]:
    """The producer's weights with the affine map ``s * x + t`` folded into its output."""
    weights = [np.asarray(w, np.float64) for w in layer.get_weights()]
    if isinstance(layer, keras.layers.SeparableConv2D):
        depthwise, pointwise = weights[0], weights[1]
        bias = weights[2] if layer.use_bias else 0.0
        new = [depthwise, pointwise * s, bias * s + t]
    else:
        kernel = weights[0]
        bias = weights[1] if layer.use_bias else 0.0
        if isinstance(layer, keras.layers.DepthwiseConv2D):
            # (kh, kw, in, multiplier): output channel c * multiplier + m
            kernel = kernel * s.reshape(kernel.shape[2], kernel.shape[3])
        elif isinstance(layer, keras.layers.Conv2DTranspose):
            kernel = kernel * s[:, None]  # (kh, kw, out, in)
        else:
            kernel = kernel * s  # Conv2D (kh, kw, in, out), Dense (in, out)
        new = [kernel, bias * s + t]
    return [w.astype(np.float32) for w in new]


def inference_model(
    model: keras.Model,
    *,
    precision: InferencePrecision = "float32",
    fold_batchnorm: bool = True,
) -> tuple[keras.Model, FoldReport]:
    """A copy of ``model`` rewritten for prediction (see the module docstring).

    Args:
        model: A trained functional model (as loaded from a model folder).
        precision: ``float32`` or ``bfloat16`` compute, for every layer (also of a model
            trained under a mixed policy); the model's output layers always compute in float32.
        fold_batchnorm: Fold BatchNorms into the layers before them.

    Returns:
        ``(model, report)``: the new model (training it again is not meant: folded BatchNorms
        no longer learn) and what was folded.

    Raises:
        ValueError: On an unknown precision or a model that is not functional.

    While a :class:`~mammo_common.model_cache.ModelCache` is active (``mammo run``'s
    :class:`~mammo_common.oneshot.Cascade`), the copy of the same model object is built once.
    """
    from mammo_common.model_cache import active_cache, memoized

    if active_cache() is None:
        return _inference_model(model, precision=precision, fold_batchnorm=fold_batchnorm)
    # the cache keeps ``model`` alive with its copy, so its id() cannot name another object
    key = ("inference_model", id(model), precision, bool(fold_batchnorm))
    _, result = memoized(
        key, lambda: (model, _inference_model(model, precision=precision,
                                              fold_batchnorm=fold_batchnorm))
    )
    return result


def _inference_model(
    model: keras.Model,
    *,
    precision: InferencePrecision = "float32",
    fold_batchnorm: bool = True,
) -> tuple[keras.Model, FoldReport]:
    """:func:`inference_model` without the cache."""
    if precision not in ("float32", "bfloat16"):
        raise ValueError(f"precision must be 'float32' or 'bfloat16', got {precision!r}")
    if not isinstance(model, keras.Model) or not hasattr(model, "_run_through_graph"):
        raise ValueError(f"{type(model).__name__} is not a functional Keras model")
    pairs = _fold_pairs(model) if fold_batchnorm else []
    folded_bns = {id(bn): producer for bn, producer in pairs}
    producers = {id(producer): bn for bn, producer in pairs}
    output_layers = {id(t._keras_history.operation) for t in model.outputs}
    report = FoldReport(
        precision=precision,
        folded={bn.name: producer.name for bn, producer in pairs},
        kept=[
            layer.name
            for layer in _leaf_layers(model)
            if isinstance(layer, keras.layers.BatchNormalization) and id(layer) not in folded_bns
        ],
    )
    clones: list[tuple[keras.layers.Layer, keras.layers.Layer]] = []

    def clone(layer: keras.layers.Layer) -> keras.layers.Layer:
        config = layer.get_config()
        # the requested precision decides, whatever policy the model was trained under
        bf16 = precision == "bfloat16" and id(layer) not in output_layers
        config["dtype"] = "mixed_bfloat16" if bf16 else "float32"
        if id(layer) in folded_bns:
            new: keras.layers.Layer = FoldedBatchNormalization(
                folded_into=folded_bns[id(layer)].name, name=layer.name, dtype=config.get("dtype")
            )
        else:
            if id(layer) in producers:
                config["use_bias"] = True
            new = layer.__class__.from_config(config)
        clones.append((layer, new))
        return new

    new_model = keras.models.clone_model(model, clone_function=clone, recursive=True)
    for old, new in clones:
        if id(old) in folded_bns:
            continue
        if id(old) in producers:
            s, t = _batchnorm_affine(producers[id(old)])
            new.set_weights(_folded_weights(old, s, t))
        else:
            new.set_weights(old.get_weights())
    return new_model, report
