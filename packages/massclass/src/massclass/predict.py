"""Prediction: a ``diagnosis`` store from a ``masses`` store and one or more model folders.

For each case: every predicted mass (a connected component of ``mass_pred``, cut as the model
card's ROI settings say) gets a malignancy probability (the mean over the models when several
are given: a fold ensemble) and a label at the threshold; the case probability is that of its
most malignant mass. Cases whose segmentation found no mass are written with label
``no_mass_found`` and no probability, and counted.

Thresholds: a number (default 0.5), ``youden`` (the threshold each model card recorded from its
fold's validation masses; the mean over an ensemble) or ``card`` (the card's own threshold).
Prediction always uses the predicted masks, whatever ROI source the model was trained on.

:func:`predict` takes a :class:`~massclass.config.PredictConfig` (settings, model folders,
input and output; e.g. from :func:`mammo_common.params.load_section`);
:func:`predict_paths` is the deprecated positional form. Keras is imported when prediction
runs, not with this module.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel

from mammo_common.cli_support import track
from mammo_common.errors import InputFileError, ModelFolderError
from mammo_common.schema import CaseDiagnosis, MassDiagnosis, Producer
from mammo_common.schema.model_card import ModelCard
from mammo_common.store import MassesStore, open_store, write_diagnosis_store
from mammo_common.store.atomic import check_output_path
from massclass import __version__
from massclass.config import PredictConfig, PredictSettings, RoiConfig
from massclass.rois import case_label, extract_rois
from massclass.train import predict_rois

__all__ = ["PredictResult", "predict", "predict_paths", "resolve_threshold"]

logger = logging.getLogger("mammo")


class PredictResult(BaseModel):
    """What :func:`predict` wrote."""

    out: str
    model_ids: list[str]
    n_cases: int
    n_masses: int
    n_no_mass_found: int
    no_mass_found: list[str]
    n_malignant_cases: int
    threshold: float
    threshold_method: str


#: Cases whose ROIs are cut and classified together (memory stays flat beyond this).
CASES_PER_CHUNK = 16


def _roi_config(card: ModelCard, where: Path) -> RoiConfig:
    try:
        roi = RoiConfig.model_validate(card.training.get("roi", {}))
    except ValueError as exc:
        raise ModelFolderError(f"the card's training.roi is invalid ({exc})", path=where,
                               field="training.roi", fix="re-train the model") from None
    return roi.model_copy(update={"source": "pred"})


def resolve_threshold(cards: list[ModelCard], threshold: float | str) -> tuple[float, str]:
    """The threshold to apply and its method (``fixed``, ``youden``, ``card``).

    Raises:
        ModelFolderError: ``youden`` asked but a card has no validation Youden threshold.
    """
    if isinstance(threshold, int | float):
        return float(threshold), "fixed"
    if threshold == "card":
        return float(np.mean([c.threshold for c in cards])), "card"
    values = []
    for card in cards:
        if "youden_threshold" not in card.metrics:
            raise ModelFolderError(
                "the model card has no Youden threshold (its validation fold held one class)",
                path=card.model_id, field="metrics.youden_threshold",
                fix="use --threshold 0.5, or re-train with both classes in the validation fold",
            )
        values.append(card.metrics["youden_threshold"])
    return float(np.clip(np.mean(values), 1e-6, 1 - 1e-6)), "youden"


def predict(config: PredictConfig) -> PredictResult:
    """Classify every predicted mass of a ``masses`` store and write a ``diagnosis`` store.

    Args:
        config: Threshold, batch size, precision, the model folders (``models``, written by
            ``massclass train``; several: averaged), the ``masses`` store (``data``), the
            ``diagnosis`` store to write atomically (``out``) and ``overwrite``.

    Returns:
        A :class:`PredictResult`.

    Raises:
        ModelFolderError: Missing or foreign model folder, or no Youden threshold.
        StoreError: Not a masses store.
        MammoError: The output exists (without ``overwrite``) or would overwrite the input.
    """
    from mammo_common.keras.deployment.model_folder import load_model_folder
    from mammo_common.keras.deployment.optimize import inference_model

    models = list(config.models)
    if not models:  # a model_construct'ed config; validation refuses an empty list
        raise InputFileError("no model folder given", fix="pass --model DIR (one or more)")
    data, out, overwrite = Path(config.data), Path(config.out), config.overwrite
    check_output_path(out, overwrite=overwrite, inputs=(data,))
    cards: list[ModelCard] = []
    loaded = []
    for folder in models:
        model, card = load_model_folder(folder, expected_stage="massclass")
        model, _ = inference_model(
            model, precision=config.precision, fold_batchnorm=config.fold_batchnorm
        )
        loaded.append((Path(folder), model, card))
        cards.append(card)
    threshold, method = resolve_threshold(cards, config.threshold)
    store: MassesStore = open_store(data, "masses")  # type: ignore[assignment]

    # Stream over the store in chunks of cases so memory stays flat in the number of cases:
    # only one chunk's ROIs (and one batch's activations) are held at a time.
    found: list[tuple[str, int, tuple[int, int, int, int], int, float]] = []
    missed: list[str] = []
    starts = range(0, len(store.case_ids), CASES_PER_CHUNK)
    for start in track(starts, f"massclass predict ({CASES_PER_CHUNK} cases a step)"):
        ids = store.case_ids[start:start + CASES_PER_CHUNK]
        probs: np.ndarray | None = None
        rois = None
        cache: dict[str, Any] = {}
        for folder, model, card in loaded:
            roi_cfg = _roi_config(card, folder)
            size = int(card.input_shape[0] or 224)
            key = f"{roi_cfg.model_dump_json()}|{size}"
            if key not in cache:
                cache[key] = extract_rois(store, roi_cfg, size=size, case_ids=ids)
            these = cache[key]
            if rois is None:
                rois = these
            elif these.case_ids != rois.case_ids or these.mass_index != rois.mass_index:
                raise ModelFolderError(  # pragma: no cover - same store, same components
                    "the models find different masses (their ROI min_pixels differ)",
                    path=folder, field="training.roi.min_pixels",
                    fix="ensemble models trained with the same ROI settings",
                )
            if len(these):
                p = predict_rois(model, these.images, batch_size=config.batch_size)
                probs = p if probs is None else probs + p
        assert rois is not None
        missed.extend(rois.missed)
        if probs is not None:
            probs = probs / len(loaded)
            found.extend(
                (rois.case_ids[k], rois.mass_index[k], rois.bboxes[k], rois.areas[k],
                 float(probs[k]))
                for k in range(len(rois))
            )
        del cache, rois, probs
    bwc = _roi_config(cards[0], Path(models[0])).benign_without_callback

    per_case: dict[str, list[MassDiagnosis]] = {c: [] for c in store.case_ids}
    for case_id, mass_index, bbox, area, raw in found:
        prob = float(np.clip(raw, 0.0, 1.0))
        per_case[case_id].append(MassDiagnosis(
            mass_index=mass_index, bbox=bbox, area=area,
            probability=prob, label="malignant" if prob >= threshold else "benign",
        ))
    diagnoses, records = [], store.cases
    for record in records:
        masses = per_case[record.case_id]
        label = case_label(record, bwc)
        truth = "unknown" if not np.isfinite(label) else ("malignant" if label == 1 else "benign")
        if masses:
            prob = max(m.probability for m in masses)
            diagnoses.append(CaseDiagnosis(
                case_id=record.case_id, masses=masses, probability=prob,
                label="malignant" if prob >= threshold else "benign", truth=truth,
            ))
        else:
            diagnoses.append(CaseDiagnosis(case_id=record.case_id, label="no_mass_found",
                                           truth=truth))
    model_ids = [c.model_id for c in cards]
    producer = Producer(
        package="mammo-massclass", version=__version__, command="massclass predict",
        model_ids=model_ids,
        params={"threshold": threshold, "threshold_method": method,
                "models": [str(m) for m in models], "batch_size": config.batch_size,
                "precision": config.precision, "fold_batchnorm": config.fold_batchnorm},
    )
    write_diagnosis_store(
        out, cases=records, diagnoses=diagnoses, producer=producer,
        parents=[store.as_parent()], threshold=threshold, threshold_method=method,
        overwrite=overwrite, inputs=(data,),
    )
    if missed:
        logger.warning("%d case(s) without a predicted mass: %s", len(missed),
                       ", ".join(missed[:10]))
    return PredictResult(
        out=str(out), model_ids=model_ids, n_cases=len(records), n_masses=len(found),
        n_no_mass_found=len(missed), no_mass_found=list(missed),
        n_malignant_cases=sum(d.label == "malignant" for d in diagnoses),
        threshold=threshold, threshold_method=method,
    )


def predict_paths(
    models: list[str | Path],
    data: str | Path,
    out: str | Path,
    config: PredictSettings | None = None,
    *,
    overwrite: bool = False,
) -> PredictResult:
    """Deprecated: :func:`predict` with the model folders, input and output as arguments.

    The signature ``massclass.predict.predict`` had before it took a :class:`PredictConfig`.

    Args:
        models: Model folders written by ``massclass train`` (several: averaged).
        data: The ``masses`` store.
        out: The ``diagnosis`` store to write (atomically).
        config: Threshold and batch size (a :class:`PredictSettings`; a
            :class:`PredictConfig`'s paths are replaced by the arguments).
        overwrite: Replace an existing output.

    Returns:
        A :class:`PredictResult`.
    """
    warnings.warn(
        "massclass.predict.predict_paths(models, data, out, config) is deprecated; use "
        "massclass.predict.predict(PredictConfig(models=, data=, out=, ...))",
        DeprecationWarning,
        stacklevel=2,
    )
    settings = (config or PredictSettings()).model_dump(include=set(PredictSettings.model_fields))
    if not models:
        raise InputFileError("no model folder given", fix="pass --model DIR (one or more)")
    return predict(PredictConfig(**settings, models=list(models), data=data, out=out,
                                 overwrite=overwrite))
