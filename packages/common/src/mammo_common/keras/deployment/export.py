"""Export a model folder as a TensorFlow SavedModel that takes the *raw* image.

The exported serving functions hold the stage's whole preprocessing, in TensorFlow ops, so a
server needs neither mammo nor NumPy/scikit-image to use the model:

* **segmentation** (breastseg, massseg), :func:`export_segmentation`: a batch of gray images
  ``(b, h, w)`` of any size -> scaled to [0, 1] by dtype (uint16 / 65535, uint8 / 255, float
  as is: :func:`mammo_common.keras.training.data.normalize_image`) -> resized to the model input
  exactly as :func:`mammo_common.transforms.resize` does (Gaussian anti-aliasing with scikit-image's
  sigma ``(factor - 1) / 2`` on axes that shrink, then bilinear with pixel-centre alignment
  and edge clamping) -> gray repeated for 3-channel models -> the network -> the sigmoid map
  resized back (bilinear) to ``(h, w)`` and clipped to [0, 1]. Returns ``{"probabilities":
  (b, h, w) float32}``: what
  :func:`mammo_common.keras.deployment.inference.predict_probabilities` gives.
* **classification** (massclass), :func:`export_classifier`: a batch of gray ROI crops
  ``(b, h, w)`` -> scaled by dtype -> resized to the model input with anti-aliased bilinear
  (Pillow's ``BILINEAR``, which ``massclass.rois`` uses) -> clipped to [0, 1] -> repeated to
  3 channels -> the network (its backbone preprocessing is inside it). Returns
  ``{"probability": (b,) float32}``, the malignancy probability.

Each export has three endpoints, one per input dtype: ``serve`` (uint16, the dtype of the
stores; also the ``serving_default`` signature), ``serve_uint8`` and ``serve_float32`` (values
already in [0, 1])::

    loaded = tf.saved_model.load("export/")
    probs = loaded.serve(tf.constant(image_uint16[None]))["probabilities"]

Only the TensorFlow backend can export (SavedModel is a TensorFlow format); other backends
get a :class:`~mammo_common.errors.ConfigError`.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any, Literal

from mammo_common.errors import ConfigError, MammoError
from mammo_common.store.atomic import atomic_path

__all__ = [
    "EXPORT_INFO",
    "SIGNATURES",
    "export_classifier",
    "export_model_folder",
    "export_onnx",
    "export_segmentation",
]

#: File written next to the SavedModel describing its inputs and outputs.
EXPORT_INFO = "mammo_export.json"
#: Endpoint name -> input dtype (``serve`` is also exported as ``serving_default``).
SIGNATURES: dict[str, str] = {
    "serve": "uint16",
    "serve_uint8": "uint8",
    "serve_float32": "float32",
}

Task = Literal["segmentation", "classification"]
Format = Literal["savedmodel", "onnx"]


def _require_tensorflow() -> Any:
    import keras

    if keras.backend.backend() != "tensorflow":
        raise ConfigError(
            f"exporting a SavedModel needs the TensorFlow backend, not {keras.backend.backend()!r}",
            field="KERAS_BACKEND",
            fix="run with KERAS_BACKEND=tensorflow (the model file itself is backend-portable)",
        )
    import tensorflow as tf

    return tf


# --------------------------------------------------------------------------- TF preprocessing


def _scale(tf: Any, images: Any) -> Any:
    """Raw images -> float32 in [0, 1] by dtype, as ``normalize_image``."""
    if images.dtype == tf.uint16:
        return tf.cast(images, tf.float32) / 65535.0
    if images.dtype == tf.uint8:
        return tf.cast(images, tf.float32) / 255.0
    return tf.cast(images, tf.float32)


def _gaussian_axis(tf: Any, x: Any, sigma: Any, axis: int) -> Any:
    """``scipy.ndimage.gaussian_filter1d(x, sigma, axis, mode="nearest", truncate=4)``.

    ``x`` is ``(b, h, w, c)``, ``axis`` 1 or 2; ``sigma`` a float32 scalar tensor > 0.
    """
    radius = tf.cast(tf.floor(4.0 * tf.cast(sigma, tf.float64) + 0.5), tf.int32)
    taps = tf.cast(tf.range(-radius, radius + 1), tf.float64)
    sd = tf.cast(sigma, tf.float64)
    weights = tf.exp(-0.5 * tf.square(taps / sd))
    weights = tf.cast(weights / tf.reduce_sum(weights), tf.float32)
    n = tf.shape(x)[axis]
    index = tf.clip_by_value(tf.range(-radius, n + radius), 0, n - 1)
    padded = tf.gather(x, index, axis=axis)
    channels = tf.shape(x)[3]
    # depthwise correlation along one axis, VALID: the output has the input's size again
    kernel = tf.reshape(weights, [-1, 1, 1, 1] if axis == 1 else [1, -1, 1, 1])
    kernel = tf.tile(kernel, [1, 1, channels, 1])
    return tf.nn.depthwise_conv2d(padded, kernel, strides=[1, 1, 1, 1], padding="VALID")


def resize_like_skimage(tf: Any, x: Any, size: tuple[int, int]) -> Any:
    """``mammo_common.transforms.resize(order=1)`` of each channel, in TensorFlow.

    Gaussian pre-smoothing with sigma ``max(0, (in / out - 1) / 2)`` on each axis that shrinks
    (mode ``nearest``, truncated at 4 sigma), then bilinear resampling with pixel-centre
    alignment (``half_pixel_centers``) and edge clamping.

    Args:
        tf: The ``tensorflow`` module.
        x: ``(b, h, w, c)`` float32.
        size: Target ``(rows, cols)``.
    """
    shape = tf.shape(x)
    for axis, target in ((1, size[0]), (2, size[1])):
        factor = tf.cast(shape[axis], tf.float32) / float(target)
        sigma = tf.maximum(0.0, (factor - 1.0) / 2.0)
        x = tf.cond(
            sigma > 0.0,
            lambda x=x, sigma=sigma, axis=axis: _gaussian_axis(tf, x, sigma, axis),
            lambda x=x: tf.identity(x),
        )
    return tf.image.resize(x, size, method="bilinear", antialias=False)


def _repeat_channels(tf: Any, x: Any, channels: int) -> Any:
    return tf.repeat(x, channels, axis=-1) if channels != 1 else x


# --------------------------------------------------------------------------- exports


def _model_geometry(model: Any) -> tuple[int, int, int]:
    from mammo_common.keras.deployment.inference import model_input_size

    return model_input_size(model)


def _write(archive: Any, out: Path, info: dict[str, Any], overwrite: bool) -> Path:
    if out.exists() and not overwrite:
        raise MammoError(
            "the export folder exists", path=out, fix="choose another --out or pass --overwrite"
        )
    with atomic_path(out) as tmp:
        archive.write_out(str(tmp), verbose=False)
        (tmp / EXPORT_INFO).write_text(json.dumps(info, indent=1) + "\n", encoding="utf-8")
    return out


def _archive(model: Any, serve: Any) -> Any:
    """An ``ExportArchive`` with the three dtype signatures of ``serve``."""
    tf = _require_tensorflow()
    from keras.export import ExportArchive

    archive = ExportArchive()
    archive.track(model)
    for name, dtype in SIGNATURES.items():
        spec = tf.TensorSpec([None, None, None], getattr(tf, dtype), name="images")
        fn = tf.function(serve, input_signature=[spec], autograph=False)
        archive.add_endpoint(name, fn)  # the first one added is also serving_default
    return archive


def _segmentation_fn(model: Any, size: tuple[int, int], channels: int) -> Any:
    tf = _require_tensorflow()

    def serve(images):
        x = _scale(tf, images)[..., None]
        rows, cols = tf.shape(x)[1], tf.shape(x)[2]
        x = _repeat_channels(tf, resize_like_skimage(tf, x, size), channels)
        prob = tf.cast(model(x, training=False), tf.float32)[..., :1]
        back = tf.image.resize(prob, tf.stack([rows, cols]), method="bilinear")
        return {"probabilities": tf.clip_by_value(back[..., 0], 0.0, 1.0)}

    return serve


def _classifier_fn(model: Any, size: tuple[int, int], channels: int) -> Any:
    tf = _require_tensorflow()

    def serve(images):
        x = _scale(tf, images)[..., None]
        x = tf.image.resize(x, size, method="bilinear", antialias=True)
        x = _repeat_channels(tf, tf.clip_by_value(x, 0.0, 1.0), channels)
        prob = tf.cast(model(x, training=False), tf.float32)
        return {"probability": tf.reshape(prob, [-1])}

    return serve


def export_segmentation(
    model: Any, out: str | Path, *, info: dict[str, Any] | None = None, overwrite: bool = False
) -> Path:
    """Export a segmentation network with its preprocessing (see the module docs).

    Args:
        model: A Keras model with a fixed input ``(H, W, C)`` and a sigmoid output channel.
        out: The SavedModel folder (written atomically).
        info: Extra fields for ``mammo_export.json`` (model id, threshold...).
        overwrite: Replace an existing folder.

    Returns:
        ``out``.
    """
    rows, cols, channels = _model_geometry(model)
    archive = _archive(model, _segmentation_fn(model, (rows, cols), channels))
    meta = {
        "task": "segmentation",
        "input": "images (batch, rows, cols) gray, any size; uint16, uint8 or float32 in [0, 1]",
        "output": "probabilities (batch, rows, cols) float32 in [0, 1] at the input size",
        "model_input_shape": [rows, cols, channels],
        "preprocessing": "divide by dtype max; gaussian anti-aliasing + bilinear resize "
        "(scikit-image rules); gray repeated to the model's channels",
        "signatures": SIGNATURES,
        **(info or {}),
    }
    return _write(archive, Path(out), meta, overwrite)


def export_classifier(
    model: Any, out: str | Path, *, info: dict[str, Any] | None = None, overwrite: bool = False
) -> Path:
    """Export a mass classifier with its preprocessing (see the module docs)."""
    rows, cols, channels = _model_geometry(model)
    archive = _archive(model, _classifier_fn(model, (rows, cols), channels))
    meta = {
        "task": "classification",
        "input": "images (batch, rows, cols): gray ROI crops, any size; uint16, uint8 or "
        "float32 in [0, 1]",
        "output": "probability (batch,) float32: malignancy",
        "model_input_shape": [rows, cols, channels],
        "preprocessing": "divide by dtype max; anti-aliased bilinear resize (Pillow BILINEAR); "
        "clip to [0, 1]; gray repeated to 3 channels",
        "signatures": SIGNATURES,
        **(info or {}),
    }
    return _write(archive, Path(out), meta, overwrite)


def export_onnx(saved_model: str | Path, out: str | Path, *, opset: int = 17) -> Path:
    """Convert an exported SavedModel's ``serving_default`` (uint16 input) to ONNX.

    Uses ``tf2onnx`` (1.17 converts TF 2.21 / Keras 3 SavedModels, Gaussian anti-aliasing and
    dynamic shapes included; onnxruntime agrees with TensorFlow to ~1e-6). Only the
    ``serving_default`` endpoint is converted: the ONNX model takes uint16 images.

    Raises:
        ConfigError: If ``tf2onnx`` is not installed or cannot convert.
    """
    try:
        import tf2onnx  # noqa: F401
    except ImportError:
        raise ConfigError(
            "ONNX export needs tf2onnx, which is not installed",
            field="--format",
            fix="pip install 'mammo-common[onnx]' (tf2onnx, onnx, onnxruntime), or use "
            "--format savedmodel and convert later: python -m tf2onnx.convert --saved-model "
            "DIR --output model.onnx",
        ) from None
    import subprocess
    import sys

    out = Path(out)
    cmd = [sys.executable, "-m", "tf2onnx.convert", "--saved-model", str(saved_model),
           "--output", str(out), "--opset", str(opset)]
    problem = ""
    for _attempt in range(3):
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if done.returncode != 0 or not out.is_file():
            raise ConfigError(
                f"tf2onnx could not convert the SavedModel: {done.stderr.strip()[-400:]}",
                path=saved_model,
                fix="use --format savedmodel (see docs/export.md)",
            )
        problem = verify_onnx(saved_model, out)
        if not problem:
            return out
    out.unlink(missing_ok=True)
    raise ConfigError(
        f"tf2onnx produced a model that disagrees with the SavedModel ({problem}) in 3 tries",
        path=saved_model,
        fix="use the SavedModel (--format savedmodel); see docs/export.md on ONNX",
    )


def verify_onnx(saved_model: str | Path, onnx_path: str | Path, *, atol: float = 1e-4) -> str:
    """Compare an ONNX conversion with its SavedModel on a probe batch; '' when they agree.

    tf2onnx 1.17 occasionally mis-infers the batch dimension of the resize back to the input
    size (seen: a (37, 45, 37) output for a (2, 45, 37) input), so every conversion is checked
    before it is kept. Without onnxruntime nothing can be checked and '' is returned.
    """
    try:
        import onnxruntime as ort
    except ImportError:
        return ""
    import numpy as np
    import tensorflow as tf

    images = np.random.default_rng(0).integers(0, 65535, (2, 45, 37), dtype=np.uint16)
    loaded = tf.saved_model.load(str(saved_model))
    want = loaded.serve(tf.constant(images))
    want = (next(iter(want.values())) if isinstance(want, dict) else want).numpy()
    session = ort.InferenceSession(str(onnx_path))
    got = session.run(None, {session.get_inputs()[0].name: images})[0]
    if got.shape != want.shape:
        return f"output shape {got.shape} instead of {want.shape}"
    err = float(np.max(np.abs(got - want)))
    return "" if err <= atol else f"max difference {err:.2e}"


def export_model_folder(
    folder: str | Path,
    out: str | Path,
    *,
    expected_stage: str,
    task: Task,
    known_architectures: Any = None,
    format: Format = "savedmodel",
    overwrite: bool = False,
) -> Path:
    """Load a model folder safely and export it (``<stage> export``).

    Args:
        folder: The model folder.
        out: The export folder (SavedModel; with ``format="onnx"`` also ``model.onnx`` in it).
        expected_stage: Refuse models of other stages.
        task: ``segmentation`` or ``classification``.
        known_architectures: The stage's registry (refuse unknown architectures).
        format: ``savedmodel`` or ``onnx`` (SavedModel plus its ONNX conversion).
        overwrite: Replace an existing export folder.

    Returns:
        The export folder.
    """
    if format not in ("savedmodel", "onnx"):
        raise ConfigError(f"unknown format {format!r}", field="--format",
                          fix="use savedmodel or onnx")
    _require_tensorflow()
    from mammo_common.keras.deployment.model_folder import load_model_folder
    from mammo_common.keras.deployment.optimize import inference_model

    model, card = load_model_folder(
        folder, expected_stage=expected_stage, known_architectures=known_architectures
    )
    # the exported graph is for prediction: BatchNorms folded into the convolutions
    model, folding = inference_model(model)
    info = {
        "model_id": card.model_id,
        "stage": card.stage,
        "architecture": card.architecture,
        "package": card.package,
        "package_version": card.package_version,
        "threshold": card.threshold,
        "normalization": card.normalization,
        "source_folder": str(folder),
        "batchnorms_folded": len(folding.folded),
    }
    out = Path(out)
    if task == "segmentation":
        export_segmentation(model, out, info=info, overwrite=overwrite)
    else:
        export_classifier(model, out, info=info, overwrite=overwrite)
    if format == "onnx":
        try:
            export_onnx(out, out / "model.onnx")
        except ConfigError:
            shutil.rmtree(out, ignore_errors=True)
            raise
    return out
