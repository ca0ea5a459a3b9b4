"""Mass classifiers: a ``keras.applications`` backbone with the reference's dense head.

Architecture (docs ARCHITECTURES.md, "Classifiers"), for every backbone::

    input (H, W, 3) in [0, 1]
      -> BackbonePreprocess (the backbone's own input scaling, in the graph)
      -> backbone, include_top=False           (layer "backbone")
      -> GlobalAveragePooling2D                (layer "gap")
      -> Dense 256 ReLU -> Dropout 0.5 -> Dense 128 ReLU
      -> Dense 1 sigmoid, float32              (layer "malignancy"; positive = malignant)

The backbone is frozen by default. With ``weights=None`` at 224x224x3 the reference's counts
are reproduced exactly (:data:`REFERENCE_COUNTS`).

Backbones (:func:`list_backbones`) are the encoders of the shared registry
:mod:`mammo_common.keras.networks.encoders` (builders, preprocessing, ImageNet weights
offline-first):

* Every ``keras.applications`` constructor, by its lower-case name without separators
  (``vgg16``, ``resnet50v2``, ``inceptionv3``, ``efficientnetb0``, ``densenet121``,
  ``mobilenetv2``, ``convnexttiny``...), each with its family's input preprocessing.
* ``tinycnn``: a small convolutional backbone (three [3x3 conv-BN-ReLU -> 2x2 max-pool]
  blocks, widths 16/32/64 by default) for CPU tests and demos; it has no pretrained weights.
* ``descriptors``: BI-RADS-style shape and margin measurements of an ``image+mask`` ROI
  (:mod:`massclass.descriptors`), for datasets too small for a network to learn them.
* Anything registered with :func:`register_backbone` (or
  :func:`mammo_common.keras.networks.encoders.register_encoder`).

Inputs are float images scaled to [0, 1] (see :mod:`massclass.rois`); the model maps them to
what the backbone expects, so a saved model needs nothing outside its file.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import keras
from keras import layers, ops

from mammo_common.keras.networks import encoders
from mammo_common.keras.networks.encoders import Encoder, PreprocessMode, preprocess_images
from massclass.descriptors import build_descriptor_backbone

__all__ = [
    "REFERENCE_COUNTS",
    "Backbone",
    "BackbonePreprocess",
    "MassClassifier",
    "PreprocessMode",
    "build_model",
    "count_parameters",
    "get_backbone",
    "list_backbones",
    "register_backbone",
    "set_trainable",
    "weights_origin",
]

#: (total, non-trainable) parameters at 224x224x3 with the base frozen (ARCHITECTURES.md).
REFERENCE_COUNTS: dict[str, tuple[int, int]] = {
    "vgg16": (14_879_041, 14_714_688),
    "resnet50v2": (24_122_369, 23_564_800),
    "inceptionv3": (22_360_353, 21_802_784),
}

#: A backbone is an encoder of the shared registry (:mod:`mammo_common.keras.networks.encoders`).
Backbone = Encoder


@keras.saving.register_keras_serializable(package="massclass")
class BackbonePreprocess(layers.Layer):
    """Map [0, 1] images to a backbone's expected input, as its ``preprocess_input`` does.

    The modes (``"caffe"``, ``"tf"``, ``"torch"``, ``"none"``) are those of
    :func:`mammo_common.keras.networks.encoders.preprocess_images`.

    Args:
        mode: One of the modes above.
        **kwargs: Passed to :class:`keras.layers.Layer`.
    """

    def __init__(self, mode: PreprocessMode = "tf", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if mode not in encoders.PREPROCESSING_MODES:
            raise ValueError(f"unknown preprocessing mode {mode!r}; use caffe, tf, torch or none")
        self.mode = mode

    def call(self, inputs):
        x = ops.cast(inputs, self.compute_dtype)
        return preprocess_images(x, self.mode, self.compute_dtype)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self) -> dict:
        return {**super().get_config(), "mode": self.mode}


def register_backbone(
    name: str,
    builder: Callable[..., keras.Model],
    *,
    preprocess: PreprocessMode = "tf",
    pretrained: bool = False,
    description: str = "",
    source: str = "custom",
    input_multiple: int = 1,
) -> Backbone:
    """Register a backbone under ``name`` in the shared encoder registry (replacing any earlier
    one of that name).

    Args:
        name: Registry name; matched case- and separator-insensitively.
        builder: ``fn(input_shape, weights, **options)`` returning a model without a top whose
            output is a 4-D feature map.
        preprocess: How [0, 1] inputs are scaled for it.
        pretrained: Whether ``weights="imagenet"`` is meaningful.
        description: Shown by ``massclass models``.
        source: Where it comes from.
        input_multiple: Input height and width must be multiples of this.

    Returns:
        The registered :class:`~mammo_common.keras.networks.encoders.Encoder`.
    """
    return encoders.register_encoder(
        Encoder(name=encoders.encoder_key(name), builder=builder, preprocessing=preprocess,
                pretrained=pretrained, source=source, description=description,
                input_multiple=int(input_multiple)),
        overwrite=True,
    )


def _tinycnn(
    input_shape: Sequence[int], weights: Any = None, widths: Sequence[int] = (16, 32, 64)
) -> keras.Model:
    """Small CPU backbone: [3x3 conv-BN-ReLU -> 2x2 max-pool] per width."""
    if weights not in (None, "auto"):
        raise ValueError("tinycnn has no pretrained weights; use weights=None")
    inputs = keras.Input(shape=tuple(input_shape), name="tinycnn_input")
    x = inputs
    for i, width in enumerate(widths, start=1):
        x = layers.Conv2D(int(width), 3, padding="same", use_bias=False, name=f"block{i}_conv")(x)
        x = layers.BatchNormalization(name=f"block{i}_bn")(x)
        x = layers.ReLU(name=f"block{i}_relu")(x)
        x = layers.MaxPooling2D(2, name=f"block{i}_pool")(x)
    return keras.Model(inputs, x, name="tinycnn")


register_backbone(
    "tinycnn",
    _tinycnn,
    preprocess="tf",
    pretrained=False,
    description="3 conv-BN-ReLU-pool blocks (16/32/64), no pretrained weights: CPU tests, demos",
    source="massclass",
    input_multiple=8,
)


register_backbone(
    "descriptors",
    build_descriptor_backbone,
    preprocess="tf",
    pretrained=False,
    description="BI-RADS shape and margin descriptors of image+mask ROIs (small data, CPU)",
    source="massclass",
)


def list_backbones() -> list[Backbone]:
    """All registered backbones (every ``keras.applications`` model, ``tinycnn``, custom ones)."""
    return encoders.list_encoders()


def get_backbone(name: str) -> Backbone:
    """The registered backbone ``name`` (case/separator-insensitive).

    Raises:
        ValueError: Unknown name; the message lists the valid names.
    """
    try:
        return encoders.get_encoder(name)
    except ValueError:
        names = ", ".join(b.name for b in list_backbones())
        raise ValueError(f"unknown backbone {name!r}; valid names: {names}") from None


@keras.saving.register_keras_serializable(package="massclass")
class MassClassifier(keras.Model):
    """Backbone + the reference head (functional model, keras-hub style).

    Args:
        backbone: Registry name of the backbone.
        input_shape: ``(height, width, channels)``; channels must be 3 for ImageNet backbones.
        dense_units: Widths of the two hidden dense layers (reference: 256, 128).
        dropout: Dropout after the first dense layer (reference: 0.5).
        backbone_options: Extra keyword arguments of the backbone builder (e.g. ``alpha`` for
            MobileNet, ``widths`` for tinycnn).
        weights: Backbone weights: ``"auto"``, ``"imagenet"``, ``None`` or a file. Not saved in
            the config; a loaded model gets its weights from its file.
        trainable_base: ``False`` (frozen, default), ``True`` (all) or a fraction in (0, 1)
            of the backbone's layers, counted from the top, made trainable.
        name: Model name.
        **kwargs: Passed to :class:`keras.Model`.
    """

    def __init__(
        self,
        backbone: str = "vgg16",
        input_shape: Sequence[int] = (224, 224, 3),
        dense_units: Sequence[int] = (256, 128),
        dropout: float = 0.5,
        backbone_options: dict[str, Any] | None = None,
        weights: Any = None,
        trainable_base: bool | float = False,
        name: str | None = None,
        **kwargs: Any,
    ) -> None:
        spec = get_backbone(backbone)
        shape = tuple(int(d) for d in input_shape)
        if len(shape) != 3 or min(shape) < 1:
            raise ValueError(f"input_shape must be (height, width, channels), got {input_shape}")
        if len(dense_units) != 2:
            raise ValueError(f"dense_units must hold two widths, got {dense_units}")
        if not 0.0 <= float(dropout) < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        options = dict(backbone_options or {})

        inputs = keras.Input(shape=shape, name="roi")
        x = BackbonePreprocess(spec.preprocessing, name="preprocess")(inputs)
        base = spec.builder(shape, weights, **options)
        base.name = "backbone"
        x = base(x)
        x = layers.GlobalAveragePooling2D(name="gap")(x)
        x = layers.Dense(int(dense_units[0]), activation="relu", name="dense1")(x)
        x = layers.Dropout(float(dropout), name="dropout")(x)
        x = layers.Dense(int(dense_units[1]), activation="relu", name="dense2")(x)
        outputs = layers.Dense(1, activation="sigmoid", dtype="float32", name="malignancy")(x)
        super().__init__(inputs=inputs, outputs=outputs, name=name or f"massclass_{spec.name}",
                         **kwargs)

        self.backbone_name = spec.name
        self.image_shape = shape
        self.dense_units = [int(u) for u in dense_units]
        self.dropout_rate = float(dropout)
        self.backbone_options = options
        self.preprocess_mode = spec.preprocessing
        set_trainable(self, trainable_base)

    @property
    def base(self) -> keras.Model:
        """The backbone sub-model."""
        return self.get_layer("backbone")

    def get_config(self) -> dict:
        """Constructor arguments, so ``.keras`` files round-trip."""
        return {
            "name": self.name,
            "trainable": self.trainable,
            "backbone": self.backbone_name,
            "input_shape": list(self.image_shape),
            "dense_units": list(self.dense_units),
            "dropout": self.dropout_rate,
            "backbone_options": dict(self.backbone_options),
        }

    @classmethod
    def from_config(cls, config: dict) -> MassClassifier:
        """Rebuild from :meth:`get_config` (random backbone; the weights follow from the file)."""
        return cls(**config)


def set_trainable(model: MassClassifier, trainable_base: bool | float | str) -> int:
    """Freeze or unfreeze the backbone; the head always stays trainable.

    Args:
        model: A :class:`MassClassifier`.
        trainable_base: ``False``/``"head"`` (frozen), ``True``/``"all"`` (all layers) or a
            fraction in (0, 1): the top ``ceil(fraction * n_layers)`` backbone layers
            trainable, the rest frozen (the reference's "top 25%" phase uses 0.25).

    Returns:
        The number of backbone layers left trainable. Recompile afterwards.
    """
    base = model.base
    base_layers = base.layers
    if trainable_base in ("head", False) or trainable_base is None:
        n = 0
    elif trainable_base in ("all", True):
        n = len(base_layers)
    else:
        frac = float(trainable_base)
        if not 0.0 <= frac <= 1.0:
            raise ValueError(f"trainable fraction must be in [0, 1], got {trainable_base}")
        n = -(-round(frac * len(base_layers) * 1e6) // 1_000_000)  # ceil, float-safe
    base.trainable = n > 0
    cut = len(base_layers) - n
    for i, layer in enumerate(base_layers):
        layer.trainable = i >= cut
    for layer in model.layers:
        if layer is not base:
            layer.trainable = True
    return n


def count_parameters(model: keras.Model) -> dict[str, int]:
    """Total, trainable and non-trainable parameter counts."""
    trainable = sum(int(ops.size(w)) for w in model.trainable_weights)
    non_trainable = sum(int(ops.size(w)) for w in model.non_trainable_weights)
    return {"total": trainable + non_trainable, "trainable": trainable,
            "non_trainable": non_trainable}


def build_model(
    name: str,
    input_shape: Sequence[int] = (224, 224, 3),
    *,
    weights: Any = "auto",
    trainable: bool | float = False,
    **kwargs: Any,
) -> MassClassifier:
    """Build a mass classifier.

    Args:
        name: Backbone name (``vgg16``, ``resnet50v2``, ``inceptionv3``, any other
            ``keras.applications`` model, ``tinycnn``); see :func:`list_backbones`.
        input_shape: ``(height, width, channels)``.
        weights: ``"auto"`` (ImageNet if available offline, else random, with a message),
            ``"imagenet"``, ``None`` (random) or a backbone weights file.
        trainable: Backbone trainability, see :func:`set_trainable` (frozen by default).
        **kwargs: ``dense_units``, ``dropout``, ``backbone_options``, ``name``.

    Returns:
        The model (not compiled).

    Raises:
        ValueError: Unknown backbone or an input shape it cannot take.
    """
    spec = get_backbone(name)
    if not spec.pretrained and isinstance(weights, str) and weights.lower() == "auto":
        weights = None
    return MassClassifier(
        backbone=spec.name, input_shape=input_shape, weights=weights,
        trainable_base=trainable, **kwargs,
    )


def weights_origin(name: str, weights: Any) -> str:
    """What a ``weights`` request gives for backbone ``name``: ``imagenet``, ``scratch`` or a path.

    ``"auto"`` is resolved as :func:`build_model` resolves it (ImageNet only when available
    offline or downloads are allowed).
    """
    spec = get_backbone(name)
    if weights is None or not spec.pretrained:
        return "scratch"
    if isinstance(weights, str) and weights.strip().lower() == "auto":
        return "scratch" if spec.resolve_weights("auto") is None else "imagenet"
    if isinstance(weights, str) and weights.strip().lower() == "imagenet":
        return "imagenet"
    return str(weights)
