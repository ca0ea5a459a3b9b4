"""The one encoder registry: massseg's segmentation encoders and massclass's backbones.

Each :class:`Encoder` holds, for one network body without its classification top:

* ``builder``: ``fn(input_shape=None, weights="auto", *, input_tensor=None, **options)``
  returning the Keras model (``keras.applications`` constructors are wrapped with the
  offline-first weights of :mod:`mammo_common.keras.networks.weights`);
* ``taps``: layers whose outputs serve as skip connections, with their stride relative to
  the input, and ``levels``: the feature pyramid ``P1``..``P5`` (strides 2, 4, 8, 16, 32) as
  layer names among the taps, for segmentation decoders;
* ``preprocessing``: how [0, 1] images map to what the ImageNet weights expect
  (:func:`preprocess_images`: ``"caffe"``, ``"tf"``, ``"torch"`` or ``"none"``);
* ``input_multiple``: the input height and width must be multiples of it;
* ``imagenet``: the ImageNet weight files when registered (the Keras cache is then checked
  offline), and ``pretrained``: whether ImageNet weights exist at all.

Xception, VGG16 and ResNet50 (the segmentation encoders) carry taps and levels; ResNet50V2
and InceptionV3 their weight files; every other ``keras.applications`` constructor is
registered on first listing (:func:`list_encoders`) as a classification backbone with its
family's preprocessing. Stages add their own with :func:`register_encoder` (massclass:
``tinycnn``, ``descriptors``).

:func:`build_encoder` builds an encoder on an input tensor and returns tap tensors by name
(``"P3"``, a layer name, or ``"input"``), padded where needed: Xception's valid
convolutions make its stride-2 and stride-4 maps a few pixels short (317 and 159 at 640), so
they are zero-padded on the top and left to exactly ``H / stride`` x ``W / stride``, for any
input whose sides are multiples of 32.

Only ``keras`` and ``keras.ops`` are used, so the encoders run under any Keras backend.
"""

from __future__ import annotations

import dataclasses
import inspect
import os
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Literal, get_args

import keras
from keras import ops

from mammo_common.keras.networks import weights as _weights
from mammo_common.keras.networks.weights import ImageNetFiles

__all__ = [
    "ENCODERS",
    "INPUT_TAP",
    "LEVELS",
    "PREPROCESSING_MODES",
    "Encoder",
    "ImageNetFiles",
    "PreprocessMode",
    "application_encoder",
    "build_encoder",
    "check_input_shape",
    "encoder_key",
    "get_encoder",
    "get_encoder_spec",
    "list_encoders",
    "pad_to_stride",
    "preprocess_images",
    "register_encoder",
]

#: Tap name that stands for the encoder input tensor itself (stride 1).
INPUT_TAP = "input"

#: Feature pyramid level names; ``LEVELS[k - 1]`` (``"Pk"``) has stride ``2**k``.
LEVELS: tuple[str, ...] = ("P1", "P2", "P3", "P4", "P5")

PreprocessMode = Literal["caffe", "tf", "torch", "none"]
#: The preprocessing modes of :func:`preprocess_images`.
PREPROCESSING_MODES: tuple[str, ...] = get_args(PreprocessMode)

_CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)
_TORCH_MEAN = (0.485, 0.456, 0.406)
_TORCH_STD = (0.229, 0.224, 0.225)


def preprocess_images(x: Any, mode: str, dtype: str = "float32") -> Any:
    """Map images in [0, 1] to an encoder's expected input, as its ``preprocess_input`` does.

    Modes (``x`` is the input in [0, 1]; ``preprocess_input`` takes ``255 x``):

    * ``"caffe"`` (VGG, ResNet v1): ``255 x``, RGB -> BGR, ImageNet BGR means subtracted.
    * ``"tf"`` (ResNet v2, Inception, Xception, MobileNet v1/v2, NASNet): ``2 x - 1``.
    * ``"torch"`` (DenseNet): ImageNet mean/std normalisation of ``x``.
    * ``"none"`` (EfficientNet, MobileNet v3, ConvNeXt: they rescale inside): ``255 x``.

    Args:
        x: Tensor ``(..., 3)`` already of ``dtype``.
        mode: One of :data:`PREPROCESSING_MODES`.
        dtype: Dtype of the constants.

    Returns:
        The preprocessed tensor.

    Raises:
        ValueError: Unknown mode.
    """
    if mode == "tf":
        return x * 2.0 - 1.0
    if mode == "none":
        return x * 255.0
    if mode == "torch":
        mean = ops.convert_to_tensor(_TORCH_MEAN, dtype=dtype)
        std = ops.convert_to_tensor(_TORCH_STD, dtype=dtype)
        return (x - mean) / std
    if mode == "caffe":
        x = ops.flip(x * 255.0, axis=-1)
        return x - ops.convert_to_tensor(_CAFFE_MEAN_BGR, dtype=dtype)
    raise ValueError(f"unknown preprocessing mode {mode!r}; use caffe, tf, torch or none")


def encoder_key(name: str) -> str:
    """Registry key of ``name``: lower case, letters and digits only (``ResNet50-V2``)."""
    return "".join(ch for ch in str(name).lower() if ch.isalnum())


@dataclasses.dataclass(frozen=True)
class Encoder:
    """One registered encoder (network body without its classification top).

    Attributes:
        name: Registry name (lower case, letters and digits; :func:`encoder_key`).
        builder: ``fn(input_shape=None, weights="auto", *, input_tensor=None, **options)``
            returning the model. Builders of encoders with taps must accept
            ``input_tensor``; others may take ``(input_shape, weights, **options)`` only.
        taps: ``(layer name, stride)`` pairs, finest first. Strides are relative to the
            input; a tap may be a few pixels smaller than ``input / stride`` (valid
            padding) and is then padded by :func:`pad_to_stride`.
        levels: Layer names of ``P1``..``P5`` (strides 2..32), each among ``taps`` at its
            stride; empty for an encoder that only serves as a classification backbone.
        preprocessing: How [0, 1] images map to its input (:func:`preprocess_images`).
        input_multiple: The input height and width must be multiples of this.
        channels: Number of input channels the ImageNet weights expect.
        imagenet: Its ImageNet weight files, when registered (looked up in the Keras cache
            by ``weights="auto"``), else None.
        pretrained: Whether ImageNet weights exist for it.
        source: ``"keras.applications.<Constructor>"`` or the package that registered it.
        description: One line for listings (``massclass models``).
    """

    name: str
    builder: Callable[..., keras.Model]
    taps: tuple[tuple[str, int], ...] = ()
    levels: tuple[str, ...] = ()
    preprocessing: PreprocessMode = "tf"
    input_multiple: int = 32
    channels: int = 3
    imagenet: ImageNetFiles | None = None
    pretrained: bool = False
    source: str = "custom"
    description: str = ""

    def __post_init__(self) -> None:
        if self.preprocessing not in PREPROCESSING_MODES:
            raise ValueError(
                f"encoder {self.name!r}: unknown preprocessing {self.preprocessing!r}; use "
                f"one of {', '.join(PREPROCESSING_MODES)}"
            )
        if self.levels:
            if len(self.levels) != len(LEVELS):
                raise ValueError(
                    f"encoder {self.name!r}: levels names {len(LEVELS)} layers (P1..P5), "
                    f"got {list(self.levels)}"
                )
            taps = dict(self.taps)
            for level, layer in zip(LEVELS, self.levels, strict=True):
                if taps.get(layer) != level_stride(level):
                    raise ValueError(
                        f"encoder {self.name!r}: {level} must be a tap of stride "
                        f"{level_stride(level)}; {layer!r} is {taps.get(layer, 'not a tap')}"
                    )

    @property
    def preprocess(self) -> str:
        """Alias of :attr:`preprocessing` (the name massclass's backbones used)."""
        return self.preprocessing

    @property
    def pyramid(self) -> dict[str, str]:
        """``{"P1": layer, ..., "P5": layer}``; empty without levels."""
        return dict(zip(LEVELS, self.levels, strict=True)) if self.levels else {}

    @property
    def strides(self) -> dict[str, int]:
        """Map of tap name (``"input"``, layer names, ``P1``..``P5``) to stride."""
        levels = {level: level_stride(level) for level in self.pyramid}
        return {INPUT_TAP: 1, **dict(self.taps), **levels}

    def taps_at(self, stride: int) -> list[str]:
        """Return the tap layer names at ``stride``."""
        return [layer for layer, s in self.taps if s == stride]

    def layer_of(self, tap: str) -> str:
        """Layer name of tap ``tap`` (``P1``..``P5`` resolve to their layer).

        Raises:
            ValueError: If ``tap`` is not a tap of this encoder.
        """
        if tap in self.pyramid:
            return self.pyramid[tap]
        if tap == INPUT_TAP or tap in dict(self.taps):
            return tap
        raise ValueError(
            f"Unknown taps [{tap!r}] for encoder {self.name!r}; valid taps: "
            f"{', '.join(self.strides)}."
        )

    def resolve_weights(
        self, weights: str | os.PathLike | None = "auto", *, include_top: bool = False
    ) -> str | None:
        """Resolve a weights request for this encoder.

        See :func:`mammo_common.keras.networks.weights.resolve`.

        An encoder without pretrained weights resolves ``"auto"`` to None silently.
        """
        if not self.pretrained and (
            weights is None or (isinstance(weights, str) and weights.strip().lower() == "auto")
        ):
            return None
        return _weights.resolve(
            self.name, weights, files=self.imagenet, include_top=include_top
        )

    def build(
        self,
        input_shape: Sequence[int | None] | None = None,
        weights: str | os.PathLike | None = "auto",
        **options: Any,
    ) -> keras.Model:
        """Build the encoder model: ``builder(input_shape, weights, **options)``."""
        return self.builder(input_shape, weights, **options)


def level_stride(level: str) -> int:
    """Stride of pyramid level ``"Pk"``: ``2**k``."""
    return 2 ** (LEVELS.index(level) + 1)


ENCODERS: dict[str, Encoder] = {}
_APPLICATIONS_SCANNED = False


def register_encoder(spec: Encoder, *, overwrite: bool = False) -> Encoder:
    """Add ``spec`` to :data:`ENCODERS` under :func:`encoder_key` of its name and return it.

    Raises:
        ValueError: If the name is taken and ``overwrite`` is False.
    """
    key = encoder_key(spec.name)
    if key != spec.name:
        spec = dataclasses.replace(spec, name=key)
    if key in ENCODERS and not overwrite:
        raise ValueError(f"Encoder {key!r} is already registered.")
    ENCODERS[key] = spec
    return spec


def _application_builder(name: str, constructor_name: str,
                         files: ImageNetFiles | None) -> Callable[..., keras.Model]:
    """Builder of ``keras.applications.<constructor_name>`` with offline-first weights."""

    def build(
        input_shape: Sequence[int | None] | None = None,
        weights: str | os.PathLike | None = "auto",
        *,
        input_tensor: Any = None,
        include_top: bool = False,
        **options: Any,
    ) -> keras.Model:
        resolved = _weights.resolve(name, weights, files=files, include_top=include_top)
        if resolved == "imagenet" and files is not None:
            # A local file path loads exactly like "imagenet" in keras.applications and
            # avoids Keras looking in another cache folder than the one checked here.
            resolved = _weights.obtain_imagenet_file(name, files, include_top)
        shape = None if input_shape is None else tuple(input_shape)
        constructor = getattr(keras.applications, constructor_name)
        try:
            return constructor(
                include_top=include_top,
                weights=resolved,
                input_tensor=input_tensor,
                input_shape=shape,
                **options,
            )
        except ValueError as exc:
            at = shape if shape is not None else tuple(getattr(input_tensor, "shape", ())[1:])
            raise ValueError(
                f"encoder {name!r} (keras.applications.{constructor_name}) cannot be built "
                f"at input shape {at}: {exc}"
            ) from None

    build.__name__ = f"build_{name}"
    return build


def application_encoder(
    constructor_name: str,
    *,
    preprocessing: PreprocessMode,
    taps: tuple[tuple[str, int], ...] = (),
    levels: tuple[str, ...] = (),
    imagenet: ImageNetFiles | None = None,
    input_multiple: int = 32,
) -> Encoder:
    """The :class:`Encoder` of ``keras.applications.<constructor_name>`` (not registered)."""
    name = encoder_key(constructor_name)
    return Encoder(
        name=name,
        builder=_application_builder(name, constructor_name, imagenet),
        taps=taps,
        levels=levels,
        preprocessing=preprocessing,
        input_multiple=input_multiple,
        imagenet=imagenet,
        pretrained=True,
        source=f"keras.applications.{constructor_name}",
        description=f"keras.applications.{constructor_name} (ImageNet weights available)",
    )


def _files(stem: str, url_dir: str, top_hash: str, notop_hash: str) -> ImageNetFiles:
    return ImageNetFiles(stem=stem, url_dir=url_dir, top_hash=top_hash, notop_hash=notop_hash)


register_encoder(
    application_encoder(
        "Xception",
        preprocessing="tf",
        taps=(
            ("block2_sepconv2_bn", 2),
            ("block3_sepconv2_bn", 4),
            ("block4_sepconv2_bn", 8),
            ("block13_sepconv2_bn", 16),
            ("block14_sepconv2_act", 32),
        ),
        levels=(
            "block2_sepconv2_bn",
            "block3_sepconv2_bn",
            "block4_sepconv2_bn",
            "block13_sepconv2_bn",
            "block14_sepconv2_act",
        ),
        imagenet=_files(
            "xception",
            "xception",
            "0a58e3b7378bc2990ea3b43d5981f1f6",
            "b0042744bf5b25fce3cb969f33bebb97",
        ),
    )
)
register_encoder(
    application_encoder(
        "VGG16",
        preprocessing="caffe",
        taps=(
            ("block1_conv2", 1),
            ("block2_conv2", 2),
            ("block3_conv3", 4),
            ("block4_conv3", 8),
            ("block5_conv3", 16),
            ("block5_pool", 32),
        ),
        levels=("block2_conv2", "block3_conv3", "block4_conv3", "block5_conv3", "block5_pool"),
        imagenet=_files(
            "vgg16",
            "vgg16",
            "64373286793e3c8b2b4e3219cbf3544b",
            "6d6bbae143d832006294945121d1f1fc",
        ),
    )
)
register_encoder(
    application_encoder(
        "ResNet50",
        preprocessing="caffe",
        taps=(
            ("conv1_relu", 2),
            ("conv2_block2_out", 4),
            ("conv2_block3_out", 4),
            ("conv3_block4_out", 8),
            ("conv4_block6_out", 16),
            ("conv5_block3_out", 32),
        ),
        levels=(
            "conv1_relu",
            "conv2_block3_out",
            "conv3_block4_out",
            "conv4_block6_out",
            "conv5_block3_out",
        ),
        imagenet=_files(
            "resnet50",
            "resnet",
            "2cb95161c43110f7111970584f804107",
            "4d473c1dd8becc155b73f8504c6f6626",
        ),
    )
)
register_encoder(
    application_encoder(
        "ResNet50V2",
        preprocessing="tf",
        imagenet=_files(
            "resnet50v2",
            "resnet",
            "3ef43a0b657b3be2300d5770ece849e0",
            "fac2f116257151a9d068a22e544a4917",
        ),
    )
)
register_encoder(
    application_encoder(
        "InceptionV3",
        preprocessing="tf",
        imagenet=_files(
            "inception_v3",
            "inception_v3",
            "9a0d58056eeedaa3f26cb7ebd46da564",
            "bcbd6486424b2319ff4ef7d526e38f63",
        ),
    )
)

#: keras.applications module -> how its ``preprocess_input`` scales [0, 255] RGB; the
#: constructors of other modules are not registered.
_MODULE_PREPROCESSING: dict[str, PreprocessMode] = {
    "vgg16": "caffe",
    "vgg19": "caffe",
    "resnet": "caffe",
    "resnet_v2": "tf",
    "inception_v3": "tf",
    "inception_resnet_v2": "tf",
    "xception": "tf",
    "mobilenet": "tf",
    "mobilenet_v2": "tf",
    "nasnet": "tf",
    "densenet": "torch",
    "mobilenet_v3": "none",
    "efficientnet": "none",
    "efficientnet_v2": "none",
    "convnext": "none",
}


def _scan_applications() -> None:
    """Register every ``keras.applications`` constructor not registered yet (once)."""
    global _APPLICATIONS_SCANNED
    if _APPLICATIONS_SCANNED:
        return
    _APPLICATIONS_SCANNED = True
    for attr in dir(keras.applications):
        obj = getattr(keras.applications, attr)
        if not (inspect.isfunction(obj) and attr[:1].isupper()):
            continue
        mode = _MODULE_PREPROCESSING.get(obj.__module__.rsplit(".", 1)[-1])
        if mode is None or encoder_key(attr) in ENCODERS:
            continue
        register_encoder(application_encoder(attr, preprocessing=mode))


def list_encoders(*, pyramid: bool = False) -> list[Encoder]:
    """All registered encoders by name (``pyramid``: only those with ``P1``..``P5`` taps)."""
    if not pyramid:
        _scan_applications()
    return [ENCODERS[k] for k in sorted(ENCODERS) if ENCODERS[k].levels or not pyramid]


def get_encoder(name: str, *, pyramid: bool = False) -> Encoder:
    """Return the registered encoder ``name`` (case- and separator-insensitive).

    Args:
        name: Encoder name (``"xception"``, ``"ResNet50-V2"``, ``"efficientnetb0"``...).
        pyramid: Require skip taps ``P1``..``P5`` (a segmentation encoder).

    Raises:
        ValueError: If unknown (or without taps when ``pyramid``); the message lists the
            valid names.
    """
    key = encoder_key(name)
    if key not in ENCODERS:
        _scan_applications()
    spec = ENCODERS.get(key)
    if spec is None or (pyramid and not spec.levels):
        valid = ", ".join(e.name for e in list_encoders(pyramid=pyramid))
        what = "Unknown encoder" if spec is None else "No skip taps registered for encoder"
        raise ValueError(f"{what} {name!r}; valid encoders: {valid}.")
    return spec


def get_encoder_spec(name: str) -> Encoder:
    """Return the segmentation encoder ``name``: :func:`get_encoder` with ``pyramid=True``."""
    return get_encoder(name, pyramid=True)


def check_input_shape(
    input_shape: Sequence[int | None], *, multiple: int = 32, channels: int | None = None
) -> tuple[int, int, int]:
    """Validate an ``(H, W, C)`` input shape for an encoder network.

    Args:
        input_shape: Shape without the batch axis.
        multiple: Height and width must be positive multiples of this.
        channels: Required channel count, or None for any.

    Returns:
        The shape as a tuple of ints.

    Raises:
        ValueError: If the shape is malformed, not a multiple, or has the wrong channels.
    """
    shape = tuple(input_shape)
    if len(shape) != 3 or any(d is None for d in shape):
        raise ValueError(
            f"input_shape must be a concrete (height, width, channels); got {input_shape!r}."
        )
    h, w, c = (int(d) for d in shape)
    if h <= 0 or w <= 0 or h % multiple or w % multiple:
        raise ValueError(
            f"Input height and width must be positive multiples of {multiple}; got {h}x{w}. "
            f"Pad or resize the image (e.g. to {max(multiple, -(-h // multiple) * multiple)}x"
            f"{max(multiple, -(-w // multiple) * multiple)})."
        )
    if channels is not None and c != channels:
        raise ValueError(f"This network expects {channels} input channels; got {c}.")
    return h, w, c


def pad_to_stride(
    tensor: Any, input_hw: tuple[int, int], stride: int, *, name: str | None = None
) -> Any:
    """Zero-pad a feature map on the top and left to ``(H // stride, W // stride)``.

    Args:
        tensor: Symbolic ``(batch, h, w, c)`` Keras tensor.
        input_hw: Height and width of the network input.
        stride: Stride of the map relative to the input.
        name: Name of the padding layer (only created when padding is needed).

    Returns:
        ``tensor`` unchanged when it has the target size, else the padded tensor.

    Raises:
        ValueError: If the map is larger than the target, or not statically shaped.
    """
    target_h, target_w = input_hw[0] // stride, input_hw[1] // stride
    h, w = tensor.shape[1], tensor.shape[2]
    if h is None or w is None:
        raise ValueError(f"Cannot pad a map of unknown spatial size {tensor.shape}.")
    dh, dw = target_h - h, target_w - w
    if dh < 0 or dw < 0:
        raise ValueError(
            f"Feature map {h}x{w} is larger than the stride-{stride} target "
            f"{target_h}x{target_w} of a {input_hw[0]}x{input_hw[1]} input."
        )
    if dh == 0 and dw == 0:
        return tensor
    return keras.layers.ZeroPadding2D(padding=((dh, 0), (dw, 0)), name=name)(tensor)


def build_encoder(
    name: str,
    inputs: Any,
    *,
    taps: Iterable[str] | None = None,
    weights: str | os.PathLike | None = "auto",
    pad: bool = True,
) -> tuple[keras.Model, dict[str, Any]]:
    """Build segmentation encoder ``name`` on ``inputs`` and return its tap tensors.

    Args:
        name: Registered encoder name with taps (see :func:`list_encoders`).
        inputs: A ``keras.Input`` tensor ``(batch, H, W, C)`` with static H and W that are
            multiples of the encoder's ``input_multiple``.
        taps: Taps to return: ``"P1"``..``"P5"``, layer names of the encoder's taps, or
            ``"input"`` for the input tensor itself; default: ``"input"`` and every layer
            tap.
        weights: ``None``, ``"imagenet"``, ``"auto"`` or a weight file path, see
            :func:`mammo_common.keras.networks.weights.resolve`.
        pad: Zero-pad taps on the top/left to ``H / stride`` (padding layers are named
            ``"<layer>_pad"``).

    Returns:
        ``(encoder model, {tap: tensor})`` keyed by the names asked for; the tensors are
        connected to ``inputs`` so they can feed a functional model built on ``inputs``.

    Raises:
        ValueError: Unknown encoder or tap, or an invalid input shape.
    """
    spec = get_encoder_spec(name)
    h, w, _ = check_input_shape(tuple(inputs.shape[1:]), multiple=spec.input_multiple)
    strides = spec.strides
    wanted = [INPUT_TAP, *dict(spec.taps)] if taps is None else list(taps)
    unknown = [t for t in wanted if t not in strides]
    if unknown:
        raise ValueError(
            f"Unknown taps {unknown} for encoder {spec.name!r}; valid taps: {', '.join(strides)}."
        )
    model = spec.builder(None, weights, input_tensor=inputs)
    by_layer: dict[str, Any] = {}
    features: dict[str, Any] = {}
    for tap in wanted:
        layer = spec.layer_of(tap)
        if layer not in by_layer:
            tensor = inputs if layer == INPUT_TAP else model.get_layer(layer).output
            if pad:
                tensor = pad_to_stride(tensor, (h, w), strides[layer], name=f"{layer}_pad")
            by_layer[layer] = tensor
        features[tap] = by_layer[layer]
    return model, features
