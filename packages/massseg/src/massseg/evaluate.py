"""Score a ``masses`` store against its ground truth (the reference protocol), or summarise a CV.

Per image: Dice and Jaccard of the post-processed binary prediction (``mass_pred``) against
the ground-truth mask, and the exact pixel ROC AUC of the probability map (``mass_probs``);
then their means over the images *with a mass* (the reference's definition: every CBIS-DDSM
mass image has one; ``dice_mean``, ``jaccard_mean``, ``auc_mean``, ``dice_sd``, ``dice_median``).
Images without a mass cannot be scored by Dice (empty truth and empty prediction is a perfect
1, which would inflate the mean by the share of normal images), so they are reported apart:
``n_images_without_mass``, ``empty_images_clean`` (share of them with an empty prediction) and
``false_positive_pixels_mean``; ``dice_mean_all_images`` is the mean over every image with the
1-for-empty convention, for comparison with tools that report it. Pooled variants treat all
pixels of all images as one image. ``*_unprocessed`` keys score the raw thresholded
probabilities, before small-object removal / largest-component selection.

Everything streams case by case; only a few numbers per case are kept.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from mammo_common.cli_support import track
from mammo_common.errors import MammoError, NoGroundTruthError, StoreError
from mammo_common.metrics import BinnedAUC
from mammo_common.metrics.segmentation import (
    dice_from_counts,
    jaccard_from_counts,
    nanmean,
    overlap_counts,
    pixel_auc,
)
from mammo_common.stage import CaseScore, split_cases
from mammo_common.store import MassesStore, open_store, write_json_atomic, write_text_atomic
from massseg.config import EvaluateConfig

__all__ = [
    "MASS_REFERENCE",
    "CaseScore",
    "EvaluateResult",
    "SegmentationScores",
    "evaluate",
    "score_store",
    "select_cases",
]

#: What the mass masks are scored against (written as ``reference`` in every metrics file).
MASS_REFERENCE = "store mass_masks (ground truth)"


class SegmentationScores(BaseModel):
    """Scores of a set of images: flat ``metrics`` (for DVC) and the per-case table."""

    model_config = ConfigDict(extra="forbid")

    metrics: dict[str, float | int | None]
    cases: list[CaseScore]


class EvaluateResult(BaseModel):
    """What ``massseg evaluate`` produced.

    Attributes:
        mode: ``"store"`` (a masses store was scored) or ``"cv"`` (a CV folder summarised).
        metrics: Flat metrics written to ``out`` (NaN written as ``null``).
        n_cases: Images scored (store mode) or folds summarised (cv mode).
        out: The metrics JSON.
        per_case: The per-case JSON, if written.
        markdown: The Markdown table, if written.
        overlays: PNG overlays written (best, median, worst).
    """

    model_config = ConfigDict(extra="forbid")

    mode: str
    metrics: dict[str, float | int | str | None]
    n_cases: int
    out: Path
    per_case: Path | None = None
    markdown: Path | None = None
    overlays: list[Path] = Field(default_factory=list)


def _clean(value: float | None) -> float | int | None:
    if value is None:
        return None
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def select_cases(
    store: MassesStore, splits: Path | None, part: str | None, fold: int | None
) -> list[int]:
    """Store indices of the cases to score (all, or one part of the splits).

    Raises:
        SplitsFileError: Missing or invalid splits file, or a bad part or fold
            (:func:`mammo_common.stage.split_cases`).
        StoreError: Cases of the part missing from the store.
        MammoError: An empty part.
    """
    if part is None:
        return list(range(len(store)))
    assert splits is not None
    ids = split_cases(splits, part, fold)
    position = {cid: i for i, cid in enumerate(store.case_ids)}
    missing = [c for c in ids if c not in position]
    if missing:
        raise StoreError(
            f"{len(missing)} of the {len(ids)} {part} cases are not in the store "
            f"(first: {missing[:3]})",
            path=store.path,
            fix="predict the store from the same breast store the splits were made for",
        )
    if not ids:
        raise MammoError(f"the {part} part is empty", path=splits, fix="choose another part")
    return [position[c] for c in ids]


def _require_truth(store: MassesStore) -> None:
    if not store.meta.has_mass_masks:
        raise NoGroundTruthError.missing(
            "ground-truth mass masks (mass_masks; its images were ingested without ROI masks)",
            needs="mass masks",
            path=store.path,
            field="mass_masks",
            fix="score a masses store predicted from annotated images (ingest with ROI masks); "
            "for unlabelled images read the findings with `mammo results` after massclass "
            "predict",
        )


def score_store(store: MassesStore, indices: list[int] | None = None) -> SegmentationScores:
    """Score the cases ``indices`` (default all) of a ``masses`` store, streaming.

    Raises:
        NoGroundTruthError: If the store has no ground-truth ``mass_masks``.
    """
    _require_truth(store)
    indices = list(range(len(store))) if indices is None else indices
    if not indices:
        raise MammoError("no case to score", path=store.path, fix="check the store and part")
    threshold = float(store.meta.threshold)
    probs_arr, pred_arr, truth_arr = (
        store.array("mass_probs"), store.array("mass_pred"), store.array("mass_masks")
    )
    pooled_auc = BinnedAUC("float16")
    totals = np.zeros(3, dtype=np.int64)
    raw_totals = np.zeros(3, dtype=np.int64)
    cases: list[CaseScore] = []
    raw_jaccard: list[float] = []
    for i in track(indices, "massseg evaluate"):
        prob = np.asarray(probs_arr[i])
        pred = np.asarray(pred_arr[i]).astype(bool)
        truth = np.asarray(truth_arr[i]).astype(bool)
        counts = overlap_counts(pred, truth)
        raw = overlap_counts(prob, truth, threshold=threshold)
        totals += counts
        raw_totals += raw
        auc = pixel_auc(prob, truth)
        pooled_auc.update(prob, truth)
        raw_jaccard.append(jaccard_from_counts(*raw))
        cases.append(
            CaseScore(
                case_id=store.case_ids[i],
                dice=dice_from_counts(*counts),
                jaccard=jaccard_from_counts(*counts),
                auc=None if math.isnan(auc) else auc,
                dice_unprocessed=dice_from_counts(*raw),
                truth_pixels=counts[2],
                pred_pixels=counts[1],
            )
        )
    with_mass = [c for c in cases if c.truth_pixels > 0]
    without = [c for c in cases if c.truth_pixels == 0]
    dice = [c.dice for c in with_mass]
    aucs = [math.nan if c.auc is None else c.auc for c in with_mass]
    metrics: dict[str, Any] = {
        "n_images": len(cases),
        "n_images_with_mass": len(with_mass),
        "n_images_without_mass": len(without),
        "n_auc_defined": sum(c.auc is not None for c in cases),
        "threshold": threshold,
        "dice_mean": nanmean(dice),
        "dice_sd": float(np.std(dice, ddof=1)) if len(dice) > 1 else 0.0,
        "dice_median": float(np.median(dice)) if dice else None,
        "jaccard_mean": nanmean([c.jaccard for c in with_mass]),
        "auc_mean": nanmean(aucs),
        "dice_pooled": dice_from_counts(*totals.tolist()),
        "jaccard_pooled": jaccard_from_counts(*totals.tolist()),
        "auc_pooled": pooled_auc.compute(),
        "dice_mean_unprocessed": nanmean([c.dice_unprocessed for c in with_mass]),
        "jaccard_mean_unprocessed": nanmean(
            [j for c, j in zip(cases, raw_jaccard, strict=True) if c.truth_pixels > 0]
        ),
        "dice_pooled_unprocessed": dice_from_counts(*raw_totals.tolist()),
        "dice_mean_all_images": nanmean([c.dice for c in cases]),
        "empty_images_clean": (
            sum(c.pred_pixels == 0 for c in without) / len(without) if without else None
        ),
        "false_positive_pixels_mean": (
            float(np.mean([c.pred_pixels for c in without])) if without else None
        ),
    }
    return SegmentationScores(metrics={k: _clean(v) for k, v in metrics.items()}, cases=cases)


def _markdown_metrics(metrics: dict[str, Any], title: str) -> str:
    lines = [f"# {title}", "", "| metric | value |", "|---|---|"]
    for key, value in metrics.items():
        text = "n/a" if value is None else (f"{value:.4f}" if isinstance(value, float) else value)
        lines.append(f"| {key} | {text} |")
    return "\n".join(lines) + "\n"


def _check_outputs(config: EvaluateConfig, inputs: list[Path]) -> None:
    for path in (config.out, config.per_case, config.markdown):
        if path is None:
            continue
        if any(path.resolve() == p.resolve() for p in inputs):
            raise MammoError("an output would overwrite an input", path=path,
                             fix="choose another output path")


def evaluate(config: EvaluateConfig) -> EvaluateResult:
    """Run ``massseg evaluate``: score a masses store, or summarise a CV folder.

    Outputs are written only after every score is computed, each file atomically.

    Raises:
        NoGroundTruthError: The store has no ground-truth mass masks (unlabelled images).
        MammoError: On a missing/wrong-kind store or bad splits.
    """
    if config.cv is not None:
        return _evaluate_cv(config)
    assert config.data is not None
    store = open_store(config.data, "masses")
    assert isinstance(store, MassesStore)
    _check_outputs(config, [config.data])
    _require_truth(store)  # before the splits: an unlabelled store fails for this reason
    indices = select_cases(store, config.splits, config.part, config.fold)
    scores = score_store(store, indices)
    metrics: dict[str, Any] = {**scores.metrics, "reference": MASS_REFERENCE}
    overlay_paths: list[Path] = []
    write_json_atomic(config.out, metrics)
    if config.per_case is not None:
        write_json_atomic(config.per_case, [c.model_dump() for c in scores.cases])
    if config.markdown is not None:
        write_text_atomic(config.markdown, _markdown_metrics(metrics, "Mass segmentation"))
    if config.overlays_dir is not None and config.overlays > 0:
        overlay_paths = _write_overlays(store, indices, scores.cases, config)
    return EvaluateResult(
        mode="store",
        metrics=metrics,
        n_cases=len(scores.cases),
        out=config.out,
        per_case=config.per_case,
        markdown=config.markdown,
        overlays=overlay_paths,
    )


def _write_overlays(
    store: MassesStore, indices: list[int], cases: list[CaseScore], config: EvaluateConfig
) -> list[Path]:
    from massseg.overlays import draw_overlay, pick_cases, write_overlay

    assert config.overlays_dir is not None
    with_mass = [k for k, c in enumerate(cases) if c.truth_pixels > 0]
    pool = with_mass or list(range(len(cases)))
    picks = pick_cases([cases[k].dice for k in pool], config.overlays)
    config.overlays_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for label, chosen in picks.items():
        for rank, k in enumerate(chosen, start=1):
            case = cases[pool[k]]
            i = indices[pool[k]]
            image = draw_overlay(
                np.asarray(store.array("images")[i]),
                np.asarray(store.array("mass_masks")[i]),
                np.asarray(store.array("mass_pred")[i]),
                f"{label} {rank}: {case.case_id}  Dice {case.dice:.3f}",
            )
            suffix = f"_{rank}" if config.overlays > 1 else ""
            path = config.overlays_dir / f"{label}{suffix}_{case.case_id}.png"
            written.append(write_overlay(path, image))
    return written


def _evaluate_cv(config: EvaluateConfig) -> EvaluateResult:
    from massseg.cv import cv_markdown, summarise_cv

    assert config.cv is not None
    summary = summarise_cv(config.cv)
    metrics = {**summary.flat_metrics(), "reference": MASS_REFERENCE}
    write_json_atomic(config.out, metrics)
    if config.per_case is not None:
        write_json_atomic(config.per_case, [row.model_dump(mode="json") for row in summary.folds])
    if config.markdown is not None:
        write_text_atomic(config.markdown, cv_markdown(summary))
    return EvaluateResult(
        mode="cv",
        metrics=metrics,
        n_cases=len(summary.folds),
        out=config.out,
        per_case=config.per_case,
        markdown=config.markdown,
    )


def read_metrics(path: str | Path) -> dict[str, Any]:
    """Read a metrics JSON written by :func:`evaluate`."""
    return json.loads(Path(path).read_text(encoding="utf-8"))
