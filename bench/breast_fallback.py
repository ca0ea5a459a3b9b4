"""The breast safeguard (``labeller_fallback``) on a test set: which threshold catches what.

For every test case of a ``mammograms`` store with exact breast masks, the breast model's
post-processed mask and the threshold labeller's mask are computed once; then, for each
threshold of ``--thresholds``, the mask ``check_with_labeller`` would keep (the labeller's where
the network's holds less than that share of it and lies within it, or is more than 1/threshold
times it and holds it, and the labeller's looks like a breast) is scored against the truth
(Dice). Also the network alone and the labeller alone,
and the distribution of the share (network pixels / labeller pixels).

Run it on the demo (a model trained on the same kind of images: the safeguard should never
fire) and on a model meeting an unfamiliar style (``bench/cross_style.py --keep`` leaves the
film-trained model and the digital store in its copy).

Usage::

    .venv/bin/python bench/breast_fallback.py                      # the demo (data/, models/)
    .venv/bin/python bench/breast_fallback.py --name breast_fallback_film_to_digital \\
        --model /tmp/w/cross_style/train_film/models/breastseg/unet5l/fold_1 \\
        --data /tmp/w/cross_style/train_film/xstyle/digital/data/mammograms.zarr \\
        --splits /tmp/w/cross_style/train_film/data/splits.json

Writes ``bench/results/<--name>.json`` (default ``breast_fallback``) and prints a table.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import _common as C


def measure(model: Path, data: Path, splits: Path) -> list[dict[str, Any]]:
    """Per test case: the share, the containment, and the truth Dice of each mask."""
    from breastseg.labeller import label_breast
    from breastseg.postprocess import BORDER_WARNING, border_share
    from breastseg.segment import (
        FALLBACK_MAX_IMAGE_SHARE,
        FALLBACK_WITHIN,
        make_segmenter,
        segment_breast,
    )
    from mammo_common.cli_support import track
    from mammo_common.metrics import dice
    from mammo_common.store import open_store

    store = open_store(data, "mammograms")
    segmenter = make_segmenter("unet", model)
    rows = []
    for case_id in track(json.loads(splits.read_text(encoding="utf-8"))["test"], "cases"):
        case = store.load(case_id)
        lat = case.record.laterality
        net = segment_breast(segmenter.probabilities(case.image), 0.5, laterality=lat,
                             warn=False).mask > 0
        lab = label_breast(case.image, laterality=lat) > 0
        truth = case.breast_mask > 0
        n_lab = int(lab.sum())
        trusted = (n_lab > 0 and border_share(lab) < BORDER_WARNING
                   and n_lab <= FALLBACK_MAX_IMAGE_SHARE * lab.size)
        rows.append({
            "case_id": case_id,
            "share": float(net.sum() / max(1, n_lab)),
            "within": float((net & lab).sum() / net.sum()) if net.any() else 1.0,
            "contains": float((net & lab).sum() / n_lab) if n_lab else 0.0,
            "labeller_trusted": bool(trusted),
            "dice_network": dice(net, truth),
            "dice_labeller": dice(lab, truth),
        })
    for row in rows:
        row["lost_eligible"] = row["within"] >= FALLBACK_WITHIN and row["labeller_trusted"]
        row["overgrown_eligible"] = row["contains"] >= FALLBACK_WITHIN and row["labeller_trusted"]
    return rows


def main(argv: list[str] | None = None) -> int:
    """Command line: measure, print, write the JSON."""
    import numpy as np

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=Path("models/breastseg/unet5l/fold_1"))
    parser.add_argument("--data", type=Path, default=Path("data/mammograms.zarr"))
    parser.add_argument("--splits", type=Path, default=Path("data/splits.json"))
    parser.add_argument("--thresholds", type=float, nargs="+", default=[0.5, 0.7, 0.8, 0.9])
    parser.add_argument("--name", default="breast_fallback")
    args = parser.parse_args(argv)

    rows = measure(args.model, args.data, args.splits)
    share = np.array([r["share"] for r in rows])
    net = np.array([r["dice_network"] for r in rows])
    lab = np.array([r["dice_labeller"] for r in rows])
    lost = np.array([r["lost_eligible"] for r in rows])
    overgrown = np.array([r["overgrown_eligible"] for r in rows])
    by_threshold = {}
    for t in args.thresholds:
        use = (lost & (share < t)) | (overgrown & (share > 1.0 / t))
        kept = np.where(use, lab, net)
        by_threshold[f"{t:g}"] = {
            "fallbacks": int(use.sum()),
            "fallback_cases": [r["case_id"] for r, u in zip(rows, use, strict=True) if u],
            "dice_mean": float(kept.mean()), "dice_min": float(kept.min()),
            "fallbacks_where_labeller_worse": int((use & (lab < net)).sum()),
        }
    C.print_table(
        ["masks", "fallbacks", "Dice mean", "Dice min"],
        [["network alone", 0, round(float(net.mean()), 4), round(float(net.min()), 3)],
         ["labeller alone", len(rows), round(float(lab.mean()), 4), round(float(lab.min()), 3)]]
        + [[f"labeller_fallback {k}", v["fallbacks"], round(v["dice_mean"], 4),
            round(v["dice_min"], 3)] for k, v in by_threshold.items()],
        title=f"{len(rows)} test images of {args.data}",
    )
    payload: dict[str, Any] = {
        "model": str(args.model), "data": str(args.data), "splits": str(args.splits),
        "n_cases": len(rows),
        "network": {"dice_mean": float(net.mean()), "dice_min": float(net.min())},
        "labeller": {"dice_mean": float(lab.mean()), "dice_min": float(lab.min())},
        "share_quantiles": {f"{q:g}": float(np.quantile(share, q))
                            for q in (0.0, 0.02, 0.05, 0.1, 0.5)},
        "by_threshold": by_threshold,
        "cases": rows,
    }
    print(f"wrote {C.write_results(args.name, payload)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
