"""The massseg plugin of ``mammo run`` (entry point ``mammo.stages: massseg``).

On the work image (the breast crop, or the whole image without breastseg): the mean mass
probability map of the chosen fold ensemble, thresholded at the cards' threshold, objects
under 30 pixels removed (``massseg predict``'s defaults), every object redrawn by the models'
refiners when they have them (:mod:`massseg.refine`), the objects their false-positive scorer
rejects removed (:mod:`massseg.fp_reduction`), and one mass per connected object.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["MasssegStage", "plugin"]


class MasssegStage:
    """Stage 2 of ``mammo run``."""

    name = "massseg"
    order = 2
    requires: tuple[str, ...] = ("work_image",)
    selection_metric = "best_val_dice"

    def run(self, case: Any, model_dirs: Sequence[Path]) -> None:
        """Fill ``mass_probs``, ``mass_pred`` and ``masses`` of ``case``."""
        from mammo_common.keras.deployment.inference import predict_probabilities
        from mammo_common.keras.deployment.model_folder import load_model_folder
        from mammo_common.keras.deployment.optimize import inference_model
        from mammo_common.oneshot import MassFinding
        from mammo_common.postprocess import components
        from massseg.config import PredictSettings
        from massseg.fp_reduction import load_fp_reductions, reject_objects
        from massseg.models import MODEL_NAMES
        from massseg.predict import check_ensemble, postprocess
        from massseg.refine import load_refiners

        folders = list(model_dirs)
        cards, shape, threshold = check_ensemble(folders)
        for card in cards:
            if card.architecture in MODEL_NAMES:
                importlib.import_module(f"massseg.models.{card.architecture}")
        settings = PredictSettings()
        models = [
            inference_model(
                load_model_folder(f, "massseg", known_architectures=MODEL_NAMES)[0],
                precision=settings.precision, fold_batchnorm=settings.fold_batchnorm,
            )[0]
            for f in folders
        ]
        prob = predict_probabilities(
            models, case.work_image[None], input_size=shape[:2], channels=shape[2]
        )[0]
        refiners = load_refiners(folders, cards, precision=settings.precision,
                                 fold_batchnorm=settings.fold_batchnorm)
        coarse = prob
        if refiners is not None:
            prob = refiners(case.work_image, prob, threshold=threshold,
                            min_object_pixels=settings.min_object_pixels)
        scorers = load_fp_reductions(folders, cards)
        if scorers is not None:
            prob = reject_objects(scorers, case.work_image, coarse, prob, threshold=threshold,
                                  min_object_pixels=settings.min_object_pixels,
                                  breast=getattr(case, "work_breast_mask", None))
        pred = postprocess(prob, threshold, settings.min_object_pixels, settings.largest_component)
        case.mass_probs = prob
        case.mass_pred = pred
        case.min_object_pixels = settings.min_object_pixels
        case.masses = [
            MassFinding(index=c.label, bbox=c.bbox, area=c.area, component=c)
            for c in components(pred > 0, min_pixels=settings.min_object_pixels)
        ]
        case.model_ids[self.name] = [c.model_id for c in cards]


plugin = MasssegStage()
