"""The breastseg plugin of ``mammo run`` (entry point ``mammo.stages: breastseg``).

On one native mammogram: the breast probability map of the chosen model folders (averaged),
the breast mask (threshold of the first card, then the post-processing of
:mod:`breastseg.postprocess` with ``breastseg predict``'s default settings: thin artefacts cut
off, the breast's component kept, holes filled, the chest-wall side from the case's laterality
when the case carries one, else inferred from the mask), then the background blanked and the
breast cropped and resized to ``case.work_size``: exactly what ``breastseg predict --method
unet`` stores for a case.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["BreastsegStage", "plugin"]


class BreastsegStage:
    """Stage 1 of ``mammo run``."""

    name = "breastseg"
    order = 1
    requires: tuple[str, ...] = ()
    selection_metric = "val_dice"

    def run(self, case: Any, model_dirs: Sequence[Path]) -> None:
        """Fill ``work_image``, ``transform``, ``breast_mask`` and ``work_breast_mask``.

        The laterality (``L``/``R``) is read from ``case.laterality`` (``mammo run`` takes it
        from the DICOM header or the file name) when the case has one; post-processing notes
        (a laterality the image contradicts, a mask covering the image border) go to
        ``case.notes``.
        """
        from breastseg._keras import load_breast_model
        from breastseg.config import PredictConfig
        from breastseg.segment import crop_case, segment_checked
        from mammo_common.keras.deployment.inference import predict_probabilities
        from mammo_common.keras.deployment.optimize import inference_model

        loaded = [load_breast_model(folder) for folder in model_dirs]
        models = [inference_model(model)[0] for model, _ in loaded]
        card = loaded[0][1]
        prob = predict_probabilities(models, case.image[None])[0]
        defaults = PredictConfig.model_fields
        segmented, _ = segment_checked(
            case.image, prob, card.threshold,
            postprocess=defaults["postprocess"].get_default(call_default_factory=True),
            labeller=defaults["labeller"].get_default(call_default_factory=True),
            labeller_fallback=defaults["labeller_fallback"].default,
            laterality=getattr(case, "laterality", None),
        )
        case.notes.extend(
            f"breastseg: {note}" for note in segmented.notes if not note.startswith("empty")
        )
        mask = segmented.mask
        cropped = crop_case(
            case.image, mask, None, output_size=tuple(case.work_size),
            margin=float(defaults["margin"].default),
            normalize=str(defaults["normalize"].default),
        )
        if cropped.empty:
            case.notes.append("breastseg found no breast; the whole image was kept")
        case.breast_mask = None if cropped.empty else mask
        case.work_breast_mask = None if cropped.empty else cropped.breast_mask
        case.work_image = cropped.image
        case.transform = cropped.transform
        case.model_ids[self.name] = [c.model_id for _, c in loaded]


plugin = BreastsegStage()
