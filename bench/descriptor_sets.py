"""What each descriptor set can tell from true outlines: grouped CV and across imaging styles.

The ``descriptors`` classifier's measurements (:mod:`massclass.descriptors`) are fixed, not
learned, so how much a set of them can say is a question for a simple model on the true
outlines of a labelled ``masses`` store, apart from any segmentation: this script cuts every
labelled mass's ROI from the ground-truth ``mass_masks`` (the ROI settings of
``massclass.train.roi`` in ``params.yaml``: size, margin, the image-redrawn outline), measures
the eight descriptors with and without the margin profile (``profile=True``), and scores a
standardised logistic regression on each set:

* grouped 5-fold CV by patient over every labelled mass (ROC AUC of the pooled out-of-fold
  scores);
* fitted on the store's training and validation cases, scored on its test cases;
* across imaging styles, for data written by ``mammo synth --style mixed`` (the default): fitted
  on the film patients' masses, scored on the digital ones, and the reverse (the style of each
  patient is the generator's own, ``mammo_common.synth.cases.sample_patient`` with
  ``--synth-seed``).

Usage::

    .venv/bin/python bench/descriptor_sets.py --name descriptor_sets_300    # after dvc repro

Writes ``bench/results/<name>.json`` and prints a table (about 2 minutes on 2 cores).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import _common as C
import numpy as np


def patient_styles(case_ids: list[str], synth_seed: int) -> list[str]:
    """The ``mammo synth`` style of each case's patient (``P_00001_...`` is patient index 0)."""
    from mammo_common.synth.cases import sample_patient

    cache: dict[int, str] = {}
    out = []
    for case_id in case_ids:
        index = int(case_id.split("_")[1]) - 1
        if index not in cache:
            cache[index] = sample_patient(synth_seed, index, "mixed")[0].style
        out.append(cache[index])
    return out


def auc_fit(x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, y_test: np.ndarray
            ) -> float:
    """ROC AUC on the test rows of a standardised logistic regression fitted on the others."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    model = make_pipeline(StandardScaler(), LogisticRegression(C=0.3, max_iter=5000))
    model.fit(x_train, y_train)
    return float(roc_auc_score(y_test, model.predict_proba(x_test)[:, 1]))


def grouped_cv(x: np.ndarray, y: np.ndarray, groups: np.ndarray, folds: int = 5) -> float:
    """ROC AUC of the pooled out-of-fold scores, folds grouped by patient."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import GroupKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    scores = np.zeros(len(y))
    for train, test in GroupKFold(folds).split(x, y, groups):
        model = make_pipeline(StandardScaler(), LogisticRegression(C=0.3, max_iter=5000))
        scores[test] = model.fit(x[train], y[train]).predict_proba(x[test])[:, 1]
    return float(roc_auc_score(y, scores))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=C.REPO / "data" / "masses.zarr")
    parser.add_argument("--splits", type=Path, default=C.REPO / "data" / "splits.json")
    parser.add_argument("--params", type=Path, default=C.REPO / "params.yaml")
    parser.add_argument("--synth-seed", type=int, default=0,
                        help="the seed `mammo synth` wrote the data with (its default: 0)")
    parser.add_argument("--no-styles", action="store_true",
                        help="skip the cross-style scores (data not from `mammo synth`)")
    parser.add_argument("--name", default="descriptor_sets")
    args = parser.parse_args()

    from mammo_common.params import load_section
    from mammo_common.schema.splits import Splits
    from mammo_common.store import open_store
    from massclass.config import TrainSettings
    from massclass.descriptors import SMOOTH_FRACTION, MassDescriptors, descriptor_names
    from massclass.rois import extract_rois

    train = load_section(TrainSettings, args.params, "massclass.train",
                         {"roi": {"source": "truth"}})
    size, roi = int(train.input_size), train.roi
    splits = Splits.load(args.splits)
    fold = splits.fold(1)
    development = list(fold.train) + list(fold.valid)
    test = list(splits.test)
    store = open_store(args.data, "masses")
    rois = extract_rois(store, roi, size=size, case_ids=development + test)
    keep = np.asarray(rois.labeled)
    images = rois.images[keep]
    y = rois.labels[keep].astype(int)
    cases = [rois.case_ids[k] for k in np.flatnonzero(keep)]
    patients = np.array([c.split("_")[1] for c in cases])
    is_test = np.isin(cases, test)
    layer = MassDescriptors(value_range=(0.0, 1.0), smooth=SMOOTH_FRACTION * size, profile=True)
    features = np.asarray(layer(images.astype(np.float32)))
    sets = {"descriptors": len(descriptor_names(False)), "descriptors+profile":
            len(descriptor_names(True))}
    styles = None if args.no_styles else np.array(patient_styles(cases, args.synth_seed))
    results: dict[str, Any] = {}
    for name, n in sets.items():
        x = features[:, :n]
        row: dict[str, Any] = {
            "n_features": n,
            "grouped_cv_auc": grouped_cv(x, y, patients),
            "test_auc": auc_fit(x[~is_test], y[~is_test], x[is_test], y[is_test]),
        }
        if styles is not None:
            for a, b in (("film", "digital"), ("digital", "film")):
                row[f"{a}_to_{b}_auc"] = auc_fit(x[styles == a], y[styles == a],
                                                 x[styles == b], y[styles == b])
        results[name] = row
    columns = [k for k in next(iter(results.values())) if k != "n_features"]
    C.print_table(["descriptor set", *columns],
                  [[name, *(row[c] for c in columns)] for name, row in results.items()])
    C.write_results(args.name, {
        "machine": C.machine_info(),
        "data": str(args.data), "splits": str(args.splits), "roi": roi.model_dump(mode="json"),
        "size": size, "n_masses": len(y), "n_malignant": int(y.sum()),
        "n_test_masses": int(is_test.sum()),
        "n_by_style": None if styles is None else {s: int((styles == s).sum())
                                                   for s in ("film", "digital")},
        "model": "standardised logistic regression, C=0.3",
        "command": "bench/descriptor_sets.py --name " + args.name,
        "results": results,
    })


if __name__ == "__main__":
    main()
