"""How much of the benign/malignant signal survives the cascade's outlines, measured over every
found mass instead of the 34 test cases.

The demo's case AUC is measured on 34 test cases: its 95 % CI is about +-0.18 wide, too wide to
tell a classifier that works on the cascade's outlines from one that does not. This script
asks the question on every labelled image of a ``masses`` store whose true mass the cascade
found (train, validation and test: about 130 on the demo), with grouped cross-validation:

1. every such image's largest true mass is cut as an ``image+mask`` ROI twice, once with its
   ground-truth outline (``source: truth``) and once with the outline the segmentation drew
   (``source: pred_matched``: the predicted components that touch a true mass), at 96 px with
   margin 0.5 (the demo classifier's ROI settings);
2. the ``descriptors`` backbone's BI-RADS measurements (``massclass.descriptors``: circularity,
   elongation, roughness, contrast, relative contrast, sharpness, spiculation, heterogeneity)
   are computed on both;
3. a logistic regression (standardised inputs, C = 0.3) is cross-validated with 5-fold
   GroupKFold by patient, repeated over 5 shuffles of the patients, for: training and testing
   on true outlines (the classifier's ceiling), training on true outlines and testing on
   the drawn ones (what the cascade does), training and testing on drawn outlines, and the
   same with the image measurements only (no shape descriptor), and training on true and
   testing on drawn outlines both redrawn from the image (``roi.outline: image``,
   :mod:`massclass.outline`: the contour half-way between the mass and its surroundings,
   seeded by the mask), what the demo classifier does;
4. each descriptor's own ROC AUC on true and on drawn outlines (malignant high; below 0.5
   means malignant low, e.g. circularity).

Usage::

    .venv/bin/python bench/classifier_outlines_cv.py                     # data/masses.zarr
    .venv/bin/python bench/classifier_outlines_cv.py --data /tmp/masses.zarr --name NAME
    .venv/bin/python bench/classifier_outlines_cv.py --sheet docs/images/classifier_outlines.png

Writes ``bench/results/classifier_outlines_cv.json`` (or ``<--name>.json``) and prints tables.
Takes about a minute; no trained model is needed.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import _common as C
import numpy as np

#: The measurements that do not read the outline's shape.
IMAGE_ONLY = ("contrast", "relative_contrast", "sharpness", "spiculation", "heterogeneity")


def descriptor_table(
    data: Path, source: str, outline: str = "mask"
) -> dict[str, tuple[np.ndarray, float, str]]:
    """Per labelled case with a mass of ``source``: (descriptors of its largest mass, label,
    patient); ``outline="image"`` redraws each outline from the image (``roi.outline``)."""
    from mammo_common.store import open_store
    from massclass.config import RoiConfig
    from massclass.descriptors import SMOOTH_FRACTION, MassDescriptors
    from massclass.rois import extract_rois

    store = open_store(data, "masses")
    size = 96
    rois = extract_rois(
        store,
        RoiConfig(source=source, representation="image+mask", margin=0.5, outline=outline),
        size=size,
    )
    layer = MassDescriptors(value_range=(0.0, 1.0), smooth=SMOOTH_FRACTION * size)
    values = np.asarray(layer(rois.images)) if len(rois) else np.zeros((0, 8), np.float32)
    largest: dict[str, int] = {}
    for k, case in enumerate(rois.case_ids):
        if np.isfinite(rois.labels[k]) and (
            case not in largest or rois.areas[k] > rois.areas[largest[case]]
        ):
            largest[case] = k
    patient = {r.case_id: r.patient_id for r in store.cases}
    return {c: (values[k], float(rois.labels[k]), patient[c]) for c, k in largest.items()}


def grouped_cv(
    train_x: np.ndarray, test_x: np.ndarray, y: np.ndarray, groups: np.ndarray,
    repeats: int, c: float,
) -> dict[str, float]:
    """Mean and sd over ``repeats`` shuffles of the 5-fold grouped CV ROC AUC."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import GroupKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    aucs = []
    for rep in range(repeats):
        scores = np.zeros(len(y))
        folds = GroupKFold(5, shuffle=True, random_state=rep)
        for tr, te in folds.split(train_x, y, groups):
            model = make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=5000))
            model.fit(train_x[tr], y[tr])
            scores[te] = model.predict_proba(test_x[te])[:, 1]
        aucs.append(float(roc_auc_score(y, scores)))
    return {"auc_mean": float(np.mean(aucs)), "auc_sd": float(np.std(aucs, ddof=1)),
            "repeats": repeats}


def outline_sheet(data: Path, splits: Path, out: Path, n: int = 8) -> Path:
    """A contact sheet of test masses: the segmentation's outline and the image's redrawing."""
    import json

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from mammo_common.store import open_store
    from massclass.config import RoiConfig
    from massclass.rois import extract_rois

    store = open_store(data, "masses")
    test = json.loads(splits.read_text(encoding="utf-8"))["test"]
    sets = [
        extract_rois(store, RoiConfig(source="pred_matched", representation="image+mask",
                                      margin=0.5, outline=outline), size=96, case_ids=test)
        for outline in ("mask", "image")
    ]
    picks = np.linspace(0, len(sets[0]) - 1, n).round().astype(int)
    fig, axes = plt.subplots(2, (n + 1) // 2, figsize=(12, 6.5))
    for ax, i in zip(axes.flat, picks, strict=False):
        ax.imshow(sets[0].images[i, ..., 0], cmap="gray", vmin=0, vmax=1)
        for rois, colour in zip(sets, ("orange", "cyan"), strict=True):
            ax.contour(rois.images[i, ..., 2], [0.5], colors=colour, linewidths=1)
        label = {1.0: "malignant", 0.0: "benign"}.get(float(sets[0].labels[i]), "unknown")
        ax.set_title(f"{sets[0].case_ids[i]} ({label})", fontsize=8)
        ax.axis("off")
    fig.suptitle("test masses, 96x96 ROIs: orange, the outline the segmentation drew; cyan, "
                 "redrawn from the image (roi.outline: image)", fontsize=10)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=80)
    plt.close(fig)
    return out


def main(argv: list[str] | None = None) -> int:
    """Command line: measure, print, write the JSON."""
    from sklearn.metrics import roc_auc_score

    from massclass.descriptors import DESCRIPTOR_NAMES

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("data/masses.zarr"))
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--c", type=float, default=0.3)
    parser.add_argument("--name", default="classifier_outlines_cv")
    parser.add_argument("--sheet", type=Path, default=None,
                        help="also draw a contact sheet of test masses' outlines (PNG)")
    parser.add_argument("--splits", type=Path, default=Path("data/splits.json"))
    args = parser.parse_args(argv)
    if args.sheet is not None:
        print(f"wrote {outline_sheet(args.data, args.splits, args.sheet)}")

    C.log("descriptors on the true outlines")
    truth = descriptor_table(args.data, "truth")
    C.log("descriptors on the drawn outlines")
    drawn = descriptor_table(args.data, "pred_matched")
    C.log("descriptors on the image's outlines seeded by the true and by the drawn masks")
    truth_img = descriptor_table(args.data, "truth", "image")
    drawn_img = descriptor_table(args.data, "pred_matched", "image")
    cases = sorted(set(truth) & set(drawn))
    y = np.array([truth[c][1] for c in cases])
    groups = np.array([truth[c][2] for c in cases])
    xt = np.stack([truth[c][0] for c in cases])
    xd = np.stack([drawn[c][0] for c in cases])
    xti = np.stack([truth_img[c][0] for c in cases])
    xdi = np.stack([drawn_img[c][0] for c in cases])
    every = list(range(len(DESCRIPTOR_NAMES)))
    image = [DESCRIPTOR_NAMES.index(n) for n in IMAGE_ONLY]
    setups = {
        "truth->truth, all descriptors": (xt, xt, every),
        "truth->drawn, all descriptors": (xt, xd, every),
        "drawn->drawn, all descriptors": (xd, xd, every),
        "truth->drawn, image measurements only": (xt, xd, image),
        "drawn->drawn, image measurements only": (xd, xd, image),
        "truth->drawn, outlines redrawn from the image": (xti, xdi, every),
        "truth->truth, outlines redrawn from the image": (xti, xti, every),
    }
    cv = {
        name: grouped_cv(a[:, cols], b[:, cols], y, groups, args.repeats, args.c)
        for name, (a, b, cols) in setups.items()
    }
    single = {
        name: {
            "truth": float(roc_auc_score(y, xt[:, j])),
            "drawn": float(roc_auc_score(y, xd[:, j])),
            "truth_redrawn": float(roc_auc_score(y, xti[:, j])),
            "drawn_redrawn": float(roc_auc_score(y, xdi[:, j])),
        }
        for j, name in enumerate(DESCRIPTOR_NAMES)
    }
    C.print_table(
        ["train -> test outlines", "ROC AUC (mean of repeats)", "sd"],
        [[k, round(v["auc_mean"], 3), round(v["auc_sd"], 3)] for k, v in cv.items()],
        title=f"grouped 5-fold CV over {len(cases)} found masses ({int(y.sum())} malignant)",
    )
    C.print_table(
        ["descriptor", "true outlines", "drawn outlines", "true, redrawn", "drawn, redrawn"],
        [[k, *(round(v[o], 3) for o in ("truth", "drawn", "truth_redrawn", "drawn_redrawn"))]
         for k, v in single.items()],
        title="each descriptor alone (malignant high; < 0.5: malignant low)",
    )
    payload: dict[str, Any] = {
        "data": str(args.data),
        "n_cases": len(cases),
        "n_malignant": int(y.sum()),
        "n_patients": len(set(groups.tolist())),
        "n_labelled_with_true_mass": len(truth),
        "roi": {"size": 96, "margin": 0.5, "representation": "image+mask"},
        "classifier": {"model": "logistic regression on standardised descriptors", "C": args.c,
                       "cv": "GroupKFold(5) by patient", "repeats": args.repeats},
        "cv": cv,
        "single_descriptor_auc": single,
    }
    path = C.write_results(args.name, payload)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
