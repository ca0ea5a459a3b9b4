"""``breastseg evaluate``: Dice and Jaccard of the stage's breast masks, per case and mean.

Example:
    >>> from breastseg.config import EvaluateConfig
    >>> from breastseg.evaluate import evaluate
    >>> result = evaluate(EvaluateConfig(  # doctest: +SKIP
    ...     model="models/breastseg/unet5l/fold_1", data="mammograms.zarr",
    ...     splits="splits.json", part="test", out="metrics/breastseg.json",
    ...     plot="plots/breastseg_best_worst.png"))

The scored mask is exactly the one ``breastseg predict`` uses (threshold, largest component,
holes filled), at the mammogram's native resolution. The reference is the store's breast mask;
where the store has none (or with ``reference="labeller"``) it is the threshold labeller's mask,
and the metrics say so (``reference``, ``n_reference_store``, ``n_reference_labeller``). A store
without any ground truth (no breast mask, mass mask or pathology in any case: unlabelled images)
is refused with :class:`~mammo_common.errors.NoGroundTruthError` unless ``reference="labeller"``
asks for the labeller's stand-in explicitly; ``reference="store"`` is refused when no case has a
breast mask.

Outputs, written atomically:

* ``out``: flat metrics for ``dvc metrics`` (``dice_mean``, ``jaccard_mean``, ``n_cases``, ...).
* the per-case file (``<out stem>.cases.json``): one row per case.
* ``plot`` (optional): PNG of the best and the worst cases (matplotlib), reference contour
  in cyan, prediction in orange, the case id and Dice above each.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict

from breastseg import __version__
from breastseg.config import EvaluateConfig
from breastseg.labeller import label_breast
from breastseg.segment import Segmenter, make_segmenter, segment_checked
from breastseg.train import check_cases
from mammo_common.cli_support import track
from mammo_common.errors import ConfigError, NoGroundTruthError, StoreError
from mammo_common.metrics import dice, jaccard
from mammo_common.stage import CaseScore, split_cases
from mammo_common.store import MammogramsStore, open_store, write_json_atomic

__all__ = [
    "CaseScore",
    "EvaluateResult",
    "evaluate",
    "require_ground_truth",
    "select_cases",
]


class EvaluateResult(BaseModel):
    """What ``evaluate`` measured and wrote.

    Attributes:
        metrics: The flat metrics written to ``out``.
        cases: Per-case scores (as in the per-case file).
        out: Metrics JSON.
        per_case: Per-case JSON.
        plot: PNG (None when not asked for).
    """

    model_config = ConfigDict(extra="forbid")

    metrics: dict[str, Any]
    cases: list[CaseScore]
    out: Path
    per_case: Path
    plot: Path | None


def select_cases(
    config: EvaluateConfig, store: MammogramsStore, card_fold: int | None
) -> list[str]:
    """Case ids of the requested part (``all``: every case of the store, in store order).

    Raises:
        SplitsFileError: Missing or invalid splits file, no fold for ``valid``/``train``, or
            no such fold (:func:`mammo_common.stage.split_cases`).
        ConfigError: ``test`` asked of a splits file without a test set.
        StoreError: Cases of the part missing from the store.
    """
    if config.part == "all":
        return store.case_ids
    assert config.splits is not None
    ids = split_cases(config.splits, config.part, config.fold or card_fold)
    if config.part == "test" and not ids:
        raise ConfigError(
            "the splits file has no test set",
            path=config.splits,
            fix="use --part valid (with --fold) or --part all",
        )
    check_cases(store, ids, config.part)
    return ids


def _reference(
    store: MammogramsStore, case_id: str, image: np.ndarray, config: EvaluateConfig
) -> tuple[np.ndarray, str]:
    mask = None if config.reference == "labeller" else store.array(case_id, "breast_mask")
    if mask is not None:
        return mask, "store"
    if config.reference == "store":
        raise StoreError(
            "has no breast_mask to score against",
            path=store.path,
            field=f"cases/{case_id}/breast_mask",
            fix="use --reference auto (the threshold labeller fills in) or labeller",
        )
    laterality = store.record(case_id).laterality
    return (
        label_breast(image, config.labeller, postprocess=config.postprocess, laterality=laterality),
        "labeller",
    )


def _has_array(store: MammogramsStore, name: str) -> bool:
    return any(name in store.group[f"cases/{case_id}"] for case_id in store.case_ids)


def require_ground_truth(store: MammogramsStore, reference: str) -> None:
    """Refuse a store that holds nothing to compare against with ``reference``.

    Args:
        store: The ``mammograms`` store.
        reference: ``auto``, ``store`` or ``labeller`` (never refused).

    Raises:
        NoGroundTruthError: ``store`` without any breast mask, or ``auto`` on a store without
            any ground truth (no breast mask, mass mask or known pathology in any case).
    """
    if reference == "labeller":
        return
    if _has_array(store, "breast_mask"):
        return
    if reference == "store":
        raise NoGroundTruthError.missing(
            "breast masks (no case has a breast_mask)",
            needs="breast masks",
            path=store.path,
            field="cases/*/breast_mask",
            fix="use --reference auto or labeller (the threshold labeller's masks stand in), "
            "or evaluate a store ingested with breast masks",
        )
    if _has_array(store, "mass_mask") or any(r.pathology != "unknown" for r in store.records()):
        return  # an annotated dataset without breast outlines (CBIS-DDSM): the labeller stands in
    raise NoGroundTruthError.missing(
        "ground truth of any kind (no breast_mask, mass_mask or pathology in any case: "
        "unlabelled images)",
        needs="breast masks",
        path=store.path,
        field="cases",
        fix="evaluate a store ingested with labels; to measure agreement with the threshold "
        "labeller instead (a stand-in, not ground truth) pass --reference labeller; for "
        "unlabelled images run predict and read the findings with `mammo results`",
    )


def _predict_mask(
    segmenter: Segmenter, image: np.ndarray, config: EvaluateConfig, laterality: str | None = None
) -> tuple[np.ndarray, bool]:
    """The mask ``breastseg predict`` would store, and whether it is the labeller's fallback."""
    segmented, replaced = segment_checked(
        image, segmenter.probabilities(image), config.threshold, postprocess=config.postprocess,
        labeller=config.labeller,
        labeller_fallback=config.labeller_fallback if config.method == "unet" else None,
        laterality=laterality,
    )
    return segmented.mask, replaced


def _summary(values: list[float]) -> dict[str, float]:
    arr = np.asarray(values, dtype=np.float64)
    return {
        "mean": float(arr.mean()),
        "std": float(arr.std()),
        "median": float(np.median(arr)),
        "min": float(arr.min()),
        "max": float(arr.max()),
    }


def _plot(
    path: Path,
    store: MammogramsStore,
    segmenter: Segmenter,
    scores: list[CaseScore],
    config: EvaluateConfig,
) -> Path:
    from mammo_common.plots import save_png
    from mammo_common.viz import Panel, draw_panels

    ranked = sorted(scores, key=lambda s: s.dice, reverse=True)
    n = min(config.n_plot, len(ranked))
    best = ranked[:n]
    worst = [s for s in ranked[::-1][:n] if s not in best]
    panels = []
    for tag, group in (("best", best), ("worst", worst)):
        for score in group:
            image = store.array(score.case_id, "image")
            ref, _ = _reference(store, score.case_id, image, config)
            pred, _ = _predict_mask(
                segmenter, image, config, store.record(score.case_id).laterality
            )
            panels.append(Panel(image, {"truth": ref, "pred": pred},
                                f"{tag}: {score.case_id}\nDice {score.dice:.3f}"))
    return save_png(draw_panels(panels, columns=max(1, n), panel_px=224), path)


def evaluate(config: EvaluateConfig) -> EvaluateResult:
    """Score the stage's breast masks on a part of the splits.

    Args:
        config: Validated settings.

    Returns:
        Metrics and per-case scores (also written to disk).

    Raises:
        StoreError: Invalid store, cases missing from it, or no reference mask with
            ``reference="store"``.
        NoGroundTruthError: Nothing to compare against (see :func:`require_ground_truth`).
        SplitsFileError: Missing or invalid splits file, or a bad fold.
        ConfigError: An empty part, or a plot path that is not a PNG.
        ModelFolderError: Missing or incompatible model folder.
    """
    if config.plot is not None and config.plot.suffix.lower() != ".png":
        raise ConfigError("the plot is a PNG", path=config.plot, fix="give a path ending in .png")
    store = open_store(config.data, "mammograms")
    assert isinstance(store, MammogramsStore)
    require_ground_truth(store, config.reference)
    segmenter = make_segmenter(
        config.method,
        config.model,
        tta_flips=config.tta,
        batch_size=config.batch_size,
        labeller=config.labeller,
        precision=config.precision,
        fold_batchnorm=config.fold_batchnorm,
        postprocess=config.postprocess,
    )
    card = getattr(segmenter, "card", None)
    card_fold = card.data.fold if card is not None else None
    case_ids = select_cases(config, store, card_fold)
    if not case_ids:
        raise ConfigError(f"part {config.part!r} holds no case", fix="choose another part")

    scores: list[CaseScore] = []
    fallback: list[str] = []
    for case_id in track(case_ids, "breastseg evaluate"):
        image = store.array(case_id, "image")
        ref, source = _reference(store, case_id, image, config)
        pred, replaced = _predict_mask(segmenter, image, config, store.record(case_id).laterality)
        if replaced:
            fallback.append(case_id)
        scores.append(
            CaseScore(
                case_id=case_id,
                dice=dice(pred, ref),
                jaccard=jaccard(pred, ref),
                reference=source,
                pred_pixels=int(pred.sum()),
                reference_pixels=int(np.asarray(ref).astype(bool).sum()),
                empty_prediction=not pred.any(),
            )
        )

    n_store = sum(s.reference == "store" for s in scores)
    n_label = len(scores) - n_store
    reference = "store" if n_label == 0 else "labeller" if n_store == 0 else "mixed"
    d = _summary([s.dice for s in scores])
    j = _summary([s.jaccard for s in scores])
    metrics: dict[str, Any] = {
        "dice_mean": d["mean"],
        "dice_std": d["std"],
        "dice_median": d["median"],
        "dice_min": d["min"],
        "dice_max": d["max"],
        "jaccard_mean": j["mean"],
        "jaccard_std": j["std"],
        "jaccard_min": j["min"],
        "n_cases": len(scores),
        "n_empty_predictions": sum(s.empty_prediction for s in scores),
        "n_labeller_fallback": len(fallback),
        "labeller_fallback_cases": fallback,
        "n_reference_store": n_store,
        "n_reference_labeller": n_label,
        "reference": reference,
        "part": config.part,
        "method": config.method,
        "model_id": card.model_id if card is not None else None,
        "threshold": config.threshold,
    }
    if config.part in ("valid", "train"):
        metrics["fold"] = config.fold or card_fold
    for key, value in metrics.items():
        if isinstance(value, float) and not math.isfinite(value):
            metrics[key] = None
    write_json_atomic(config.out, metrics)
    per_case = config.per_case_path
    write_json_atomic(
        per_case,
        {
            "producer": {"package": "mammo-breastseg", "version": __version__},
            "metrics_file": str(config.out),
            "cases": [s.model_dump() for s in scores],
        },
    )
    plot = None
    if config.plot is not None:
        plot = _plot(Path(config.plot), store, segmenter, scores, config)
    return EvaluateResult(
        metrics=metrics, cases=scores, out=config.out, per_case=per_case, plot=plot
    )
