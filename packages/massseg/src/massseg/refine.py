"""Second look at each detected mass: a small U-Net that redraws its outline at full resolution.

The whole-image network sees the breast crop at a reduced size (the demo: 512x512 crops at
256x256, about 0.8 mm per pixel), which is enough to find a mass but draws its outline as a
smooth, often oversized blob. The refiner is the classic two-stage answer of detection
pipelines (detect, then segment the region): for every object the whole-image network finds,
a square around it is cut from the store image at full resolution (the object's bounding box
plus ``margin`` of its side on each side), resized to ``size`` x ``size``, segmented by the
refiner, and the refined probabilities replace the coarse ones inside that square. An object
the refiner does not confirm (no pixel above the threshold) disappears, so the refiner can
remove false detections; it can also add some, since the redrawn square may hold several
objects or mass pixels where the coarse map had none.

Training uses the ground-truth masses of the training cases: squares around each true mass
with a random margin, shift and scale (so the refiner learns to cope with the detector's
imprecise boxes), random rotations by 90 degrees, flips and gamma; and, for a share
``negative_fraction`` of the squares, squares of the same sizes at random places of the breast
(with whatever truth they hold, mostly none), so that the refiner learns to say "no mass here"
and rejects the whole-image network's false detections instead of drawing a mass in every
square it is given. The refiner's model folder
is ``<model folder>/refiner`` and its card's id ``massseg/<arch>/fold_<k>/refiner``; the whole
model's card records the refiner settings under ``training.refine`` so that prediction refuses
a folder whose refiner is missing instead of silently skipping the second look.

``bench/refiner_effect.py`` measures what the refiner changes: it runs ``massseg predict`` on a
model folder with and without the refiner (``--no-refine``) and compares the test metrics
(mean Dice over the images with a mass, masses found, false detections, empty images kept
empty); its last run is ``bench/results/refiner_effect.json``.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage as ndi

from mammo_common.crops import padded_crop, resize_bilinear
from mammo_common.postprocess import components

__all__ = [
    "REFINER_DIR",
    "CropSampler",
    "Refiners",
    "crop_square",
    "load_refiners",
    "refine_probabilities",
    "refiner_folder",
    "square_box",
    "train_refiner",
]

#: Sub-folder of a massseg model folder that holds its refiner.
REFINER_DIR = "refiner"


def refiner_folder(model_folder: str | Path) -> Path:
    """Where the refiner of ``model_folder`` lives."""
    return Path(model_folder) / REFINER_DIR


def square_box(
    bbox: tuple[int, int, int, int],
    margin: float,
    *,
    shift: tuple[float, float] = (0.0, 0.0),
    scale: float = 1.0,
    min_side: int = 16,
) -> tuple[int, int, int, int]:
    """Square ``(top, left, bottom, right)`` around ``bbox`` (may leave the image).

    Args:
        bbox: ``(y0, x0, y1, x1)`` of the object, end exclusive.
        margin: Share of the box's longer side added on each side.
        shift: Offset of the centre as a share of the square's side (rows, cols).
        scale: Extra factor on the side.
        min_side: Smallest side in pixels.
    """
    y0, x0, y1, x1 = bbox
    side = max(y1 - y0, x1 - x0) * (1.0 + 2.0 * margin) * scale
    side = max(round(side), int(min_side))
    cy = (y0 + y1) / 2.0 + shift[0] * side
    cx = (x0 + x1) / 2.0 + shift[1] * side
    top, left = int(np.floor(cy - side / 2.0)), int(np.floor(cx - side / 2.0))
    return top, left, top + side, left + side


def crop_square(array: NDArray, box: tuple[int, int, int, int], size: int) -> NDArray[np.float32]:
    """The ``box`` of a 2-D array, zero outside the image, bilinearly resized to ``size``."""
    return resize_bilinear(padded_crop(array, box).astype(np.float32, copy=False), size)


def _paste(
    small: NDArray[np.float32], box: tuple[int, int, int, int], shape: tuple[int, int]
) -> tuple[tuple[slice, slice], NDArray[np.float32]]:
    """``small`` resized to the box and clipped to the image: ``(slices, values)``."""
    top, left, bottom, right = box
    big = resize_bilinear(small, bottom - top)
    y0, x0, y1, x1 = max(top, 0), max(left, 0), min(bottom, shape[0]), min(right, shape[1])
    return (slice(y0, y1), slice(x0, x1)), big[y0 - top : y1 - top, x0 - left : x1 - left]


def _predict(models: Sequence[Any], crops: NDArray[np.float32]) -> NDArray[np.float32]:
    """Mean sigmoid of ``models`` over ``(n, s, s)`` crops."""
    x = crops[..., None]
    total = np.zeros(crops.shape, np.float64)
    for model in models:
        pred = np.asarray(model.predict_on_batch(x), np.float32)
        total += pred[..., 0] if pred.ndim == 4 else pred
    return (total / max(1, len(models))).astype(np.float32)


def refine_probabilities(
    models: Sequence[Any],
    image: NDArray,
    prob: NDArray[np.float32],
    *,
    threshold: float,
    min_object_pixels: int,
    margin: float,
    size: int,
) -> NDArray[np.float32]:
    """Redraw every object of ``prob >= threshold`` with the refiner(s).

    Args:
        models: Refiner models (an ensemble is averaged), input ``(size, size, 1)``.
        image: The store image (uint8/uint16, or float in [0, 1]) the map belongs to.
        prob: The whole-image network's probability map, same shape as ``image``.
        threshold: Objects are the connected components of ``prob >= threshold``...
        min_object_pixels: ...of at least this many pixels (smaller ones are left as they are,
            and the usual post-processing removes them).
        margin: Square around each object (see :func:`square_box`), as in training.
        size: Refiner input side.

    Returns:
        The refined map: inside each object's square the refiner's probability (the maximum
        where squares overlap), elsewhere the coarse map.
    """
    from mammo_common.keras.training.data import normalize_image

    comps = components(prob >= threshold, min_pixels=max(1, int(min_object_pixels)))
    if not comps:
        return prob
    scaled = normalize_image(np.asarray(image))
    boxes = [square_box(c.bbox, margin) for c in comps]
    crops = np.stack([crop_square(scaled, b, size) for b in boxes])
    refined = _predict(models, np.clip(crops, 0.0, 1.0))
    out = prob.astype(np.float32, copy=True)
    seen = np.zeros(prob.shape, bool)
    for box, small in zip(boxes, refined, strict=True):
        sl, values = _paste(small, box, prob.shape)
        region = out[sl]
        first = ~seen[sl]
        region[first] = values[first]
        region[~first] = np.maximum(region[~first], values[~first])
        seen[sl] = True
    return out


@dataclasses.dataclass
class CropSampler:
    """Random training squares around the true masses of some cases.

    Attributes:
        images: ``(n, H, W)`` store images (any supported dtype; read lazily row by row).
        masks: ``(n, H, W)`` ground-truth mass masks.
        indices: The cases to sample from.
        size: Square side after resizing.
        margin_range: Random margin (share of the box side on each side).
        shift: Largest random centre offset as a share of the square's side.
        scale_range: Random extra factor on the side.
    """

    images: Any
    masks: Any
    indices: Sequence[int]
    size: int
    margin_range: tuple[float, float] = (0.25, 0.9)
    shift: float = 0.12
    scale_range: tuple[float, float] = (0.8, 1.3)
    breasts: Any = None
    negative_fraction: float = 0.0

    def __post_init__(self) -> None:
        from mammo_common.keras.training.data import normalize_image

        self._images: dict[int, NDArray[np.float32]] = {}
        self._masks: dict[int, NDArray[np.bool_]] = {}
        self.objects: list[tuple[int, tuple[int, int, int, int]]] = []
        self._places: list[tuple[int, NDArray[np.int64]]] = []  # breast pixels per case
        negatives = self.negative_fraction > 0 and self.breasts is not None
        for i in self.indices:
            mask = np.asarray(self.masks[i]) > 0
            lab, n = ndi.label(mask)
            if not n and not negatives:
                continue
            self._images[i] = normalize_image(np.asarray(self.images[i]))
            self._masks[i] = mask
            for sl in ndi.find_objects(lab):
                self.objects.append((i, (sl[0].start, sl[1].start, sl[0].stop, sl[1].stop)))
            if negatives:
                breast = np.asarray(self.breasts[i]) > 0
                if breast.any():
                    self._places.append((i, np.flatnonzero(breast[::4, ::4])))

    def __len__(self) -> int:
        return len(self.objects)

    def fixed(self) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
        """One square per mass at the mean margin, no jitter (for validation)."""
        margin = float(np.mean(self.margin_range))
        return self._draw([(i, b, square_box(b, margin)) for i, b in self.objects], None)

    def sample(
        self, n: int, rng: np.random.Generator
    ) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
        """``n`` random squares ``(n, size, size, 1)`` and their masks, augmented."""
        picks = []
        for k in rng.integers(0, len(self.objects), n):
            i, bbox = self.objects[int(k)]
            if self._places and rng.random() < self.negative_fraction:
                i, bbox = self._elsewhere(bbox, rng)
            box = square_box(
                bbox,
                rng.uniform(*self.margin_range),
                shift=tuple(rng.uniform(-self.shift, self.shift, 2)),
                scale=rng.uniform(*self.scale_range),
            )
            picks.append((i, bbox, box))
        return self._draw(picks, rng)

    def _elsewhere(
        self, bbox: tuple[int, int, int, int], rng: np.random.Generator
    ) -> tuple[int, tuple[int, int, int, int]]:
        """A box of ``bbox``'s size centred on a random breast pixel of a random case."""
        i, places = self._places[int(rng.integers(len(self._places)))]
        width = self._masks[i].shape[1]
        flat = int(places[int(rng.integers(places.size))])
        cy, cx = 4 * (flat // ((width + 3) // 4)), 4 * (flat % ((width + 3) // 4))
        h, w = bbox[2] - bbox[0], bbox[3] - bbox[1]
        return i, (cy - h // 2, cx - w // 2, cy - h // 2 + h, cx - w // 2 + w)

    def _draw(
        self, picks: list[tuple[int, Any, tuple[int, int, int, int]]],
        rng: np.random.Generator | None,
    ) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
        x = np.zeros((len(picks), self.size, self.size, 1), np.float32)
        y = np.zeros_like(x)
        for j, (i, _, box) in enumerate(picks):
            img = crop_square(self._images[i], box, self.size)
            msk = (crop_square(self._masks[i].astype(np.float32), box, self.size) >= 0.5)
            if rng is not None:
                k = int(rng.integers(4))
                img, msk = np.rot90(img, k), np.rot90(msk, k)
                if rng.random() < 0.5:
                    img, msk = img[:, ::-1], msk[:, ::-1]
                img = np.clip(img, 0.0, 1.0) ** rng.uniform(0.75, 1.33)
            x[j, ..., 0] = np.clip(img, 0.0, 1.0)
            y[j, ..., 0] = msk
        return x, y


def _dice(pred: NDArray, truth: NDArray) -> float:
    """Mean per-square Dice of thresholded predictions (empty vs empty counts 1)."""
    p, t = pred >= 0.5, truth >= 0.5
    inter = (p & t).sum(axis=(1, 2, 3))
    total = p.sum(axis=(1, 2, 3)) + t.sum(axis=(1, 2, 3))
    return float(np.mean(np.where(total > 0, 2.0 * inter / np.maximum(total, 1), 1.0)))


def _batches(x: NDArray[np.float32], y: NDArray[np.float32], batch_size: int) -> Any:
    """``(x, y)`` in order as a ``keras.utils.PyDataset`` of ``batch_size`` squares.

    Not ``model.fit(x, y)``: Keras feeds numpy arrays with a static batch dimension when the
    count divides by the batch size, TensorFlow then optimizes the training graph for that
    shape, and that graph's gradients vary with the scheduling of concurrent ops (2-3 distinct
    weights over 5 identical steps in one process, different ones in every process; one
    intra- or inter-op thread or an unknown batch dimension makes them repeat). A PyDataset,
    as ``fit_resumable`` uses for the whole-image networks, has an unknown batch dimension.
    """
    import keras

    class Batches(keras.utils.PyDataset):
        def __init__(self) -> None:
            super().__init__()

        def __len__(self) -> int:
            return -(-len(x) // batch_size)

        def __getitem__(self, i: int) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
            part = slice(i * batch_size, (i + 1) * batch_size)
            return x[part], y[part]

    return Batches()


def train_refiner(
    settings: Any,
    images: Any,
    masks: Any,
    train_idx: Sequence[int],
    valid_idx: Sequence[int],
    *,
    seed: int,
    breasts: Any = None,
) -> tuple[Any, list[dict[str, float]], dict[str, float]]:
    """Train a refiner on squares around the true masses of ``train_idx``.

    Args:
        settings: :class:`massseg.config.RefineSettings`.
        images: ``(n, H, W)`` store images.
        masks: ``(n, H, W)`` ground-truth mass masks.
        train_idx: Training cases.
        valid_idx: Validation cases (the best epoch by their Dice is kept).
        seed: Seed of weights, sampling and augmentation.
        breasts: ``(n, H, W)`` breast masks, where the negative squares are placed (none
            without them).

    Returns:
        ``(model, history rows, metrics)``; the model holds the best epoch's weights.
    """
    import keras

    from mammo_common.cli_support import track
    from mammo_common.keras.training.losses import get_loss
    from massseg.models import build_model

    keras.utils.set_random_seed(seed)
    rng = np.random.default_rng([seed, 7])
    size = int(settings.size)
    common = {"size": size, "margin_range": tuple(settings.margin_range),
                  "shift": settings.shift, "scale_range": tuple(settings.scale_range)}
    train = CropSampler(images, masks, list(train_idx), **common, breasts=breasts,
                        negative_fraction=float(settings.negative_fraction))
    valid = CropSampler(images, masks, list(valid_idx), **common)
    if not len(train):
        raise ValueError("the training cases hold no mass to train the refiner on")
    model = build_model("unet5l", input_shape=(size, size, 1), filters=int(settings.filters),
                        dropout=float(settings.dropout))
    model.compile(optimizer=keras.optimizers.Adam(float(settings.learning_rate)),
                  loss=get_loss(settings.loss))
    vx, vy = valid.fixed() if len(valid) else (None, None)
    history: list[dict[str, float]] = []
    best, best_weights = -1.0, None
    start = time.perf_counter()
    for epoch in track(range(1, settings.epochs + 1), "refiner", total=settings.epochs):
        x, y = train.sample(int(settings.samples_per_epoch), rng)
        fit = model.fit(_batches(x, y, int(settings.batch_size)), epochs=1, verbose=0,
                        shuffle=False)
        row = {"epoch": float(epoch), "loss": float(fit.history["loss"][-1])}
        if vx is not None:
            row["val_dice"] = _dice(np.asarray(model.predict(vx, verbose=0)), vy)
        history.append(row)
        score = row.get("val_dice", float(epoch))
        if score > best:
            best, best_weights = score, model.get_weights()
    if best_weights is not None:
        model.set_weights(best_weights)
    best_row = max(history, key=lambda r: r.get("val_dice", r["epoch"]))
    metrics = {
        "best_epoch": best_row["epoch"],
        "epochs_run": float(len(history)),
        "best_val_dice": float(best_row.get("val_dice", float("nan"))),
        "train_masses": float(len(train)),
        "valid_masses": float(len(valid)),
        "seconds": float(time.perf_counter() - start),
    }
    return model, history, metrics


@dataclasses.dataclass
class Refiners:
    """The loaded refiners of an ensemble and how to cut their squares."""

    models: list[Any]
    margin: float
    size: int
    model_ids: list[str]

    def __call__(
        self, image: NDArray, prob: NDArray[np.float32], *, threshold: float,
        min_object_pixels: int,
    ) -> NDArray[np.float32]:
        """:func:`refine_probabilities` with these refiners."""
        return refine_probabilities(
            self.models, image, prob, threshold=threshold,
            min_object_pixels=min_object_pixels, margin=self.margin, size=self.size,
        )


def load_refiners(
    folders: Sequence[Path], cards: Sequence[Any], *, precision: str = "float32",
    fold_batchnorm: bool = True,
) -> Refiners | None:
    """The refiners of ``folders`` (``None`` when none was trained with one).

    Raises:
        ModelFolderError: A card says its model was trained with a refiner that is missing,
            or only some models of the ensemble have one, or their squares differ.
    """
    from mammo_common.errors import ModelFolderError
    from mammo_common.keras.deployment.model_folder import load_model_folder
    from mammo_common.keras.deployment.optimize import inference_model
    from mammo_common.schema.model_card import MODEL_FILE

    wanted = [bool(card.training.get("refine")) for card in cards]
    if not any(wanted):
        return None
    if not all(wanted):
        bad = folders[wanted.index(False)]
        raise ModelFolderError(
            "only some models of the ensemble were trained with a refiner", path=bad,
            field="training.refine", fix="ensemble folds trained with the same settings, or "
            "predict with refine: false",
        )
    models, ids, squares = [], [], set()
    for folder, _card in zip(folders, cards, strict=True):
        sub = refiner_folder(folder)
        if not (sub / MODEL_FILE).is_file():
            raise ModelFolderError(
                "the model was trained with a refiner but its folder has none (an interrupted "
                "or partial copy)", path=sub, field="training.refine",
                fix="retrain the fold (massseg train --overwrite) or copy the whole folder",
            )
        model, rcard = load_model_folder(sub, "massseg")
        model, _ = inference_model(model, precision=precision, fold_batchnorm=fold_batchnorm)
        models.append(model)
        ids.append(rcard.model_id)
        settings = rcard.training.get("refine", {})
        squares.add((float(settings.get("margin", 0.5)), int(rcard.input_shape[0])))
    if len(squares) > 1:
        raise ModelFolderError(
            f"the refiners cut different squares {sorted(squares)}", path=folders[0],
            field="training.refine", fix="ensemble folds trained with the same settings",
        )
    margin, size = squares.pop()
    return Refiners(models=models, margin=margin, size=size, model_ids=ids)
