"""Breast-mask post-processing on the demo's test images: artefact pixels and Dice, before/after.

For every test case of the demo's ``mammograms`` store, the trained breast model's probability
map is thresholded and turned into a mask twice: the plain way (largest component, holes
filled: what ``breastseg predict`` did before ``breastseg.postprocess``) and with the
post-processing's defaults and the case's laterality. Each mask is scored against the store's
exact breast mask (Dice) and against the synthetic truth's artefacts (``truth/<image
folder>/marks.png``: labels, markers, rulers, film edges): how many artefact pixels it keeps.
It also counts the cases whose chest-wall side the post-processing infers right without the
laterality.

Usage::

    .venv/bin/python bench/breast_postprocess.py          # after dvc repro (data/, models/)

Writes ``bench/results/breast_postprocess.json`` and prints a summary.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import _common as C


def measure(data: Path, model: Path, splits: Path, truth: Path) -> dict[str, Any]:
    """Per-case and total artefact pixels and Dice of the plain and post-processed masks."""
    import numpy as np
    from PIL import Image

    from breastseg.postprocess import laterality_side
    from breastseg.segment import make_segmenter, segment_breast
    from mammo_common.metrics import dice
    from mammo_common.postprocess import binarize, fill_holes, largest_component
    from mammo_common.store import open_store

    store = open_store(data, "mammograms")
    case_ids = json.loads(splits.read_text(encoding="utf-8"))["test"]
    segmenter = make_segmenter("unet", model)
    cases = []
    for case_id in case_ids:
        record = store.record(case_id)
        folder = Path(record.source_path).parts[1]  # CBIS-DDSM/<image folder>/...
        marks = np.asarray(Image.open(truth / folder / "marks.png")) > 0
        reference = store.array(case_id, "breast_mask") > 0
        prob = segmenter.probabilities(store.array(case_id, "image"))
        plain = fill_holes(largest_component(binarize(prob, 0.5)))
        post = segment_breast(prob, 0.5, laterality=record.laterality, warn=False).mask > 0
        inferred = segment_breast(prob, 0.5, warn=False).chest_wall
        cases.append(
            {
                "case_id": case_id,
                **{
                    kind: {"dice": dice(m, reference), "artefact_pixels": int((m & marks).sum())}
                    for kind, m in (("plain", plain), ("post", post))
                },
                "side_inferred_right": inferred == laterality_side(record.laterality),
            }
        )

    def total(kind: str) -> dict[str, Any]:
        dices = [c[kind]["dice"] for c in cases]
        return {
            "dice_mean": float(np.mean(dices)),
            "dice_min": float(np.min(dices)),
            "artefact_pixels": sum(c[kind]["artefact_pixels"] for c in cases),
            "cases_with_artefacts": sum(c[kind]["artefact_pixels"] > 0 for c in cases),
        }

    return {
        "n_cases": len(cases),
        "plain": total("plain"),
        "post": total("post"),
        "chest_wall_inferred_right": sum(c["side_inferred_right"] for c in cases),
        "cases": cases,
    }


def main() -> None:
    """Command line: measure and write the results."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("data/mammograms.zarr"))
    parser.add_argument("--model", type=Path, default=Path("models/breastseg/unet5l/fold_1"))
    parser.add_argument("--splits", type=Path, default=Path("data/splits.json"))
    parser.add_argument("--truth", type=Path, default=Path("data/raw/truth"))
    args = parser.parse_args()
    result = measure(args.data, args.model, args.splits, args.truth)
    path = C.write_results("breast_postprocess", result)
    for kind in ("plain", "post"):
        t = result[kind]
        print(
            f"{kind:>5}: Dice mean {t['dice_mean']:.4f} min {t['dice_min']:.4f}, artefact pixels "
            f"{t['artefact_pixels']} in {t['cases_with_artefacts']} of {result['n_cases']} cases"
        )
    n, right = result["n_cases"], result["chest_wall_inferred_right"]
    print(f"chest wall inferred right: {right} of {n}")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
