"""False-positive reduction: score every detected object and drop the unlikely ones.

Computer-aided detection systems have long had two steps: find candidates with high
sensitivity, then reject false positives with a classifier over each candidate's measurements.
massseg's whole-image network finds most masses but also marks small bright spots of dense
tissue and the pectoral edge (on the demo: 141 false detections on 56 test images against 27
true ones). This module is the second step:

* every object of the final map (after the refiner, when there is one) is described by
  measurements that do not depend on one image source (:data:`FEATURES`): its area as a share
  of the work image, the mean refined and the mean and maximum whole-image probability inside
  it, and its contrast and texture against the ring around it, in units of the intensity
  spread of its neighbourhood (so a film's background level or a detector's tone curve does
  not move them); its shape (solidity, eccentricity), its contrast against a wider ring and
  against the whole breast (in units of the breast's spread, and as the share of breast pixels
  darker than it: a mass inside dense tissue is not bright for its breast), its distance from
  the skin line, the share of it the network is sure of; and how it stands among its image's
  other objects (its peak probability as a share of the image's best, its rank, their number);
* a classifier learns from the objects the trained network finds on its own training images,
  labelled true when they touch a ground-truth mass: gradient-boosted trees (``scorer:
  boosted_trees``, the default: scikit-learn's ``GradientBoostingClassifier``, 200 trees of
  depth 3) or a logistic regression on standardised inputs (``scorer: logistic``, the first
  version's scorer, on the first seven measurements);
* the operating point is chosen on the validation images: the highest score threshold whose
  mean Dice over the validation images with a mass is within ``tolerance`` of the best, so
  among equally good thresholds the one that keeps fewest false detections wins;
* optionally a cap on the objects kept per image, the highest-scoring ones (a CAD system's
  "marks per image"; nnU-Net's "keep the largest component" is its one-object form, decided
  the same way): with ``max_objects="auto"`` each cap of :data:`MAX_OBJECTS_CHOICES` gets its
  own best threshold, and the loosest cap whose validation Dice is within ``tolerance`` of the
  best is kept (no cap unless one clearly helps);
* at prediction, an object scoring under the threshold, or beyond the cap in its image, is
  removed: its pixels' probabilities are capped at its score (below the segmentation
  threshold), so the probability map and the mask agree.

The fitted scorer is a small JSON file in the model folder (``fp_reduction.json``: feature
names, the scaler and coefficients or the trees, threshold and what it was fitted on), read
without scikit-learn or pickle; files of the first format (logistic, seven measurements) still
load. The whole model's card records the settings under ``training.fp_reduction``, and
prediction refuses a folder whose card says it has one but whose file is missing.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage as ndi

__all__ = [
    "FEATURES",
    "FORMAT_1_FEATURES",
    "FP_REDUCTION_FILE",
    "MAX_OBJECTS_CHOICES",
    "SCORERS",
    "BreastContext",
    "FPReduction",
    "ObjectSet",
    "collect_objects",
    "fit_fp_reduction",
    "load_fp_reduction",
    "load_fp_reductions",
    "measure_image",
    "object_features",
    "rank_in_groups",
    "reject_objects",
    "train_fp_reduction",
]

#: File of the fitted scorer inside a massseg model folder.
FP_REDUCTION_FILE = "fp_reduction.json"

#: The measurements of an object, in the order :func:`collect_objects` writes them; a scorer
#: reads the ones its ``features`` name.
FEATURES = (
    "log_area_share",
    "refined_prob_mean",
    "coarse_prob_mean",
    "coarse_prob_max",
    "contrast",
    "texture_inside",
    "texture_ring",
    # format 2
    "solidity",
    "eccentricity",
    "contrast_wide",
    "breast_contrast",
    "breast_percentile",
    "edge_distance",
    "coarse_prob_high",
    # how the object stands among its image's objects (measure_image)
    "coarse_max_share",
    "coarse_rank",
    "objects_in_image",
)

#: The measurements of the first format's (logistic) scorers.
FORMAT_1_FEATURES = FEATURES[:7]

#: The scorers :func:`fit_fp_reduction` fits.
SCORERS = ("boosted_trees", "logistic")

#: The object-level measurements (:func:`object_features`); the rest depend on the image.
_OBJECT_FEATURES = len(FEATURES) - 3

#: The caps on objects per image that ``max_objects="auto"`` compares (``None``: no cap).
MAX_OBJECTS_CHOICES: tuple[int | None, ...] = (None, 3, 2, 1)

_RING = 6  # pixels of the ring around an object
_FORMAT = 2
_FORMATS = (1, 2)  # what load_fp_reduction reads
_HIGH = 0.9  # "sure" whole-image probability (coarse_prob_high)


def _labels(mask: NDArray[np.bool_]) -> tuple[NDArray[np.int32], int]:
    """8-connected components (as :func:`mammo_common.postprocess.components`)."""
    lab, n = ndi.label(mask, structure=np.ones((3, 3), bool))
    return lab.astype(np.int32, copy=False), int(n)


@dataclasses.dataclass
class BreastContext:
    """What the measurements compare an object with: its image's breast.

    Attributes:
        values: The breast's pixel values (scaled image), sorted.
        median: Their median.
        spread: Their 10-90th percentile range (at least 1e-3).
        depth: Distance (pixels) of every pixel from the breast's outline (0 outside it).
        max_depth: The largest distance (at least 1).
    """

    values: NDArray[np.float32]
    median: float
    spread: float
    depth: NDArray[np.float32]
    max_depth: float

    @classmethod
    def of(cls, image: NDArray[np.float32], breast: NDArray | None) -> BreastContext:
        """The context of ``image`` (scaled to [0, 1]); no or an empty ``breast``: the image."""
        inside = (np.ones(image.shape, bool) if breast is None or not np.any(breast)
                  else np.asarray(breast) > 0)
        values = np.sort(image[inside].astype(np.float32, copy=False))
        low, median, high = np.percentile(values, [10.0, 50.0, 90.0])
        # the image's edge is no outline (the chest wall side of a crop); with no breast, it is
        padded = inside.all()
        depth = ndi.distance_transform_edt(np.pad(inside, 1) if padded else inside)
        depth = (depth[1:-1, 1:-1] if padded else depth).astype(np.float32)
        return cls(values=values, median=float(median), spread=float(high - low) + 1e-3,
                   depth=depth, max_depth=max(float(depth.max()), 1.0))


def object_features(
    image: NDArray[np.float32],
    coarse: NDArray[np.float32],
    refined: NDArray[np.float32],
    obj: NDArray[np.bool_],
    box: tuple[slice, slice],
    context: BreastContext | None = None,
) -> list[float]:
    """The object-level measurements of one object (:data:`FEATURES` up to
    ``coarse_prob_high``; :func:`measure_image` adds how it stands among its image's objects).

    Args:
        image: The work image scaled to [0, 1] (float32).
        coarse: The whole-image network's probability map.
        refined: The map after the refiner (``coarse`` without one).
        obj: The object's mask (whole image).
        box: The object's bounding slices.
        context: The image's :class:`BreastContext` (``None``: the whole image is the breast;
            give it when measuring several objects of one image).
    """
    from skimage.measure import regionprops

    if context is None:
        context = BreastContext.of(image, None)
    height, width = obj.shape
    rows, cols = box
    side = max(rows.stop - rows.start, cols.stop - cols.start)
    pad = side + _RING
    y0, y1 = max(rows.start - pad, 0), min(rows.stop + pad, height)
    x0, x1 = max(cols.start - pad, 0), min(cols.stop + pad, width)
    local = (slice(y0, y1), slice(x0, x1))
    inside = obj[local]
    ring = ndi.binary_dilation(inside, iterations=_RING) & ~inside
    context_image = image[local]
    low, high = np.percentile(context_image, [5.0, 95.0])
    spread = float(high - low) + 1e-3
    values_in, values_ring = context_image[inside], context_image[ring]
    mean_in = float(values_in.mean())
    ring_mean = float(values_ring.mean()) if values_ring.size else float(context_image.mean())
    ring_std = float(values_ring.std()) if values_ring.size else 0.0
    # the wide ring: one to two equivalent radii outside the outline (its own window)
    area = int(obj[box].sum())
    radius = max(round(math.sqrt(area / math.pi)), 2)
    far = 2 * radius + 1
    wy = slice(max(rows.start - far, 0), min(rows.stop + far, height))
    wx = slice(max(cols.start - far, 0), min(cols.stop + far, width))
    near = ndi.binary_dilation(obj[wy, wx], iterations=radius)
    wide = ndi.binary_dilation(near, iterations=radius) & ~near
    wide_mean = float(image[wy, wx][wide].mean()) if wide.any() else ring_mean
    coarse_in = coarse[local][inside]
    props = regionprops(obj[box].astype(np.uint8))[0]
    cy, cx = (round(float(c)) for c in ndi.center_of_mass(obj[box]))
    return [
        math.log(max(area, 1) / float(height * width)),
        float(refined[local][inside].mean()),
        float(coarse_in.mean()),
        float(coarse_in.max()),
        (mean_in - ring_mean) / spread,
        float(values_in.std()) / spread,
        ring_std / spread,
        float(props.solidity),
        float(props.eccentricity),
        (mean_in - wide_mean) / context.spread,
        (mean_in - context.median) / context.spread,
        float(np.searchsorted(context.values, mean_in)) / max(context.values.size, 1),
        float(context.depth[rows.start + cy, cols.start + cx]) / context.max_depth,
        float((coarse_in >= _HIGH).mean()),
    ]


def measure_image(
    image: NDArray[np.float32],
    coarse: NDArray[np.float32],
    refined: NDArray[np.float32],
    breast: NDArray | None,
    *,
    threshold: float,
    min_object_pixels: int,
) -> tuple[list[tuple[NDArray[np.bool_], tuple[slice, slice]]], NDArray[np.float64]]:
    """Every object of ``refined >= threshold`` (at least ``min_object_pixels``) and its
    :data:`FEATURES`.

    Args:
        image: The work image scaled to [0, 1].
        coarse: The whole-image network's map.
        refined: The final map (after the refiner).
        breast: The image's breast mask (``None``: the whole image).
        threshold: The segmentation threshold that defines the objects.
        min_object_pixels: Smaller objects are not measured (left to the post-processing).

    Returns:
        ``(objects, features)``: each object's mask and bounding slices, in raster order of
        their first pixel, and ``(n_objects, len(FEATURES))`` measurements.
    """
    lab, _ = _labels(refined >= threshold)
    context: BreastContext | None = None
    objects: list[tuple[NDArray[np.bool_], tuple[slice, slice]]] = []
    rows: list[list[float]] = []
    for k, box in enumerate(ndi.find_objects(lab), start=1):
        if box is None:
            continue
        obj = lab == k
        if int(obj[box].sum()) < max(1, min_object_pixels):
            continue
        if context is None:
            context = BreastContext.of(image, breast)
        objects.append((obj, box))
        rows.append(object_features(image, coarse, refined, obj, box, context))
    features = np.zeros((len(rows), len(FEATURES)), np.float64)
    if rows:
        features[:, :_OBJECT_FEATURES] = np.asarray(rows, np.float64)
        peak = features[:, FEATURES.index("coarse_prob_max")]
        features[:, FEATURES.index("coarse_max_share")] = peak / max(float(peak.max()), 1e-6)
        features[:, FEATURES.index("coarse_rank")] = rank_in_groups(
            peak, np.zeros(len(rows), np.int64))
        features[:, FEATURES.index("objects_in_image")] = float(len(rows))
    return objects, features


@dataclasses.dataclass
class ObjectSet:
    """The objects found on some images, with their truth when known.

    Attributes:
        features: ``(n_objects, len(FEATURES))``.
        image: Index (into the images given) of each object's image.
        area: Pixels of each object.
        overlap: Pixels of each object on a ground-truth mass.
        truth_area: Ground-truth mass pixels of each image.
    """

    features: NDArray[np.float64]
    image: NDArray[np.int64]
    area: NDArray[np.int64]
    overlap: NDArray[np.int64]
    truth_area: NDArray[np.int64]

    @property
    def is_mass(self) -> NDArray[np.bool_]:
        """Whether each object touches a ground-truth mass."""
        return self.overlap > 0

    def rank(self, scores: NDArray[np.float64]) -> NDArray[np.int64]:
        """Each object's place (0: best) among its image's objects by ``scores``."""
        return rank_in_groups(scores, self.image)

    def mean_dice(self, keep: NDArray[np.bool_]) -> float:
        """Mean Dice over the images with a mass when only the ``keep`` objects are kept."""
        inter = np.bincount(self.image[keep], self.overlap[keep], len(self.truth_area))
        drawn = np.bincount(self.image[keep], self.area[keep], len(self.truth_area))
        with_mass = self.truth_area > 0
        if not with_mass.any():
            return float("nan")
        dice = 2.0 * inter[with_mass] / (drawn[with_mass] + self.truth_area[with_mass])
        return float(dice.mean())


def rank_in_groups(scores: NDArray[np.float64], groups: NDArray[np.int64]) -> NDArray[np.int64]:
    """Place of each score (0: highest) within its group; ties keep the input order."""
    scores = np.asarray(scores, np.float64)
    groups = np.asarray(groups, np.int64)
    order = np.lexsort((-scores, groups))  # by group, then by descending score (stable)
    ranks = np.empty(len(scores), np.int64)
    if len(scores):
        sorted_groups = groups[order]
        starts = np.r_[0, np.flatnonzero(np.diff(sorted_groups)) + 1]
        first = np.repeat(starts, np.diff(np.r_[starts, len(scores)]))
        ranks[order] = np.arange(len(scores)) - first
    return ranks


def _keep(
    scores: NDArray[np.float64], ranks: NDArray[np.int64], threshold: float,
    max_objects: int | None,
) -> NDArray[np.bool_]:
    """Objects kept at an operating point (score threshold and cap per image)."""
    keep = scores >= threshold
    if max_objects is not None:
        keep &= ranks < max_objects
    return keep


def collect_objects(
    images: Sequence[NDArray],
    coarse: Sequence[NDArray[np.float32]],
    refined: Sequence[NDArray[np.float32]],
    truths: Sequence[NDArray] | None,
    *,
    threshold: float,
    min_object_pixels: int,
    breasts: Sequence[NDArray] | None = None,
) -> ObjectSet:
    """Measure every object of ``refined >= threshold`` (at least ``min_object_pixels``).

    ``breasts`` are the images' breast masks (``None``: each whole image is the breast).
    """
    from mammo_common.keras.training.data import normalize_image

    feats: list[NDArray[np.float64]] = []
    where: list[int] = []
    areas: list[int] = []
    overlaps: list[int] = []
    truth_areas: list[int] = []
    for i, (image, cmap, rmap) in enumerate(zip(images, coarse, refined, strict=True)):
        scaled = np.clip(normalize_image(np.asarray(image)), 0.0, 1.0)
        truth = None if truths is None else np.asarray(truths[i]) > 0
        truth_areas.append(0 if truth is None else int(truth.sum()))
        objects, features = measure_image(
            scaled, np.asarray(cmap, np.float32), np.asarray(rmap, np.float32),
            None if breasts is None else breasts[i], threshold=threshold,
            min_object_pixels=min_object_pixels)
        feats.append(features)
        for obj, box in objects:
            where.append(i)
            areas.append(int(obj[box].sum()))
            overlaps.append(0 if truth is None else int((obj[box] & truth[box]).sum()))
    return ObjectSet(
        features=(np.concatenate(feats) if feats else np.zeros((0, len(FEATURES)))),
        image=np.asarray(where, np.int64),
        area=np.asarray(areas, np.int64),
        overlap=np.asarray(overlaps, np.int64),
        truth_area=np.asarray(truth_areas, np.int64),
    )


@dataclasses.dataclass
class FPReduction:
    """A fitted false-positive scorer and its operating point.

    Attributes:
        mean: Feature means of the training objects (standardisation; logistic only).
        scale: Feature standard deviations (logistic only).
        coef: Logistic-regression coefficients on the standardised features.
        intercept: Its intercept.
        threshold: Objects scoring under this are removed.
        features: The measurements it reads (names of :data:`FEATURES`, in its order).
        info: What it was fitted on and how it scored (counts, validation Dice).
        max_objects: At most this many objects are kept per image, the highest-scoring ones
            (``None``: no cap; files written before the cap existed read as ``None``).
        kind: ``logistic`` or ``boosted_trees`` (:data:`SCORERS`).
        trees: The boosted trees (``boosted_trees``): per tree its nodes' ``feature`` (index
            into :attr:`features`), ``threshold`` (go left when the value is at most it),
            ``left`` and ``right`` children (-1 at a leaf) and ``value`` (the leaf's output).
        learning_rate: The boosting's shrinkage: a tree adds ``learning_rate x value``.
        init_score: The log-odds every object starts from (the training objects' prior).
    """

    mean: list[float]
    scale: list[float]
    coef: list[float]
    intercept: float
    threshold: float
    features: list[str] = dataclasses.field(default_factory=lambda: list(FEATURES))
    info: dict[str, Any] = dataclasses.field(default_factory=dict)
    max_objects: int | None = None
    kind: str = "logistic"
    trees: list[dict[str, list[Any]]] = dataclasses.field(default_factory=list)
    learning_rate: float = 0.0
    init_score: float = 0.0

    def __post_init__(self) -> None:
        if self.kind not in SCORERS:
            raise ValueError(f"kind must be one of {SCORERS}, not {self.kind!r}")
        unknown = [n for n in self.features if n not in FEATURES]
        if unknown:
            raise ValueError(f"unknown measurements {unknown} (FEATURES)")
        if self.kind == "logistic" and len(self.coef) != len(self.features):
            raise ValueError(f"{len(self.coef)} coefficients for {len(self.features)} features")

    def _inputs(self, features: NDArray[np.float64]) -> NDArray[np.float64]:
        """The columns it reads of ``features`` (every :data:`FEATURES`, or only its own)."""
        x = np.atleast_2d(np.asarray(features, np.float64))
        if x.shape[1] == len(FEATURES):
            return x[:, self._columns()]
        if x.shape[1] == len(self.features):
            return x
        raise ValueError(f"expected {len(FEATURES)} measurements per object (FEATURES), "
                         f"got {x.shape[1]}")

    def _columns(self) -> list[int]:
        return [FEATURES.index(name) for name in self.features]

    def raw_scores(self, features: NDArray[np.float64]) -> NDArray[np.float64]:
        """Log-odds that each object (a row of ``features``) is a mass."""
        x = self._inputs(features)
        if self.kind == "boosted_trees":
            z = np.full(len(x), float(self.init_score))
            rows = np.arange(len(x))
            for tree in self.trees:
                feature = np.asarray(tree["feature"], np.int64)
                cut = np.asarray(tree["threshold"], np.float64)
                left = np.asarray(tree["left"], np.int64)
                right = np.asarray(tree["right"], np.int64)
                node = np.zeros(len(x), np.int64)
                while True:
                    inner = left[node] >= 0
                    if not inner.any():
                        break
                    go_left = x[rows, np.maximum(feature[node], 0)] <= cut[node]
                    node = np.where(inner, np.where(go_left, left[node], right[node]), node)
                z += float(self.learning_rate) * np.asarray(tree["value"], np.float64)[node]
            return z
        standard = (x - np.asarray(self.mean)) / np.asarray(self.scale)
        return standard @ np.asarray(self.coef, np.float64) + float(self.intercept)

    def scores(self, features: NDArray[np.float64]) -> NDArray[np.float64]:
        """Probability that each object (a row of ``features``) is a mass."""
        return 1.0 / (1.0 + np.exp(-self.raw_scores(features)))

    def apply(
        self,
        image: NDArray,
        coarse: NDArray[np.float32],
        prob: NDArray[np.float32],
        *,
        threshold: float,
        min_object_pixels: int,
        breast: NDArray | None = None,
    ) -> NDArray[np.float32]:
        """``prob`` with the objects scoring under :attr:`threshold` removed.

        Args:
            image: The work image (any supported dtype).
            coarse: The whole-image network's map.
            prob: The final map (after the refiner), same shape.
            threshold: The segmentation threshold that defines the objects.
            min_object_pixels: Objects under this size are left to the post-processing.
            breast: The image's breast mask (``None``: the whole image is the breast).

        Returns:
            A copy of ``prob`` where every removed object's pixels (scoring under
            :attr:`threshold`, or beyond :attr:`max_objects` in the image) are capped at its
            score, and under the segmentation threshold.
        """
        return reject_objects([self], image, coarse, prob, threshold=threshold,
                              min_object_pixels=min_object_pixels, breast=breast)

    def card_metrics(self) -> dict[str, float]:
        """Its numbers as model-card metrics (``fp_reduction_<info key>``, threshold, cap; no
        cap is written as 0, metrics being numbers)."""
        metrics = {f"fp_reduction_{k}": float(v) for k, v in self.info.items()
                   if isinstance(v, int | float) and not isinstance(v, bool)}
        metrics["fp_reduction_threshold"] = float(self.threshold)
        metrics["fp_reduction_max_objects"] = float(self.max_objects or 0)
        return metrics

    def to_json(self) -> dict[str, Any]:
        """The JSON form written to :data:`FP_REDUCTION_FILE`."""
        return {"format": "mammo-fp-reduction", "format_version": _FORMAT,
                **dataclasses.asdict(self)}

    def save(self, folder: str | os.PathLike[str]) -> Path:
        """Write :data:`FP_REDUCTION_FILE` into ``folder`` atomically."""
        path = Path(folder) / FP_REDUCTION_FILE
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(self.to_json(), indent=2, sort_keys=True) + "\n")
        os.replace(tmp, path)
        return path


def reject_objects(
    scorers: Sequence[FPReduction],
    image: NDArray,
    coarse: NDArray[np.float32],
    prob: NDArray[np.float32],
    *,
    threshold: float,
    min_object_pixels: int,
    breast: NDArray | None = None,
) -> NDArray[np.float32]:
    """``prob`` without the objects that ``scorers`` reject (see :meth:`FPReduction.apply`).

    An ensemble's scorers (one per fold) are averaged: an object is kept when the mean of
    their scores reaches the mean of their thresholds and, when every scorer caps the objects
    per image, it is among the loosest cap's best-scoring objects of the image. ``breast`` is
    the image's breast mask (``None``: the whole image), as in training.
    """
    from mammo_common.keras.training.data import normalize_image

    refined = np.asarray(prob, np.float32)
    out = refined.copy()
    if not scorers:
        return out
    cutoff = float(np.mean([s.threshold for s in scorers]))
    caps = [s.max_objects for s in scorers]
    max_objects = None if any(c is None for c in caps) else max(caps)  # type: ignore[type-var]
    scaled = np.clip(normalize_image(np.asarray(image)), 0.0, 1.0)
    cap = min(float(threshold) - 1e-3, 0.999)
    objects, features = measure_image(scaled, np.asarray(coarse, np.float32), refined, breast,
                                      threshold=threshold, min_object_pixels=min_object_pixels)
    if not objects:
        return out
    values = np.mean([s.scores(features) for s in scorers], axis=0)
    keep = _keep(values, rank_in_groups(values, np.zeros(len(values), np.int64)), cutoff,
                 max_objects)
    for (obj, _box), score, kept in zip(objects, values, keep, strict=True):
        if not kept:
            out[obj] = np.minimum(out[obj], np.float32(min(float(score), cap)))
    return out


def load_fp_reductions(
    folders: Sequence[Path], cards: Sequence[Any]
) -> list[FPReduction] | None:
    """The scorers of an ensemble's model folders (``None`` when none was fitted with one).

    Raises:
        ModelFolderError: Only some models of the ensemble have one, or a card says its
            model has one that is missing or unreadable.
    """
    from mammo_common.errors import ModelFolderError

    wanted = [bool(card.training.get("fp_reduction")) for card in cards]
    if not any(wanted):
        return None
    if not all(wanted):
        raise ModelFolderError(
            "only some models of the ensemble were trained with false-positive reduction",
            path=folders[wanted.index(False)], field="training.fp_reduction",
            fix="ensemble folds trained with the same settings, or predict with "
            "--no-fp-reduction",
        )
    return [load_fp_reduction(folder) for folder in folders]


def load_fp_reduction(folder: str | os.PathLike[str]) -> FPReduction:
    """Read the scorer of a model folder.

    Raises:
        ModelFolderError: The file is missing, unreadable, or of another format or features.
    """
    from mammo_common.errors import ModelFolderError

    path = Path(folder) / FP_REDUCTION_FILE
    fix = "retrain the fold (massseg train --overwrite), or predict with --no-fp-reduction"
    if not path.is_file():
        raise ModelFolderError(
            "the model was trained with false-positive reduction but its folder has no "
            f"{FP_REDUCTION_FILE} (an interrupted or partial copy)", path=path,
            field="training.fp_reduction", fix=fix,
        )
    try:
        raw = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ModelFolderError(f"cannot read it: {exc}", path=path, field=FP_REDUCTION_FILE,
                               fix=fix) from exc
    if raw.get("format") != "mammo-fp-reduction" or raw.get("format_version") not in _FORMATS:
        raise ModelFolderError(
            f"not a false-positive scorer of format {' or '.join(map(str, _FORMATS))}",
            path=path, field="format", fix=fix,
        )
    names = raw.get("features", [])
    unknown = [n for n in names if n not in FEATURES] if isinstance(names, list) else names
    width = len(raw.get("coef", [])) if raw.get("kind", "logistic") == "logistic" else None
    if unknown or not names or (width is not None and width != len(names)):
        raise ModelFolderError(
            f"its features {names} are not measurements this version makes ({list(FEATURES)}) "
            "or do not match its coefficients", path=path, field="features", fix=fix,
        )
    if raw.get("kind", "logistic") not in SCORERS:
        raise ModelFolderError(f"unknown scorer kind {raw.get('kind')!r}", path=path,
                               field="kind", fix=fix)
    fields = {f.name for f in dataclasses.fields(FPReduction)}
    return FPReduction(**{k: v for k, v in raw.items() if k in fields})


def _operating_point(
    scores: NDArray[np.float64], objects: ObjectSet, tolerance: float,
    max_objects: int | None = None,
) -> tuple[float, float, float]:
    """``(threshold, validation Dice, Dice with every object kept)`` under a cap per image."""
    everything = objects.mean_dice(np.ones(len(scores), bool))
    ranks = objects.rank(scores)
    candidates = np.unique(np.concatenate([[0.0], scores]))
    dices = np.array([objects.mean_dice(_keep(scores, ranks, t, max_objects))
                      for t in candidates])
    best = float(np.nanmax(dices))
    good = candidates[dices >= best - tolerance]
    threshold = float(good.max())
    # halfway to the next lower score: the same objects are kept, with room for the tiny
    # numerical differences of the folded inference model at prediction
    below = scores[scores < threshold]
    if below.size:
        threshold = float((threshold + below.max()) / 2.0)
    dice = objects.mean_dice(_keep(scores, ranks, threshold, max_objects))
    return threshold, float(dice), everything


def _choose_cap(
    scores: NDArray[np.float64], objects: ObjectSet, tolerance: float,
    choices: Sequence[int | None],
) -> tuple[int | None, float, float, float, dict[str, float]]:
    """The loosest cap of ``choices`` within ``tolerance`` of the best validation Dice.

    Returns:
        ``(cap, threshold, validation Dice, Dice with every object kept, Dice per cap)``.
    """
    points = {cap: _operating_point(scores, objects, tolerance, cap) for cap in choices}
    best = max(p[1] for p in points.values())

    def looseness(cap: int | None) -> float:
        return math.inf if cap is None else float(cap)

    good = [cap for cap, p in points.items() if p[1] >= best - tolerance]
    cap = max(good, key=looseness)
    threshold, dice, everything = points[cap]
    by_cap = {("none" if c is None else str(c)): p[1] for c, p in points.items()}
    return cap, threshold, dice, everything, by_cap


def fit_fp_reduction(
    train: ObjectSet,
    valid: ObjectSet,
    *,
    c: float = 1.0,
    tolerance: float = 0.005,
    max_objects: int | str | None = None,
    scorer: str = "logistic",
    seed: int = 0,
) -> FPReduction:
    """Fit the scorer on ``train``'s objects and choose its threshold on ``valid``'s.

    Args:
        train: Objects on the training images, with truth.
        valid: Objects on the validation images, with truth (the operating point).
        c: Inverse L2 regularisation strength of the logistic regression.
        scorer: ``logistic`` (on :data:`FORMAT_1_FEATURES`) or ``boosted_trees`` (on every
            measurement; :func:`_fit_trees`).
        seed: The trees' random state (ties between equally good splits).
        tolerance: Thresholds whose validation Dice is within this of the best are equally
            good; the highest of them is kept. Caps likewise: the loosest good one is kept.
        max_objects: Objects kept per image: ``None`` (no cap), a number, or ``"auto"``
            (chosen on the validation images among :data:`MAX_OBJECTS_CHOICES`).

    Returns:
        The scorer. When the training objects are all masses or all false detections, or the
        validation objects are, it keeps every object (threshold 0) and its ``info`` says why.
    """
    if scorer not in SCORERS:
        raise ValueError(f"scorer must be one of {SCORERS}, not {scorer!r}")
    if max_objects == "auto":
        choices: tuple[int | None, ...] = MAX_OBJECTS_CHOICES
    elif max_objects is None or (isinstance(max_objects, int) and max_objects >= 1):
        choices = (max_objects,)
    else:
        raise ValueError(f"max_objects must be None, 'auto' or a positive int, not {max_objects!r}")
    y = train.is_mass
    info: dict[str, Any] = {
        "scorer": scorer,
        "c": float(c),
        "tolerance": float(tolerance),
        "max_objects_setting": max_objects,
        "train_objects": len(y),
        "train_masses": int(y.sum()),
        "valid_objects": len(valid.area),
        "valid_masses": int(valid.is_mass.sum()),
    }
    if y.all() or not y.any():
        # nothing to learn from (a network that finds only masses, or none): keep everything
        info["threshold_from"] = "training objects of one kind only: nothing removed"
        n = len(FEATURES)
        return FPReduction(mean=[0.0] * n, scale=[1.0] * n, coef=[0.0] * n, intercept=0.0,
                           threshold=0.0, info=info)
    fitted = (_fit_trees(train.features, y, seed) if scorer == "boosted_trees"
              else _fit_logistic(train.features, y, c))
    if len(valid.area) and valid.is_mass.any() and not valid.is_mass.all():
        scores = fitted.scores(valid.features)
        cap, threshold, dice, everything, by_cap = _choose_cap(scores, valid, tolerance,
                                                               choices)
        from sklearn.metrics import roc_auc_score

        kept = _keep(scores, valid.rank(scores), threshold, cap)
        info.update({
            "valid_dice_by_max_objects": by_cap,
            "valid_auc": float(roc_auc_score(valid.is_mass, scores)),
            "valid_dice_all_objects": everything,
            "valid_dice": dice,
            "valid_masses_kept": int((kept & valid.is_mass).sum()),
            "valid_false_kept": int((kept & ~valid.is_mass).sum()),
            "valid_false_all": int((~valid.is_mass).sum()),
            "threshold_from": "validation Dice",
        })
        fitted.threshold = threshold
        fitted.max_objects = cap
    else:
        info["threshold_from"] = "no validation objects of both kinds: nothing removed"
    fitted.info = info
    return fitted


def _fit_logistic(features: NDArray[np.float64], y: NDArray[np.bool_], c: float) -> FPReduction:
    """A logistic regression on the standardised :data:`FORMAT_1_FEATURES`."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    names = list(FORMAT_1_FEATURES)
    x = features[:, [FEATURES.index(n) for n in names]]
    scaler = StandardScaler().fit(x)
    model = LogisticRegression(C=float(c), max_iter=5000).fit(scaler.transform(x), y)
    scale = np.where(scaler.scale_ > 0, scaler.scale_, 1.0)
    return FPReduction(
        mean=[float(v) for v in scaler.mean_],
        scale=[float(v) for v in scale],
        coef=[float(v) for v in model.coef_[0]],
        intercept=float(model.intercept_[0]),
        threshold=0.0,
        features=names,
    )


#: The boosted trees' settings (scikit-learn's GradientBoostingClassifier): shallow trees and
#: a small step, for a few hundred to a few thousand training objects.
TREE_SETTINGS: dict[str, Any] = {"n_estimators": 200, "max_depth": 3, "learning_rate": 0.05}


def _fit_trees(features: NDArray[np.float64], y: NDArray[np.bool_], seed: int) -> FPReduction:
    """Gradient-boosted trees on every measurement, written out as plain node lists.

    The trees are read back from scikit-learn's public ``tree_`` arrays; scoring them again
    (:meth:`FPReduction.raw_scores`) gives the model's ``decision_function`` exactly.
    """
    from sklearn.ensemble import GradientBoostingClassifier

    model = GradientBoostingClassifier(random_state=seed, **TREE_SETTINGS).fit(features, y)
    prior = float(np.clip(model.init_.class_prior_[1], 1e-12, 1 - 1e-12))
    trees = []
    for estimator in model.estimators_[:, 0]:
        t = estimator.tree_
        leaf = t.children_left < 0
        trees.append({
            "feature": np.where(leaf, -1, t.feature).astype(int).tolist(),
            "threshold": np.where(leaf, 0.0, t.threshold).astype(float).tolist(),
            "left": t.children_left.astype(int).tolist(),
            "right": t.children_right.astype(int).tolist(),
            "value": t.value[:, 0, 0].astype(float).tolist(),
        })
    return FPReduction(
        mean=[], scale=[], coef=[], intercept=0.0, threshold=0.0, features=list(FEATURES),
        kind="boosted_trees", trees=trees, learning_rate=float(model.learning_rate),
        init_score=math.log(prior / (1.0 - prior)),
    )


def train_fp_reduction(
    predict: Callable[[NDArray], NDArray[np.float32]],
    refine: Callable[[NDArray, NDArray[np.float32]], NDArray[np.float32]] | None,
    images: Any,
    masks: Any,
    train_idx: Sequence[int],
    valid_idx: Sequence[int],
    *,
    threshold: float,
    min_object_pixels: int,
    c: float = 1.0,
    tolerance: float = 0.005,
    max_objects: int | str | None = None,
    batch: int = 16,
    breasts: Any = None,
    scorer: str = "logistic",
    seed: int = 0,
) -> FPReduction:
    """Run the trained network (and refiner) on the training and validation images and fit.

    Args:
        predict: ``(b, H, W)`` store images -> ``(b, H, W)`` probability maps.
        refine: ``(image, map)`` -> refined map, or ``None``.
        images: ``(n, H, W)`` store images.
        masks: ``(n, H, W)`` ground-truth mass masks.
        train_idx: Training cases (the scorer's examples).
        valid_idx: Validation cases (its operating point).
        threshold: Segmentation threshold that defines the objects.
        min_object_pixels: Smallest object, as in prediction.
        c: See :func:`fit_fp_reduction`.
        tolerance: See :func:`fit_fp_reduction`.
        max_objects: See :func:`fit_fp_reduction`.
        batch: Images per forward pass.
        breasts: ``(n, H, W)`` breast masks (``None``: each whole image is the breast).
        scorer: See :func:`fit_fp_reduction`.
        seed: See :func:`fit_fp_reduction`.
    """
    from mammo_common.cli_support import track

    def objects(indices: Sequence[int], what: str) -> ObjectSet:
        imgs, coarse, refined, truths, breast_masks = [], [], [], [], []
        order = list(indices)
        for start in track(range(0, len(order), batch), f"false-positive examples ({what})",
                           total=(len(order) + batch - 1) // batch):
            chunk = order[start : start + batch]
            x = np.stack([np.asarray(images[i]) for i in chunk])
            maps = predict(x)
            for j, i in enumerate(chunk):
                imgs.append(x[j])
                coarse.append(maps[j])
                refined.append(refine(x[j], maps[j]) if refine is not None else maps[j])
                truths.append(np.asarray(masks[i]) > 0)
                if breasts is not None:
                    breast_masks.append(np.asarray(breasts[i]) > 0)
        return collect_objects(imgs, coarse, refined, truths, threshold=threshold,
                               min_object_pixels=min_object_pixels,
                               breasts=breast_masks if breasts is not None else None)

    return fit_fp_reduction(objects(train_idx, "train"), objects(valid_idx, "valid"), c=c,
                            tolerance=tolerance, max_objects=max_objects, scorer=scorer,
                            seed=seed)
