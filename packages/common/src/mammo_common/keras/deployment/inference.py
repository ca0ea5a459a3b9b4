"""Probability maps from one model or an ensemble, at the images' own size.

Shared by breast segmentation (one model on native mammograms) and mass segmentation (fold
ensembles on 640x640 breast images)::

    probs = predict_probabilities([model], images, input_size=(1024, 768))
    probs = predict_probabilities(fold_models, images, channels=3, tta_flips=True)

Each image is prepared exactly as the training data pipeline prepares it
(:func:`mammo_common.keras.training.data.prepare_image`: scaled by its dtype to [0, 1], bilinear
resize to the model input, gray repeated for 3-channel models), run through every model (and, with
``tta_flips``, through its left-right and up-down flips, un-flipped afterwards); the maps are
averaged and resized back (bilinear) to each image's own size.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

from mammo_common.keras.training.data import normalize_image, prepare_image
from mammo_common.transforms import resize

__all__ = ["model_input_size", "normalize_image", "predict_probabilities"]


def model_input_size(model) -> tuple[int, int, int]:
    """``(rows, cols, channels)`` of a model's (single) image input.

    Raises:
        ValueError: If the model's spatial size is not fixed.
    """
    shape = model.input_shape
    if isinstance(shape, list):
        shape = shape[0]
    rows, cols, channels = shape[1], shape[2], shape[3]
    if rows is None or cols is None:
        raise ValueError(
            f"model {model.name!r} has no fixed input size {tuple(shape[1:])}; pass input_size"
        )
    return int(rows), int(cols), int(channels)


def _flips(tta: bool) -> list[tuple[int, ...]]:
    # axes to flip in a (batch, rows, cols, channels) array; () = identity
    return [(), (2,), (1,)] if tta else [()]


def predict_probabilities(
    models: Sequence,
    images: NDArray | Sequence[NDArray],
    *,
    input_size: tuple[int, int] | None = None,
    channels: int | None = None,
    tta_flips: bool = False,
    batch_size: int = 4,
) -> NDArray[np.float32]:
    """Average sigmoid maps of an ensemble over images, at the images' own size.

    Args:
        models: One or more Keras models with one sigmoid output channel and the same input.
        images: ``(b, H, W)`` array of raw images (uint8, uint16 or float), or a sequence of
            2-D images of any sizes.
        input_size: Model input ``(rows, cols)``; by default the first model's.
        channels: 1 or 3 (gray repeated); by default the first model's.
        tta_flips: Also predict the left-right and up-down flips and average (un-flipped).
        batch_size: Images per forward pass.

    Returns:
        ``(b, H, W)`` float32 in [0, 1] (a list-like input of mixed sizes returns a list of
        2-D arrays).

    Raises:
        ValueError: On no models, a non-2-D image or an invalid size.
    """
    if not models:
        raise ValueError("predict_probabilities needs at least one model")
    rows, cols, model_channels = (None, None, None)
    try:
        rows, cols, model_channels = model_input_size(models[0])
    except ValueError:
        if input_size is None:
            raise
    size = (int(input_size[0]), int(input_size[1])) if input_size is not None else (rows, cols)
    channels = int(channels or model_channels or 1)
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 or 3, got {channels}")
    stacked = isinstance(images, np.ndarray)
    items = list(images) if not stacked or images.ndim == 3 else None
    if items is None:
        raise ValueError(f"images must be (batch, rows, cols), got shape {images.shape}")
    for k, img in enumerate(items):
        if np.ndim(img) != 2:
            raise ValueError(f"image {k} has shape {np.shape(img)}, not 2-D")

    out: list[NDArray[np.float32]] = []
    batch_size = max(1, int(batch_size))
    for start in range(0, len(items), batch_size):
        chunk = items[start : start + batch_size]
        x = np.stack([prepare_image(np.asarray(img), size, channels) for img in chunk])
        total = np.zeros(x.shape[:3], np.float64)
        count = 0
        for model in models:
            for axes in _flips(tta_flips):
                xi = np.flip(x, axis=axes) if axes else x
                pred = np.asarray(model.predict_on_batch(xi), dtype=np.float32)
                if pred.ndim == 4:
                    pred = pred[..., 0]
                if axes:
                    pred = np.flip(pred, axis=axes)
                total += pred
                count += 1
        mean = (total / count).astype(np.float32)
        for img, prob in zip(chunk, mean, strict=True):
            back = resize(prob, np.shape(img), order=1, anti_aliasing=False)
            out.append(np.clip(back, 0.0, 1.0).astype(np.float32))
    if stacked:
        return np.stack(out) if out else np.zeros((0, *images.shape[1:]), np.float32)
    return out  # type: ignore[return-value]
