"""The classification ceiling the synthetic generator allows: an oracle given its own labels.

``mammo synth`` draws each mass's BI-RADS shape and margins from tables that depend on its
pathology, with a deliberate overlap (``mammo_common.synth.cases.OVERLAP``: the probability that
a lesion takes the other pathology's typical shape, and independently its margins). An image
model can at best recover those descriptors from the pixels, so a classifier given the
descriptors themselves bounds what the demo's ``massclass`` can reach on synthetic data.

The oracle: one-hot shape + one-hot margins -> scikit-learn ``LogisticRegression``, malignant
vs benign (``BENIGN_WITHOUT_CALLBACK`` is benign). Reported:

(a) on a large sample of lesions drawn with ``sample_lesion`` (default 20,000): the pooled
    out-of-fold ROC AUC of a stratified 5-fold cross-validation (and the per-fold mean and
    sd); the Bayes AUC, i.e. the AUC of the posterior P(malignant | shape, margins) read from
    the sample's empirical joint table; and the same Bayes AUC computed exactly from the
    generator's tables (``analytic``: the two descriptors are drawn independently given the
    pathology, so the cell probabilities are products). Shape and margins being independent
    given pathology, the log-odds are additive in the one-hot features: the logistic
    regression is the Bayes classifier's family and matches its AUC.
(b) on a synthetic dataset folder (``--data``, default ``data/raw``; its two CSVs): fit on
    the Training CSV, score the Test CSV; mass level (one row per mass) and case level as
    ``massclass evaluate`` computes it (one score per image with a mass: the maximum over
    its masses; truth: malignant if any of its masses is), with a stratified percentile
    bootstrap 95% CI (seeded; ``mammo_common.metrics.bootstrap_ci``, stratified percentile).
    Also the generator's exact posterior as score (no fitting: the ceiling on that test set).
    When the pipeline's ``splits.json`` sits next to the folder (``data/splits.json``), the
    same again on its test cases (fit on every other case): that is the test set the demo's
    ``metrics/massclass.json`` reports on. The oracle detects every mass; the pipeline
    scores a case whose mass it missed as benign with probability 0.

A second oracle takes every generator descriptor (shape, margins, subtlety, assessment, all
one-hot). BI-RADS assessment is drawn from the pathology directly and leaks the label: that
line is an upper reference, not a target.

``--overlap-sweep`` sets ``OVERLAP`` to each of ``--overlaps`` (monkeypatched in the module)
and reports the large-sample oracle for each, plus the analytic Bayes AUC over a fine grid and
the OVERLAP interval that puts it in ``--target`` (default 0.92-0.97).

Nothing is trained on images; the script takes seconds. Writes ``bench/results/oracle_auc.json``.

Usage::

    .venv/bin/python bench/oracle_auc.py                       # (a) + (b) on data/raw
    .venv/bin/python bench/oracle_auc.py --overlap-sweep       # + OVERLAP 0.05..0.3
    .venv/bin/python bench/oracle_auc.py --data /tmp/raw --n 50000 --seed 1
"""

from __future__ import annotations

import argparse
import contextlib
import csv
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import _demo_runner as R
import numpy as np

SHAPE_MARGINS = ("shape", "margins")
ALL_DESCRIPTORS = ("shape", "margins", "subtlety", "assessment")
RENDERED = ("shape", "margins", "subtlety", "size")
#: Columns of :func:`sample_lesions`.
SAMPLE_COLUMNS = ("shape", "margins", "subtlety", "assessment", "size")
LEAKY = "all descriptors (assessment leaks the label)"
FEATURE_SETS: dict[str, tuple[str, ...]] = {
    "shape+margins": SHAPE_MARGINS,
    "image-visible: shape, margins, subtlety, size (large sample only)": RENDERED,
    LEAKY: ALL_DESCRIPTORS,
}
#: Quantile bins of the mass size (a one-hot feature like the others).
SIZE_BINS = 20
#: CSV column of each descriptor.
CSV_COLUMNS = {"shape": "mass shape", "margins": "mass margins", "subtlety": "subtlety",
               "assessment": "assessment"}
DEFAULT_OVERLAPS = (0.05, 0.10, 0.15, 0.18, 0.20, 0.25, 0.30)


# --------------------------------------------------------------------------- generator side


@contextlib.contextmanager
def patched_overlap(value: float | None) -> Iterator[float]:
    """Temporarily sets ``mammo_common.synth.cases.OVERLAP`` (``None``: leave it)."""
    from mammo_common.synth import cases

    old = cases.OVERLAP
    if value is not None:
        cases.OVERLAP = float(value)
    try:
        yield cases.OVERLAP
    finally:
        cases.OVERLAP = old


def _lesion_size(lesion: Any) -> float:
    """The lesion's size, whichever field the generator has (``diameter_mm``, ``size_frac``)."""
    for name in ("diameter_mm", "size_frac"):
        if hasattr(lesion, name):
            return float(getattr(lesion, name))
    return 0.0  # no size field: one bin, the feature carries nothing


def sample_lesions(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` lesions from ``sample_lesion``: descriptors and labels (1 = malignant).

    Returns:
        ``(x, y)``: ``x`` is n x 5 strings in :data:`SAMPLE_COLUMNS` order, the size as its
        quantile bin (:data:`SIZE_BINS` bins over the sample).
    """
    from mammo_common.synth.cases import sample_lesion

    rng = np.random.default_rng(seed)
    rows, sizes, y = [], [], []
    for _ in range(n):
        lesion = sample_lesion(rng)
        rows.append([lesion.shape, lesion.margins, str(lesion.subtlety), str(lesion.assessment)])
        sizes.append(_lesion_size(lesion))
        y.append(1 if lesion.pathology == "MALIGNANT" else 0)
    edges = np.quantile(sizes, np.linspace(0, 1, SIZE_BINS + 1)[1:-1])
    bins = np.searchsorted(edges, sizes)
    x = np.asarray([[*r, f"size{b:02d}"] for r, b in zip(rows, bins, strict=True)], dtype=object)
    return x, np.asarray(y, dtype=np.int64)


def _table(pairs: Sequence[tuple[str, float]]) -> dict[str, float]:
    total = sum(p for _, p in pairs)
    return {name: p / total for name, p in pairs}


def _mix(typical: dict[str, float], other: dict[str, float], overlap: float) -> dict[str, float]:
    keys = set(typical) | set(other)
    return {k: (1 - overlap) * typical.get(k, 0.0) + overlap * other.get(k, 0.0) for k in keys}


def generator_tables(overlap: float | None = None) -> dict[str, dict[str, dict[str, float]]]:
    """P(shape | pathology) and P(margins | pathology) as ``sample_lesion`` draws them.

    Args:
        overlap: The overlap to assume (default: the module's ``OVERLAP``).

    Returns:
        ``{"malignant"|"benign": {"shape": {...}, "margins": {...}}}``.
    """
    from mammo_common.synth import cases as K

    o = K.OVERLAP if overlap is None else overlap
    ms, bs = _table(K.MALIGNANT_SHAPES), _table(K.BENIGN_SHAPES)
    mm, bm = _table(K.MALIGNANT_MARGINS), _table(K.BENIGN_MARGINS)
    return {
        "malignant": {"shape": _mix(ms, bs, o), "margins": _mix(mm, bm, o)},
        "benign": {"shape": _mix(bs, ms, o), "margins": _mix(bm, mm, o)},
    }


def generator_posterior(shape: np.ndarray, margins: np.ndarray,
                        overlap: float | None = None) -> np.ndarray:
    """P(malignant | shape, margins) under the generator's tables and ``P_MALIGNANT``."""
    from mammo_common.synth import cases as K

    t = generator_tables(overlap)
    prior = K.P_MALIGNANT
    out = np.empty(len(shape), dtype=np.float64)
    for i, (s, m) in enumerate(zip(shape, margins, strict=True)):
        pm = prior * t["malignant"]["shape"].get(s, 0.0) * t["malignant"]["margins"].get(m, 0.0)
        pb = (1 - prior) * t["benign"]["shape"].get(s, 0.0) * t["benign"]["margins"].get(m, 0.0)
        out[i] = pm / (pm + pb) if pm + pb > 0 else prior
    return out


def auc_from_cells(pos: np.ndarray, neg: np.ndarray) -> float:
    """AUC of the likelihood-ratio score over discrete cells with masses ``pos``/``neg``.

    Ties (cells with the same ratio) count one half, as in the empirical AUC.
    """
    pos = np.asarray(pos, dtype=np.float64)
    neg = np.asarray(neg, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        score = np.round(pos / (pos + neg), 12)
    keep = (pos + neg) > 0
    pos, neg, score = pos[keep], neg[keep], score[keep]
    greater = (score[:, None] > score[None, :]).astype(np.float64)
    equal = (score[:, None] == score[None, :]).astype(np.float64)
    num = float(pos @ (greater + 0.5 * equal) @ neg)
    return num / float(pos.sum() * neg.sum())


def analytic_bayes_auc(overlap: float | None = None) -> float:
    """Exact AUC of P(malignant | shape, margins) under the generator's tables."""
    t = generator_tables(overlap)
    shapes = sorted(set(t["malignant"]["shape"]) | set(t["benign"]["shape"]))
    margins = sorted(set(t["malignant"]["margins"]) | set(t["benign"]["margins"]))
    pos = [t["malignant"]["shape"].get(s, 0) * t["malignant"]["margins"].get(m, 0)
           for s in shapes for m in margins]
    neg = [t["benign"]["shape"].get(s, 0) * t["benign"]["margins"].get(m, 0)
           for s in shapes for m in margins]
    return auc_from_cells(np.asarray(pos), np.asarray(neg))


# --------------------------------------------------------------------------- classifiers


def auc(y: np.ndarray, p: np.ndarray) -> float | None:
    """ROC AUC (Mann-Whitney, ties count one half), ``None`` when only one class is present."""
    from scipy.stats import rankdata

    y = np.asarray(y)
    if y.size == 0 or y.min() == y.max():
        return None
    ranks = rankdata(np.asarray(p, dtype=np.float64))
    n_pos = int(y.sum())
    n_neg = y.size - n_pos
    return float((ranks[y == 1].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def make_oracle(c: float) -> Any:
    """One-hot encoder -> logistic regression (categories unseen in training are ignored)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder

    return make_pipeline(OneHotEncoder(handle_unknown="ignore"),
                         LogisticRegression(C=c, max_iter=2000))


def cv_auc(x: np.ndarray, y: np.ndarray, *, folds: int, seed: int, c: float) -> dict[str, Any]:
    """Stratified k-fold AUC of the oracle: pooled out-of-fold and per fold."""
    from sklearn.model_selection import StratifiedKFold

    oof = np.empty(len(y), dtype=np.float64)
    per_fold = []
    for train, test in StratifiedKFold(folds, shuffle=True, random_state=seed).split(x, y):
        model = make_oracle(c).fit(x[train], y[train])
        oof[test] = model.predict_proba(x[test])[:, 1]
        per_fold.append(auc(y[test], oof[test]))
    vals = np.asarray([v for v in per_fold if v is not None])
    return {"auc_pooled": auc(y, oof), "auc_fold_mean": float(vals.mean()),
            "auc_fold_sd": float(vals.std(ddof=1)) if vals.size > 1 else None,
            "auc_folds": per_fold, "folds": folds}


def _cell_keys(x: np.ndarray) -> np.ndarray:
    return np.asarray(["|".join(map(str, row)) for row in x])


def bayes_auc_empirical(x: np.ndarray, y: np.ndarray) -> dict[str, Any]:
    """AUC of the posterior read from the sample's own joint table (in-sample)."""
    keys = _cell_keys(x)
    cells, inverse = np.unique(keys, return_inverse=True)
    n_pos = np.bincount(inverse, weights=y, minlength=len(cells))
    n_all = np.bincount(inverse, minlength=len(cells))
    posterior = n_pos / n_all
    return {"auc": auc(y, posterior[inverse]), "n_cells": len(cells),
            "min_cell_count": int(n_all.min())}


def bayes_auc_crossfit(x: np.ndarray, y: np.ndarray, *, folds: int, seed: int) -> float | None:
    """AUC of the joint-table posterior estimated on the other folds (add-one smoothed)."""
    from sklearn.model_selection import StratifiedKFold

    keys = _cell_keys(x)
    oof = np.empty(len(y), dtype=np.float64)
    for train, test in StratifiedKFold(folds, shuffle=True, random_state=seed).split(x, y):
        prior = y[train].mean()
        counts: dict[str, list[float]] = {}
        for k, label in zip(keys[train], y[train], strict=True):
            c = counts.setdefault(k, [0.0, 0.0])
            c[0] += label
            c[1] += 1
        for i in test:
            pos, n = counts.get(keys[i], [0.0, 0.0])
            oof[i] = (pos + prior) / (n + 1.0)
    return auc(y, oof)


def bootstrap_auc(y: np.ndarray, p: np.ndarray, *, n_resamples: int, seed: int,
                  confidence: float = 0.95) -> dict[str, Any]:
    """AUC with the stratified percentile bootstrap interval of ``bootstrap_ci`` (seeded)."""
    from mammo_common.metrics import bootstrap_ci, roc_auc

    y = np.asarray(y, dtype=np.int64)
    p = np.asarray(p, dtype=np.float64)
    est = auc(y, p)
    out: dict[str, Any] = {"auc": est, "n": int(y.size), "n_malignant": int(y.sum()),
                           "n_benign": int(y.size - y.sum()), "ci": [None, None],
                           "n_resamples": n_resamples, "seed": seed, "confidence": confidence}
    if est is None:
        return out
    ci = bootstrap_ci(roc_auc, y, p, n_resamples=n_resamples, seed=seed, stratified=True,
                      confidence=confidence)
    out["ci"] = [float(ci.low), float(ci.high)]
    return out


# --------------------------------------------------------------------------- dataset side


def read_masses(csv_path: Path) -> list[dict[str, str]]:
    """The mass rows of a CBIS-style case-description CSV, with a ``case_id`` and a ``y``."""
    with csv_path.open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    out = []
    for row in rows:
        row = {k.strip(): (v or "").strip() for k, v in row.items() if k}
        pathology = row.get("pathology", "").upper()
        if pathology not in ("MALIGNANT", "BENIGN", "BENIGN_WITHOUT_CALLBACK"):
            continue
        pid, side, view = row["patient_id"], row["left or right breast"], row["image view"]
        row["case_id"] = f"{pid}_{side.upper()}_{view.upper()}"
        row["y"] = "1" if pathology == "MALIGNANT" else "0"
        out.append(row)
    return out


def _features(rows: Sequence[dict[str, str]], names: Sequence[str]) -> np.ndarray:
    return np.asarray([[r.get(CSV_COLUMNS[n], "") or "NA" for n in names] for r in rows],
                      dtype=object).reshape(len(rows), len(names))


def case_level(rows: Sequence[dict[str, str]], scores: np.ndarray) -> tuple[np.ndarray, ...]:
    """Per image: truth malignant if any mass is, score the maximum over its masses."""
    by_case: dict[str, tuple[int, float]] = {}
    for row, s in zip(rows, scores, strict=True):
        y0, s0 = by_case.get(row["case_id"], (0, -np.inf))
        by_case[row["case_id"]] = (max(y0, int(row["y"])), max(s0, float(s)))
    ids = sorted(by_case)
    return (np.asarray([by_case[c][0] for c in ids]), np.asarray([by_case[c][1] for c in ids]))


def evaluate_split(train: list[dict[str, str]], test: list[dict[str, str]], *, c: float,
                   n_resamples: int, seed: int) -> dict[str, Any]:
    """Fit on ``train`` masses, score ``test``: every oracle at mass and case level."""
    y_tr = np.asarray([int(r["y"]) for r in train])
    y_te = np.asarray([int(r["y"]) for r in test])
    scorers: dict[str, np.ndarray] = {}
    for label, names in FEATURE_SETS.items():
        if y_tr.min() == y_tr.max() or any(n not in CSV_COLUMNS for n in names):
            continue
        model = make_oracle(c).fit(_features(train, names), y_tr)
        scorers[f"{label}, LR fit on train"] = model.predict_proba(_features(test, names))[:, 1]
    x = _features(test, SHAPE_MARGINS)
    scorers["shape+margins, generator posterior (no fit)"] = generator_posterior(x[:, 0], x[:, 1])
    out: dict[str, Any] = {"n_train_masses": len(train),
                           "n_train_malignant": int(y_tr.sum()), "n_test_masses": len(test),
                           "oracles": {}}
    for name, s in scorers.items():
        yc, sc = case_level(test, s)
        out["oracles"][name] = {
            "mass": bootstrap_auc(y_te, s, n_resamples=n_resamples, seed=seed),
            "case": bootstrap_auc(yc, sc, n_resamples=n_resamples, seed=seed),
        }
    return out


def dataset_oracle(data: Path, splits: Path | None, *, c: float, n_resamples: int,
                   seed: int) -> dict[str, Any]:
    """(b): the oracle on a synthetic dataset folder, CSV split and (if given) pipeline split."""
    train_csv = data / "mass_case_description_train_set.csv"
    test_csv = data / "mass_case_description_test_set.csv"
    train, test = read_masses(train_csv), read_masses(test_csv)
    import hashlib

    out: dict[str, Any] = {"data": str(data), "csv_sha256": {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in (train_csv, test_csv)},
        "csv_split": evaluate_split(
        train, test, c=c, n_resamples=n_resamples, seed=seed)}
    if splits is not None:
        import json

        test_ids = set(json.loads(splits.read_text(encoding="utf-8"))["test"])
        rows = train + test
        out["pipeline_split"] = evaluate_split(
            [r for r in rows if r["case_id"] not in test_ids],
            [r for r in rows if r["case_id"] in test_ids],
            c=c, n_resamples=n_resamples, seed=seed)
        out["pipeline_split"]["splits"] = str(splits)
        out["pipeline_split"]["n_test_cases_in_splits"] = len(test_ids)
    return out


# --------------------------------------------------------------------------- large sample


def large_sample(n: int, seed: int, folds: int, c: float) -> dict[str, Any]:
    """(a): both oracles on ``n`` lesions from ``sample_lesion`` (current ``OVERLAP``)."""
    from mammo_common.synth import cases

    x, y = sample_lesions(n, seed)
    out: dict[str, Any] = {"n": n, "seed": seed, "overlap": cases.OVERLAP,
                           "p_malignant_sample": float(y.mean()), "oracles": {}}
    for label, names in FEATURE_SETS.items():
        cols = [SAMPLE_COLUMNS.index(k) for k in names]
        xs = x[:, cols]
        out["oracles"][label] = {
            "features": list(names),
            "lr_cv": cv_auc(xs, y, folds=folds, seed=seed, c=c),
            "bayes_empirical": bayes_auc_empirical(xs, y),
            "bayes_crossfit_auc": bayes_auc_crossfit(xs, y, folds=folds, seed=seed),
            "bayes_analytic_auc": analytic_bayes_auc() if names == SHAPE_MARGINS else None,
        }
    return out


def overlap_sweep(values: Sequence[float], n: int, seed: int, folds: int, c: float,
                  target: tuple[float, float]) -> dict[str, Any]:
    """The large-sample oracle for each OVERLAP, and the OVERLAP interval that hits ``target``."""
    rows = []
    for v in values:
        with patched_overlap(v):
            R.log(f"OVERLAP={v}: {n} lesions")
            res = large_sample(n, seed, folds, c)
        sm = res["oracles"]["shape+margins"]
        rendered = res["oracles"][next(k for k, v in FEATURE_SETS.items() if v == RENDERED)]
        rows.append({"overlap": v, "lr_cv_auc": sm["lr_cv"]["auc_pooled"],
                     "bayes_empirical_auc": sm["bayes_empirical"]["auc"],
                     "bayes_analytic_auc": sm["bayes_analytic_auc"],
                     "rendered_lr_cv_auc": rendered["lr_cv"]["auc_pooled"],
                     "all_descriptors_lr_cv_auc": res["oracles"][LEAKY]["lr_cv"]["auc_pooled"]})
    grid = [round(float(g), 3) for g in np.arange(0.0, 0.5001, 0.005)]
    curve = [{"overlap": g, "bayes_analytic_auc": analytic_bayes_auc(g)} for g in grid]
    inside = [p["overlap"] for p in curve if target[0] <= p["bayes_analytic_auc"] <= target[1]]
    return {"values": rows, "analytic_curve": curve, "target": list(target),
            "overlap_interval_for_target": [min(inside), max(inside)] if inside else None}


# --------------------------------------------------------------------------- main


def _fmt_ci(res: dict[str, Any]) -> str:
    lo, hi = res["ci"]
    return "n/a" if lo is None else f"[{lo:.3f}, {hi:.3f}]"


def main(argv: Sequence[str] | None = None) -> None:
    """Parse arguments, compute, print the tables, write the JSON."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--n", type=int, default=20_000, help="lesions in the large sample")
    p.add_argument("--folds", type=int, default=5, help="cross-validation folds")
    p.add_argument("--seed", type=int, default=0, help="sample, folds and bootstrap seed")
    p.add_argument("--C", dest="c", type=float, default=1.0,
                   help="inverse L2 strength of the logistic regression")
    p.add_argument("--data", type=Path, default=R.REPO / "data" / "raw",
                   help="synthetic dataset folder (its two CSVs); skipped when missing")
    p.add_argument("--splits", type=Path, default=None,
                   help="pipeline splits.json (default: splits.json next to --data, if any)")
    p.add_argument("--no-splits", action="store_true", help="only the CSV Training/Test split")
    p.add_argument("--n-bootstrap", type=int, default=2000, help="bootstrap resamples of the CI")
    p.add_argument("--overlap-sweep", action="store_true",
                   help="also the large-sample oracle for each of --overlaps")
    p.add_argument("--overlaps", default=",".join(str(v) for v in DEFAULT_OVERLAPS),
                   help="comma-separated OVERLAP values of the sweep")
    p.add_argument("--target", default="0.92,0.97",
                   help="oracle AUC band the sweep looks for (low,high)")
    p.add_argument("--name", default="oracle_auc", help="results file name (bench/results/)")
    args = p.parse_args(argv)

    from mammo_common.synth import cases

    payload: dict[str, Any] = {"seed": args.seed, "n": args.n, "folds": args.folds,
                               "C": args.c, "overlap": cases.OVERLAP,
                               "p_malignant": cases.P_MALIGNANT}
    R.log(f"large sample: {args.n} lesions, OVERLAP={cases.OVERLAP}")
    big = large_sample(args.n, args.seed, args.folds, args.c)
    payload["large_sample"] = big
    rows = []
    for label, res in big["oracles"].items():
        cv = res["lr_cv"]
        spread = f"{cv['auc_fold_mean']:.3f} ± {cv['auc_fold_sd']:.3f}"
        rows.append([label, cv["auc_pooled"], spread, res["bayes_empirical"]["auc"],
                     res["bayes_crossfit_auc"], res["bayes_analytic_auc"]])
    R.print_table(["oracle", f"LR {args.folds}-fold CV AUC", "per fold mean ± sd",
                   "Bayes AUC (empirical table)", "Bayes AUC (cross-fitted table)",
                   "Bayes AUC (analytic)"], rows,
                  title=f"(a) Oracle on {args.n:,} lesions from sample_lesion "
                        f"(OVERLAP={cases.OVERLAP}, seed {args.seed})")

    if args.data.is_dir():
        splits = None if args.no_splits else (args.splits or args.data.parent / "splits.json")
        if splits is not None and not splits.exists():
            if args.splits is not None:
                raise SystemExit(f"--splits {splits} does not exist")
            splits = None
        R.log(f"dataset {args.data}" + (f" (+ pipeline split {splits})" if splits else ""))
        ds = dataset_oracle(args.data, splits, c=args.c, n_resamples=args.n_bootstrap,
                            seed=args.seed)
        payload["dataset"] = ds
        for key, title in (("csv_split", "Training CSV -> Test CSV"),
                           ("pipeline_split", f"pipeline split ({splits}): others -> test")):
            if key not in ds:
                continue
            part = ds[key]
            rows = []
            for name, res in part["oracles"].items():
                for level in ("mass", "case"):
                    r = res[level]
                    rows.append([name, level, f"{r['n']} ({r['n_malignant']}/{r['n_benign']})",
                                 r["auc"], _fmt_ci(r)])
            R.print_table(["oracle", "level", "n (mal/ben)", "ROC AUC", "95% bootstrap CI"], rows,
                          title=f"(b) Oracle on {args.data}, {title}: fit on "
                                f"{part['n_train_masses']} masses ({part['n_train_malignant']} "
                                "malignant)")
    else:
        R.log(f"no dataset at {args.data}: part (b) skipped")
        payload["dataset"] = None

    if args.overlap_sweep:
        values = [float(v) for v in args.overlaps.split(",") if v.strip()]
        lo, hi = (float(v) for v in args.target.split(","))
        sweep = overlap_sweep(values, args.n, args.seed, args.folds, args.c, (lo, hi))
        payload["overlap_sweep"] = sweep
        R.print_table(["OVERLAP", "shape+margins LR CV AUC", "Bayes AUC (empirical)",
                       "Bayes AUC (analytic)", "image-visible LR CV AUC",
                       "all descriptors LR CV AUC (leaky)"],
                      [[r["overlap"], r["lr_cv_auc"], r["bayes_empirical_auc"],
                        r["bayes_analytic_auc"], r["rendered_lr_cv_auc"],
                        r["all_descriptors_lr_cv_auc"]] for r in sweep["values"]],
                      title=f"OVERLAP sweep ({args.n:,} lesions each, seed {args.seed})")
        interval = sweep["overlap_interval_for_target"]
        print(f"\nOVERLAP putting the analytic shape+margins oracle AUC in [{lo}, {hi}]: "
              + (f"{interval[0]:.3f} to {interval[1]:.3f}" if interval else "none in 0-0.5"),
              flush=True)
    path = R.write_results(args.name, payload)
    R.log(f"wrote {path}")


if __name__ == "__main__":
    main()
