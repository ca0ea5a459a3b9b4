"""The threshold breast labeller against the exact truth: Dice and label/marker residue.

``breastseg.labeller.label_breast`` makes the breast masks of sources that ship none (real
CBIS-DDSM), so its mistakes become breastseg's training targets. This script scores it on
synthetic mammograms whose breast is known exactly: ``mammo synth --style film|digital`` ->
``mammo ingest`` (the store's ``breast_mask`` is the phantom's truth, read from the
``truth/`` sidecar), then :func:`~breastseg.labeller.label_breast` on every image with the
case's laterality, as ``breastseg train`` calls it.

Per image it records:

* **Dice** against the truth breast;
* **residue**: labeller pixels farther than ``RESIDUE_MARGIN`` of the image's longer side
  outside the truth breast that form a connected blob of at least ``RESIDUE_MIN_AREA`` of the
  image (an ID label, a lead marker, a ruler or a film-edge strip kept with the breast; a
  skin line drawn a pixel or two wide is not residue);
* **marks pixels**: labeller pixels on the generator's artefacts (``truth/<image
  folder>/marks.png``: labels, markers, rulers, film edges) farther than the residue margin
  from the truth breast.

The phantoms keep every artefact 3 mm off the breast. ``--stress`` also joins artefacts to it
(:func:`inject`): an ID card against the skin line and a lead marker on the top border beside
the breast, each 2 pixels off it, and an unexposed strip along the whole top border running
into the breast; marks pixels then count the injected artefacts.

and reports, per style and view (and for MLO views whose breast meets the top border, where
labels and film edges most often join the breast): images, mean and minimum Dice, images with
Dice under 0.95, images with residue, images with marks pixels.

Usage::

    .venv/bin/python bench/breast_labeller.py                      # 60 film + 40 digital
    .venv/bin/python bench/breast_labeller.py --stress             # artefacts joined to it
    .venv/bin/python bench/breast_labeller.py --film 80 --digital 40 --name breast_labeller_x

Data are made once and cached in ``$MAMMO_BENCH_WORK/breast_labeller`` (default
``/tmp/mammo-bench``). Writes ``bench/results/<name>.json`` (default
``breast_labeller[_stress]``) and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import subprocess
import time
from pathlib import Path
from typing import Any

import _common as C
import numpy as np

#: Labeller pixels farther than this share of the image's longer side outside the truth breast
#: can be residue (0.01: 5 pixels at 512).
RESIDUE_MARGIN = 0.01
#: A blob of such pixels is residue when it covers at least this share of the image.
RESIDUE_MIN_AREA = 1e-4
#: Dice under which an image counts as a failure.
LOW_DICE = 0.95


def dataset(style: str, patients: int, seed: int, size: str | None) -> Path:
    """The ``mammograms`` store of ``patients`` synthetic patients of ``style`` (cached)."""
    work = C.WORK_DIR / "breast_labeller"
    work.mkdir(parents=True, exist_ok=True)
    tag = f"{style}_p{patients}_s{seed}" + (f"_{size}" if size else "")
    out, raw = work / f"{tag}.zarr", work / f"raw_{tag}"
    if out.exists():
        return out
    exe = str(C.VENV_BIN / "mammo")
    synth = [exe, "synth", str(raw), "--style", style, "--cases", str(patients),
             "--seed", str(seed), "--overwrite"]
    if size:
        synth += ["--size", size]
    if not raw.exists():
        C.log("$ " + " ".join(synth))
        subprocess.run(synth, check=True, stdout=subprocess.DEVNULL)
    ingest = [exe, "ingest", str(raw), str(out), "--overwrite"]
    C.log("$ " + " ".join(ingest))
    subprocess.run(ingest, check=True, stdout=subprocess.DEVNULL)
    return out


def residue(mask: np.ndarray, truth: np.ndarray) -> tuple[int, int]:
    """``(blobs, pixels)`` of ``mask`` lying outside ``truth`` beyond the residue margin."""
    from scipy import ndimage

    margin = RESIDUE_MARGIN * max(mask.shape)
    outside = mask & (ndimage.distance_transform_edt(~truth) > margin)
    labels, n = ndimage.label(outside, structure=np.ones((3, 3), bool))
    if not n:
        return 0, 0
    sizes = np.bincount(labels.ravel())[1:]
    big = sizes >= RESIDUE_MIN_AREA * mask.size
    return int(big.sum()), int(sizes[big].sum())


def inject(
    image: np.ndarray, truth: np.ndarray, laterality: str
) -> tuple[np.ndarray, np.ndarray]:
    """The image with a label, a marker and a film edge joined to the breast, and where.

    Stress test of what a real film has and the phantoms avoid (they keep every artefact 3 mm
    off the breast): an ID card (a quarter of the rows high, a fifth of the columns wide)
    against the skin line at the breast's widest row, a lead marker (a twelfth of the rows
    high) on the top border beside the breast, both 2 pixels off the skin line, and an
    unexposed strip (3 % of the rows) along the whole top border running into the breast. All
    at 90 % of the image's range (bright, uniform). Returns ``(image, artefact mask)``.
    """
    from scipy import ndimage

    flip = str(laterality).upper().startswith("R")  # chest wall on the right: mirror
    t = truth[:, ::-1] if flip else truth
    h, w = t.shape
    near = ndimage.distance_transform_edt(~t) <= 2
    art = np.zeros((h, w), bool)
    widest = int(np.argmax(t.sum(axis=1)))
    rows = slice(max(0, widest - h // 8), widest + h // 8)
    x = int(np.nonzero(t[rows].any(axis=0))[0].max())
    art[rows, max(0, x - w // 20) : x + w // 5] = True
    top = slice(0, h // 12)
    if t[top].any():
        x = int(np.nonzero(t[top].any(axis=0))[0].max())
        art[top, max(0, x - w // 6) : x + w // 25] = True
        art[: max(2, round(0.03 * h))] = True
    art &= ~near
    art[: max(2, round(0.03 * h))] |= ~t[: max(2, round(0.03 * h))]  # the strip touches
    art &= ~t
    if flip:
        art = art[:, ::-1]
    lo, hi = float(image.min()), float(image.max())
    out = image.copy()
    out[art] = np.asarray(lo + 0.9 * (hi - lo)).astype(image.dtype)
    return out, art


def measure_store(store_path: Path, style: str, stress: bool = False) -> list[dict[str, Any]]:
    """Per image: Dice, residue and marks pixels of the labeller's mask (``stress``: on
    :func:`inject`'s image, the marks being the injected artefacts)."""
    from PIL import Image
    from scipy import ndimage

    from breastseg.labeller import label_breast
    from mammo_common.metrics import dice
    from mammo_common.store import open_store

    store = open_store(store_path, "mammograms")
    raw = store_path.parent / f"raw_{store_path.stem}" / "truth"
    rows = []
    for case_id in store.case_ids:
        record = store.record(case_id)
        image = store.array(case_id, "image")
        truth = store.array(case_id, "breast_mask") > 0
        marks_png = raw / Path(record.source_path).parts[1] / "marks.png"
        marks = np.asarray(Image.open(marks_png)) > 0 if marks_png.exists() else None
        if stress:
            image, marks = inject(image, truth, record.laterality)
        mask = label_breast(image, laterality=record.laterality).astype(bool)
        far = ndimage.distance_transform_edt(~truth) > RESIDUE_MARGIN * max(truth.shape)
        blobs, pixels = residue(mask, truth)
        rows.append({
            "case_id": case_id,
            "style": style,
            "view": record.view,
            "top": bool(truth[0].any()),
            "dice": float(dice(mask, truth)),
            "residue_blobs": blobs,
            "residue_pixels": pixels,
            "marks_pixels": None if marks is None or marks.shape != mask.shape
            else int((mask & marks & far).sum()),
        })
    return rows


def summarize(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Counts and Dice statistics of a group of images."""
    dices = np.array([r["dice"] for r in rows]) if rows else np.zeros(0)
    return {
        "images": len(rows),
        "dice_mean": float(dices.mean()) if rows else None,
        "dice_min": float(dices.min()) if rows else None,
        "dice_under_095": int((dices < LOW_DICE).sum()),
        "with_residue": sum(r["residue_blobs"] > 0 for r in rows),
        "residue_pixels": sum(r["residue_pixels"] for r in rows),
        "with_marks_pixels": sum((r["marks_pixels"] or 0) > 0 for r in rows),
    }


def groups(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Summaries per style, per style and view, and for MLO views meeting the top border."""
    out: dict[str, dict[str, Any]] = {}
    for style in sorted({r["style"] for r in rows}):
        mine = [r for r in rows if r["style"] == style]
        out[style] = summarize(mine)
        for view in ("CC", "MLO"):
            out[f"{style} {view}"] = summarize([r for r in mine if r["view"] == view])
        out[f"{style} MLO top"] = summarize([r for r in mine if r["view"] == "MLO" and r["top"]])
    return out


def main() -> None:
    """Command line: make the data, label every image, print and write the results."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--film", type=int, default=60, help="film patients (0: none)")
    parser.add_argument("--digital", type=int, default=40, help="digital patients (0: none)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--size", default=None, help="ROWSxCOLS (default: mammo synth's)")
    parser.add_argument("--name", default=None,
                        help="results file name (default breast_labeller[_stress])")
    parser.add_argument("--stress", action="store_true",
                        help="inject a label, a marker and a film edge joined to each breast")
    args = parser.parse_args()

    rows: list[dict[str, Any]] = []
    t0 = time.perf_counter()
    for style, patients in (("film", args.film), ("digital", args.digital)):
        if patients > 0:
            store = dataset(style, patients, args.seed, args.size)
            rows += measure_store(store, style, args.stress)
    seconds = time.perf_counter() - t0
    summary = groups(rows)
    C.print_table(
        ["group", "images", "Dice mean", "Dice min", "Dice < 0.95", "with residue",
         "with marks pixels"],
        [[k, g["images"], g["dice_mean"], g["dice_min"], g["dice_under_095"], g["with_residue"],
          g["with_marks_pixels"]] for k, g in summary.items() if g["images"]],
        title="breast labeller vs exact truth (residue: blobs outside the truth breast)",
        fmt=lambda v: f"{v:.4f}" if isinstance(v, float) else str(v),
    )
    name = args.name or ("breast_labeller_stress" if args.stress else "breast_labeller")
    path = C.write_results(name, {
        "stress": args.stress,
        "patients": {"film": args.film, "digital": args.digital},
        "seed": args.seed,
        "size": args.size,
        "residue_margin": RESIDUE_MARGIN,
        "residue_min_area": RESIDUE_MIN_AREA,
        "seconds": seconds,
        "groups": summary,
        "images": rows,
    })
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
