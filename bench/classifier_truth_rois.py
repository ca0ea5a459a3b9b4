"""The classification stage on its own: trained classifiers scored on ground-truth mass outlines.

The cascade's case AUC (``metrics/massclass.json``) mixes two things: how well the classifier
tells benign from malignant, and how well segmentation found and outlined the masses (a missed
mass counts as benign, a false detection can be the case's most malignant). This script
isolates the first: for every model folder given (default: every ``models/massclass/*/fold_*``
of the checkout), it cuts the test cases' ROIs from the ground-truth ``mass_masks`` of a
``masses`` store (the ROI settings of the model's own card, with ``source: truth``), predicts
them and reports the mass-level ROC AUC with a stratified bootstrap 95 % CI, next to the AUC
the same model reaches on its validation masses (from its card).

Usage::

    .venv/bin/python bench/classifier_truth_rois.py                    # after dvc repro
    .venv/bin/python bench/classifier_truth_rois.py --model A --model B --data data/masses.zarr

Writes ``bench/results/classifier_truth_rois.json`` and prints a table.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import _common as C


def score_model(folder: Path, data: Path, splits: Path, n_bootstrap: int) -> dict[str, Any]:
    """Mass-level ROC AUC of ``folder``'s classifier on the test cases' ground-truth masses."""

    import massclass.models  # noqa: F401  (registers the classifier classes)
    from mammo_common.keras.deployment.model_folder import load_model_folder
    from mammo_common.metrics import bootstrap_ci, roc_auc
    from mammo_common.schema.splits import Splits
    from mammo_common.store import open_store
    from massclass.config import RoiConfig
    from massclass.rois import extract_rois
    from massclass.train import predict_rois

    model, card = load_model_folder(folder, "massclass")
    roi = RoiConfig.model_validate({**card.training.get("roi", {}), "source": "truth"})
    store = open_store(data, "masses")
    test = list(Splits.load(splits).test)
    rois = extract_rois(store, roi, size=int(card.input_shape[0]), case_ids=test)
    keep = rois.labeled
    y = rois.labels[keep].astype(int)
    p = predict_rois(model, rois.images[keep])
    ci = bootstrap_ci(roc_auc, y, p, n_resamples=n_bootstrap, seed=0, stratified=True)
    return {
        "model": str(folder),
        "model_id": card.model_id,
        "roi": roi.model_dump(mode="json"),
        "n_masses": int(keep.sum()),
        "n_malignant": int(y.sum()),
        "test_roc_auc": float(roc_auc(y, p)),
        "test_roc_auc_ci": [float(ci.low), float(ci.high)],
        "valid_roc_auc": card.metrics.get("valid_roc_auc"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", action="append", type=Path, default=None,
                        help="a massclass model folder (repeatable; default: models/massclass)")
    parser.add_argument("--data", type=Path, default=C.REPO / "data" / "masses.zarr")
    parser.add_argument("--splits", type=Path, default=C.REPO / "data" / "splits.json")
    parser.add_argument("--n-bootstrap", type=int, default=1000)
    parser.add_argument("--name", default="classifier_truth_rois")
    args = parser.parse_args()
    models = args.model or sorted((C.REPO / "models" / "massclass").glob("*/fold_*"))
    rows = [score_model(m, args.data, args.splits, args.n_bootstrap) for m in models]
    C.print_table(
        ["model", "test masses", "test AUC (truth outlines)", "95% CI", "valid AUC (card)"],
        [[r["model_id"], r["n_masses"], r["test_roc_auc"],
          f"[{r['test_roc_auc_ci'][0]:.3f}, {r['test_roc_auc_ci'][1]:.3f}]", r["valid_roc_auc"]]
         for r in rows],
    )
    C.write_results(args.name, {
        "machine": C.machine_info(),
        "data": str(args.data),
        "splits": str(args.splits),
        "command": "bench/classifier_truth_rois.py " + " ".join(
            f"--model {m}" for m in (args.model or [])),
        "results": rows,
    })


if __name__ == "__main__":
    main()
