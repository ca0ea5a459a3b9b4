"""Segment the masses of a ``breast`` store with one model folder or an ensemble of folds.

For each batch of cases (constant memory): the images are scaled as in training, resized to
the models' input, run through every model (and with ``tta`` through their left-right and
up-down flips, un-flipped), the sigmoid maps averaged and resized back to the store's size.
When the models were trained with a refiner (:mod:`massseg.refine`), every object of the
thresholded map is redrawn at full resolution by it (``refine: false`` skips that); when they
were trained with false-positive reduction (:mod:`massseg.fp_reduction`), the objects their
scorer rejects are removed (``fp_reduction: false`` keeps them). The map is
thresholded (default: the models' card threshold, 0.5), objects under ``min_object_pixels``
(30) removed and, optionally, only the largest object kept.

The output ``masses`` store carries the breast store's images, breast masks and ground-truth
mass masks (when present) with ``mass_probs`` (float16) and ``mass_pred`` (uint8 0/1), its
producer (model ids, parameters) and its parent (the breast store). It is written atomically.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict

from mammo_common.errors import ModelFolderError
from mammo_common.postprocess import binarize, largest_component, remove_small_objects
from mammo_common.schema import Producer
from mammo_common.schema.model_card import read_model_card
from mammo_common.store import BreastStore, StackedStoreWriter, open_store
from mammo_common.store.atomic import check_output_path
from massseg import __version__
from massseg.config import PredictConfig

__all__ = ["PredictResult", "check_ensemble", "postprocess", "predict"]


class PredictResult(BaseModel):
    """What ``massseg predict`` wrote.

    Attributes:
        out: The ``masses`` store.
        n_cases: Cases segmented.
        model_ids: Ids of the models (``massseg/<arch>/fold_<k>``), in ensemble order.
        input_shape: Shared model input (H, W, C).
        threshold: Threshold applied.
        tta: Whether flip test-time augmentation was used.
        min_object_pixels: Smallest object kept.
        largest_component: Whether only the largest object was kept.
        cases_with_mass: Cases with at least one predicted mass pixel.
        mean_mass_pixels: Mean predicted mass area (pixels) per case.
    """

    model_config = ConfigDict(extra="forbid")

    out: Path
    n_cases: int
    model_ids: list[str]
    input_shape: tuple[int, int, int]
    threshold: float
    tta: bool
    min_object_pixels: int
    largest_component: bool
    cases_with_mass: int
    mean_mass_pixels: float


def postprocess(
    prob: np.ndarray,
    threshold: float = 0.5,
    min_object_pixels: int = 30,
    keep_largest: bool = False,
) -> np.ndarray:
    """Binary uint8 mask: ``prob >= threshold``, small objects removed, optionally largest only."""
    mask = binarize(prob, threshold)
    if min_object_pixels > 1:
        mask = remove_small_objects(mask, min_object_pixels)
    if keep_largest:
        mask = largest_component(mask)
    return mask.astype(np.uint8)


def check_ensemble(folders: list[Path]) -> tuple[list[Any], tuple[int, int, int], float]:
    """Read every model card and check they can be ensembled (before loading any model).

    Returns:
        ``(cards, input_shape, card_threshold)``.

    Raises:
        ModelFolderError: Missing folder/card, another stage, or models whose input size,
            channels or normalisation differ.
    """
    cards = []
    for folder in folders:
        card = read_model_card(folder)
        if card.stage != "massseg":
            raise ModelFolderError(
                f"this is a {card.stage} model ({card.model_id}), not a massseg model",
                path=folder, field="stage", fix="point --model to a folder under models/massseg/",
            )
        cards.append(card)
    first = cards[0]
    for folder, card in zip(folders[1:], cards[1:], strict=True):
        for field in ("input_shape", "normalization"):
            if getattr(card, field) != getattr(first, field):
                raise ModelFolderError(
                    f"cannot ensemble models with different {field}: "
                    f"{getattr(first, field)} ({folders[0]}) vs {getattr(card, field)}",
                    path=folder,
                    field=field,
                    fix="ensemble only folds trained with the same input size and channels",
                )
    shape = tuple(int(d) for d in first.input_shape)  # type: ignore[arg-type]
    return cards, shape, float(first.threshold)  # type: ignore[return-value]


def predict(config: PredictConfig) -> PredictResult:
    """Run ``massseg predict``: write the ``masses`` store of ``config.data``.

    Raises:
        MammoError: Missing/wrong-kind store, missing or incompatible model folders, an
            existing output (without ``overwrite``); nothing is written then.
    """
    store = open_store(config.data, "breast")
    assert isinstance(store, BreastStore)
    check_output_path(config.out, overwrite=config.overwrite, inputs=(config.data,))
    folders = list(config.models)
    cards, shape, card_threshold = check_ensemble(folders)
    threshold = config.threshold if config.threshold is not None else card_threshold
    if config.threshold is None and len({card.threshold for card in cards}) > 1:
        raise ModelFolderError(
            f"the models' cards give different thresholds {sorted({c.threshold for c in cards})}",
            path=folders[0], field="threshold", fix="choose one with --threshold",
        )

    # Keras is imported only once the inputs are known to be good.
    from mammo_common.cli_support import track
    from mammo_common.keras.deployment.inference import predict_probabilities
    from mammo_common.keras.deployment.model_folder import load_model_folder
    from mammo_common.keras.deployment.optimize import inference_model
    from massseg.models import MODEL_NAMES

    for card in cards:  # importing a network's module registers its classes for loading
        if card.architecture in MODEL_NAMES:
            importlib.import_module(f"massseg.models.{card.architecture}")
    models = []
    folded = 0
    for folder in folders:
        model = load_model_folder(folder, "massseg", known_architectures=MODEL_NAMES)[0]
        model, report = inference_model(
            model, precision=config.precision, fold_batchnorm=config.fold_batchnorm
        )
        models.append(model)
        folded += len(report.folded)
    refiners = None
    if config.refine:
        from massseg.refine import load_refiners

        refiners = load_refiners(folders, cards, precision=config.precision,
                                 fold_batchnorm=config.fold_batchnorm)
    scorers = None
    if config.fp_reduction:
        from massseg.fp_reduction import load_fp_reductions, reject_objects

        scorers = load_fp_reductions(folders, cards)
    model_ids = [card.model_id for card in cards] + (refiners.model_ids if refiners else [])
    params: dict[str, Any] = {
        "models": [str(f) for f in folders],
        "threshold": threshold,
        "min_object_pixels": config.min_object_pixels,
        "largest_component": config.largest_component,
        "tta": config.tta,
        "precision": config.precision,
        "batchnorms_folded": folded,
        "input_shape": list(shape),
        "ensemble": "mean of probabilities",
        "refine": (
            {"margin": refiners.margin, "size": refiners.size} if refiners is not None else None
        ),
        "fp_reduction": (
            {"thresholds": [s.threshold for s in scorers],
             "max_objects": [s.max_objects for s in scorers]}
            if scorers is not None else None
        ),
    }
    producer = Producer(
        package="mammo-massseg",
        version=__version__,
        command="massseg predict",
        model_ids=model_ids,
        params=params,
    )
    carry = ["images", "breast_masks"] + (["mass_masks"] if store.meta.has_mass_masks else [])
    n = len(store)
    areas: list[int] = []
    with StackedStoreWriter(
        config.out,
        kind="masses",
        n_cases=n,
        image_size=store.image_size,
        producer=producer,
        parents=[store.as_parent()],
        with_mass_masks=store.meta.has_mass_masks,
        meta_fields={
            "threshold": threshold,
            "min_object_pixels": config.min_object_pixels,
            "largest_component": config.largest_component,
            "tta": config.tta,
        },
        overwrite=config.overwrite,
        inputs=(config.data,),
    ) as writer:
        cases, transforms = store.cases, store.transforms
        starts = range(0, n, config.batch_size)
        for start in track(starts, "massseg predict", total=len(starts)):
            stop = min(n, start + config.batch_size)
            batch = {name: np.asarray(store.array(name)[start:stop]) for name in carry}
            probs = predict_probabilities(
                models,
                batch["images"],
                input_size=shape[:2],
                channels=shape[2],
                tta_flips=config.tta,
                batch_size=config.batch_size,
            )
            for k in range(stop - start):
                prob = probs[k]
                if refiners is not None:
                    prob = refiners(batch["images"][k], prob, threshold=threshold,
                                    min_object_pixels=config.min_object_pixels)
                if scorers is not None:
                    prob = reject_objects(scorers, batch["images"][k], probs[k], prob,
                                          threshold=threshold,
                                          min_object_pixels=config.min_object_pixels,
                                          breast=batch["breast_masks"][k])
                pred = postprocess(prob, threshold, config.min_object_pixels,
                                   config.largest_component)
                areas.append(int(pred.sum()))
                writer.write_case(
                    start + k,
                    cases[start + k],
                    transforms[start + k],
                    **{name: batch[name][k] for name in carry},
                    mass_probs=prob.astype(np.float16),
                    mass_pred=pred,
                )
    return PredictResult(
        out=config.out,
        n_cases=n,
        model_ids=model_ids,
        input_shape=shape,
        threshold=threshold,
        tta=config.tta,
        min_object_pixels=config.min_object_pixels,
        largest_component=config.largest_component,
        cases_with_mass=sum(a > 0 for a in areas),
        mean_mass_pixels=float(np.mean(areas)) if areas else 0.0,
    )
