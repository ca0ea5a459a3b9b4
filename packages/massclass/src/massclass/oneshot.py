"""The massclass plugin of ``mammo run`` (entry point ``mammo.stages: massclass``).

Each mass found by mass segmentation is cut as the model cards' ROI settings say (square crop
around the mass with the card's margin, the work image divided by its maximum, resized to the
model input), classified by every chosen fold (probabilities averaged) and labelled at
``massclass predict``'s default threshold: what ``massclass predict`` writes for the case.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["MassclassStage", "plugin"]


class MassclassStage:
    """Stage 3 of ``mammo run``."""

    name = "massclass"
    order = 3
    requires: tuple[str, ...] = ("mass_pred",)
    selection_metric = "valid_roc_auc"

    def run(self, case: Any, model_dirs: Sequence[Path]) -> None:
        """Set ``probability`` and ``label`` of every mass of ``case`` and ``case.threshold``."""
        from mammo_common.keras.deployment.model_folder import load_model_folder
        from mammo_common.keras.deployment.optimize import inference_model
        from massclass.config import PredictSettings
        from massclass.predict import _roi_config, resolve_threshold
        from massclass.rois import _scaled, crop_roi
        from massclass.train import predict_rois

        loaded = []
        for folder in model_dirs:
            model, card = load_model_folder(folder, expected_stage="massclass")
            loaded.append((Path(folder), inference_model(model)[0], card))
        cards = [card for _, _, card in loaded]
        threshold, _ = resolve_threshold(cards, PredictSettings().threshold)
        case.threshold = threshold
        case.model_ids[self.name] = [c.model_id for c in cards]
        if not case.masses:
            return
        image = _scaled(np.asarray(case.work_image))
        total = np.zeros(len(case.masses), np.float64)
        for folder, model, card in loaded:
            roi = _roi_config(card, folder)
            size = int(card.input_shape[0] or 224)
            rois = np.stack([
                crop_roi(image, m.component, size=size, margin=roi.margin,
                         min_side=roi.min_side, representation=roi.representation,
                         outline=roi.outline)
                for m in case.masses
            ])
            total += predict_rois(model, rois)
        for mass, p in zip(case.masses, total / len(loaded), strict=True):
            mass.probability = float(np.clip(p, 0.0, 1.0))
            mass.label = "malignant" if mass.probability >= threshold else "benign"


plugin = MassclassStage()
