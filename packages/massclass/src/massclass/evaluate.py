"""Evaluate a ``diagnosis`` store: classification metrics at case and mass level, ROC data and plot.

Case level (one row per case with a known truth): the case probability is its most malignant
mass; cases where segmentation found no mass count as benign with probability 0 (what the
pipeline told the user; ``missed: exclude`` leaves them out instead). Mass level: every
predicted mass that overlaps a ground-truth mass (read from the parent ``masses`` store when it
carries ``mass_masks``), labelled with its case's truth; masses without overlap are counted as
false detections and not classified.

Metrics (positive = malignant) at the store's threshold: accuracy, sensitivity, specificity,
precision, F1, MCC, Cohen's kappa, confusion matrix ``[[tn, fp], [fn, tp]]`` and ROC AUC with a
stratified percentile bootstrap confidence interval. Undefined values (one class only) are
written as ``null``. A store whose selected cases all have unknown truth (unlabelled images) is
refused with :class:`~mammo_common.errors.NoGroundTruthError`: there is nothing to compare against.

:func:`evaluate` takes an :class:`~massclass.config.EvaluateConfig` (settings and paths; e.g.
from :func:`mammo_common.params.load_section`); :func:`evaluate_paths` is the deprecated
keyword form.
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel

from mammo_common.cli_support import track
from mammo_common.errors import InputFileError, MammoError, NoGroundTruthError, StoreError
from mammo_common.metrics import bootstrap_ci, classification_report, roc_auc, roc_curve
from mammo_common.stage import split_cases
from mammo_common.store import DiagnosisStore, MassesStore, open_store, write_json_atomic
from massclass.config import EvaluateConfig, EvaluateSettings
from massclass.plots import draw_roc, roc_band

__all__ = [
    "CLASS_REFERENCE",
    "EvaluateResult",
    "evaluate",
    "evaluate_paths",
    "load_split_cases",
    "roc_points",
]

#: What the predictions are scored against (written as ``reference`` in the metrics file).
CLASS_REFERENCE = (
    "store pathology labels (each case record's pathology: biopsy, BI-RADS proxy or synthetic "
    "truth, see its pathology_source); mass level: overlap with the store's mass_masks"
)


class EvaluateResult(BaseModel):
    """What :func:`evaluate` wrote and found."""

    metrics_path: str
    roc_path: str | None = None
    roc_plot_path: str | None = None
    part: str
    n_cases: int
    n_evaluated: int
    n_no_mass_found: int
    n_unknown_truth: int
    threshold: float
    case_level: dict[str, Any]
    mass_level: dict[str, Any] | None = None


def _clean(value: Any) -> Any:
    """JSON-safe: NaN/inf -> None, numpy scalars -> Python."""
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


#: Case ids of ``part`` (``test``, ``valid``, ``train``, ``all``) of a splits file; the shared
#: :func:`mammo_common.stage.split_cases` (raises ``SplitsFileError``, an ``InputFileError``).
load_split_cases = split_cases


def roc_points(y_true: np.ndarray, y_prob: np.ndarray) -> list[dict[str, float | None]]:
    """ROC as a DVC-plots-friendly list of ``{fpr, tpr, threshold}`` (first threshold null)."""
    fpr, tpr, thr = roc_curve(y_true, y_prob)
    return [
        _clean({"fpr": float(f), "tpr": float(t), "threshold": float(h)})
        for f, t, h in zip(fpr, tpr, thr, strict=True)
    ]


def _report(
    y: np.ndarray, p: np.ndarray, threshold: float, cfg: EvaluateSettings
) -> dict[str, Any]:
    if y.size == 0:
        return {"n": 0, "note": "no case with a known truth"}
    rep = classification_report(y, p, threshold)
    ci = bootstrap_ci(
        roc_auc, y, p, n_resamples=cfg.n_bootstrap, confidence=cfg.confidence, seed=cfg.seed
    )
    rep["roc_auc_ci"] = [ci.low, ci.high]
    rep["roc_auc_bootstrap"] = ci.as_dict()
    return _clean(rep)


def _parent_masses(store: DiagnosisStore, masses: str | Path | None) -> MassesStore | None:
    if masses is not None:
        return open_store(masses, "masses")  # type: ignore[return-value]
    for parent in store.meta.parents:
        if parent.kind == "masses" and Path(parent.path).exists():
            try:
                found = open_store(parent.path, "masses")
            except StoreError:
                return None
            return found if found.digest == parent.digest else None  # type: ignore[return-value]
    return None


def _mass_level(
    store: DiagnosisStore,
    masses: MassesStore | None,
    selected: list[str],
    threshold: float,
    cfg: EvaluateSettings,
) -> dict[str, Any] | None:
    if masses is None or not masses.meta.has_mass_masks:
        return None
    position = {c: i for i, c in enumerate(masses.case_ids)}
    by_id = {d.case_id: d for d in store.meta.diagnoses}
    pred_arr, truth_arr = masses.array("mass_pred"), masses.array("mass_masks")
    y, p = [], []
    n_masses = n_false = 0
    for case_id in track(selected, "massclass evaluate (mass level)"):
        diag = by_id[case_id]
        if not diag.masses or diag.truth == "unknown" or case_id not in position:
            continue
        i = position[case_id]
        pred = np.asarray(pred_arr[i]) > 0
        truth = np.asarray(truth_arr[i]) > 0
        for mass in diag.masses:
            n_masses += 1
            y0, x0, y1, x1 = mass.bbox
            if not (pred[y0:y1, x0:x1] & truth[y0:y1, x0:x1]).any():
                n_false += 1
                continue
            y.append(1 if diag.truth == "malignant" else 0)
            p.append(mass.probability)
    rep = _report(np.asarray(y, dtype=np.int64), np.asarray(p, dtype=np.float64), threshold, cfg)
    rep["n_predicted_masses"] = n_masses
    rep["n_masses_without_truth_overlap"] = n_false
    rep["masses_store"] = str(masses.path)
    return rep


def evaluate(config: EvaluateConfig) -> EvaluateResult:
    """Compute the metrics of a ``diagnosis`` store and write them.

    Args:
        config: Bootstrap and missed-case settings and the paths: the ``diagnosis`` store
            (``data``), the metrics JSON (``out``), the optional ROC JSON (``roc``) and PNG
            (``roc_plot``), the optional splits file with ``part`` and ``fold``, and the
            ``masses`` store for mass-level metrics (default: the store's parent when it still
            exists unchanged).

    Returns:
        An :class:`EvaluateResult`.

    Raises:
        StoreError: Not a diagnosis store.
        SplitsFileError: Missing or invalid splits file, or a bad part or fold (an
            ``InputFileError``).
        InputFileError: No selected case in the store.
        NoGroundTruthError: No selected case has a known pathology (unlabelled images); nothing
            is written then.
    """
    cfg = config
    data, out, roc, roc_plot = config.data, config.out, config.roc, config.roc_plot
    splits, part, fold, masses = config.splits, config.part, config.fold, config.masses
    store: DiagnosisStore = open_store(data, "diagnosis")  # type: ignore[assignment]
    ids = store.case_ids
    if splits is not None:
        wanted = load_split_cases(splits, part, fold)
        present = set(ids)
        selected = [c for c in wanted if c in present]
        if not selected:
            raise InputFileError(
                f"none of the {len(wanted)} {part} cases of the splits file is in {data}",
                path=splits,
                fix="pass the splits file the pipeline used, or predict the right cases",
            )
        not_in_store = len(wanted) - len(selected)
    else:
        part = "all"
        selected, not_in_store = ids, 0
    threshold = float(store.meta.threshold)
    by_id = {d.case_id: d for d in store.meta.diagnoses}
    if all(by_id[c].truth == "unknown" for c in selected):
        which = "" if splits is None else f" among the {len(selected)} {part} cases"
        raise NoGroundTruthError.missing(
            f"known pathology{which} (every case's truth is 'unknown': its images were "
            "ingested without pathology)",
            needs="pathology (benign or malignant) per case",
            path=data,
            field="diagnoses.truth",
        )

    y, p, missed, unknown, excluded = [], [], [], [], []
    for case_id in selected:
        diag = by_id[case_id]
        if diag.truth == "unknown":
            unknown.append(case_id)
            continue
        if diag.label == "no_mass_found":
            missed.append(case_id)
            if cfg.missed == "exclude":
                excluded.append(case_id)
                continue
            prob = 0.0
        else:
            prob = float(diag.probability)  # type: ignore[arg-type]
        y.append(1 if diag.truth == "malignant" else 0)
        p.append(prob)
    y_arr, p_arr = np.asarray(y, dtype=np.int64), np.asarray(p, dtype=np.float64)
    case_level = _report(y_arr, p_arr, threshold, cfg)
    case_level["missed"] = cfg.missed

    try:
        masses_store = _parent_masses(store, masses)
    except MammoError:
        if masses is not None:
            raise
        masses_store = None
    mass_level = _mass_level(store, masses_store, selected, threshold, cfg)

    metrics = _clean(
        {
            "store": str(data),
            "reference": CLASS_REFERENCE,
            "part": part,
            "threshold": threshold,
            "threshold_method": store.meta.threshold_method,
            "n_cases": len(selected),
            "n_cases_in_splits_not_in_store": not_in_store,
            "n_evaluated": int(y_arr.size),
            "n_no_mass_found": len(missed),
            "n_no_mass_found_malignant": sum(by_id[c].truth == "malignant" for c in missed),
            "no_mass_found": missed,
            "n_unknown_truth": len(unknown),
            "case": case_level,
            "mass": mass_level,
            "producer": store.meta.producer.model_dump(mode="json"),
        }
    )
    write_json_atomic(out, metrics)

    roc_written = plot_written = None
    single = y_arr.size == 0 or y_arr.min() == y_arr.max()
    if roc is not None:
        write_json_atomic(roc, [] if y_arr.size == 0 else roc_points(y_arr, p_arr))
        roc_written = str(roc)
    if roc_plot is not None:
        fpr, tpr = (np.array([0.0, 1.0]), np.array([0.0, 1.0]))
        op = band = None
        if not single:
            fpr, tpr, _ = roc_curve(y_arr, p_arr)
            op = (1.0 - case_level["specificity"], case_level["sensitivity"])
            band = roc_band(y_arr, p_arr, n_resamples=cfg.n_bootstrap, seed=cfg.seed,
                            confidence=cfg.confidence)
        ci = case_level.get("roc_auc_ci") or [None, None]
        draw_roc(
            fpr,
            tpr,
            roc_plot,
            title=f"massclass, {part} cases (n={y_arr.size})",
            auc=case_level.get("roc_auc") if not single else None,
            ci=None if None in ci else tuple(ci),
            operating_point=op,
            band=band,
        )
        plot_written = str(roc_plot)
    return EvaluateResult(
        metrics_path=str(out),
        roc_path=roc_written,
        roc_plot_path=plot_written,
        part=part,
        n_cases=len(selected),
        n_evaluated=int(y_arr.size),
        n_no_mass_found=len(missed),
        n_unknown_truth=len(unknown),
        threshold=threshold,
        case_level=case_level,
        mass_level=mass_level,
    )


def evaluate_paths(
    data: str | Path,
    out: str | Path,
    *,
    roc: str | Path | None = None,
    roc_plot: str | Path | None = None,
    splits: str | Path | None = None,
    part: str = "test",
    fold: int | None = None,
    masses: str | Path | None = None,
    config: EvaluateSettings | None = None,
) -> EvaluateResult:
    """Deprecated: :func:`evaluate` with the paths as arguments.

    The signature ``massclass.evaluate.evaluate`` had before it took an
    :class:`EvaluateConfig`; the arguments are those of :class:`EvaluateConfig`.

    Returns:
        An :class:`EvaluateResult`.
    """
    warnings.warn(
        "massclass.evaluate.evaluate_paths(data, out, ...) is deprecated; use "
        "massclass.evaluate.evaluate(EvaluateConfig(data=, out=, ...))",
        DeprecationWarning,
        stacklevel=2,
    )
    settings = (config or EvaluateSettings()).model_dump(
        include=set(EvaluateSettings.model_fields)
    )
    return evaluate(EvaluateConfig(
        **settings, data=data, out=out, roc=roc, roc_plot=roc_plot, splits=splits, part=part,
        fold=fold, masses=masses,
    ))
