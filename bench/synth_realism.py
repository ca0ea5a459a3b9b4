"""How realistic is ``mammo synth``? Measure the phantoms against their exact truth, per style.

For every rendered image (``--cases`` patients, each style) this measures what a reader of real
mammograms would check, using the generator's own truth (breast, masses, marks, glandular
fraction), never a heuristic:

* **background**: median display level and noise (std) of the background outside the breast
  and the artefacts, in 0..1 (the stored DICOM value is ``1500 + 62000 * level``);
* **dense share**: share of the breast whose projected glandular fraction is at least
  ``DENSE_G`` (per BI-RADS density a-d);
* **mass size**: mean diameter in mm;
* **mass contrast**: mean display level inside the mass minus that of a ring around it
  (0.5-1.5 radii out), in 0..1 units and relative to the image's glandular contrast (dense
  minus fatty tissue);
* **mass in dense tissue**: whether the ring's median glandular fraction is at least
  ``DENSE_G``;
* **global-threshold findability**: the best Dice that any single global threshold of the
  breast reaches against the mass (a mass a threshold can isolate scores near 1).

Prints a table per style and writes ``bench/results/synth_realism.json``.

    .venv/bin/python bench/synth_realism.py --cases 40 --size 512 384
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi

from mammo_common.synth.cases import sample_dataset
from mammo_common.synth.phantom import render

#: Projected glandular fraction from which tissue counts as dense.
DENSE_G = 0.2
RESULTS = Path(__file__).resolve().parent / "results"


def best_threshold_dice(image: np.ndarray, breast: np.ndarray, mass: np.ndarray) -> float:
    """The best Dice of ``image >= t`` (inside the breast) against ``mass`` over all ``t``."""
    values = image[breast]
    truth = mass[breast]
    order = np.argsort(-values, kind="stable")
    hits = np.cumsum(truth[order])
    k = np.arange(1, len(order) + 1)
    dice = 2 * hits / (k + truth.sum())
    return float(dice.max())


def measure_image(ph) -> tuple[dict, list[dict]]:
    """Per-image and per-mass measurements of one phantom."""
    img, breast, gland = ph.image, ph.breast_mask, ph.gland
    background = ~breast & ~ph.marks_mask
    background &= ~ndi.binary_dilation(breast, iterations=3)
    dense = breast & (gland >= DENSE_G)
    fatty = breast & (gland < 0.05) & ~ph.pectoral_mask
    gland_contrast = (
        float(img[dense].mean() - img[fatty].mean()) if dense.any() and fatty.any() else np.nan
    )
    per_image = {
        "style": ph.style,
        "background_level": float(np.median(img[background])) if background.any() else np.nan,
        "background_noise": float(img[background].std()) if background.any() else np.nan,
        "dense_share": float(dense.sum() / max(breast.sum(), 1)),
        "gland_contrast": gland_contrast,
    }
    masses = []
    for m in ph.mass_masks:
        if not m.any():
            continue
        r = np.sqrt(m.sum() / np.pi)
        outer = ndi.binary_dilation(m, iterations=max(2, round(1.5 * r)))
        inner = ndi.binary_dilation(m, iterations=max(1, round(0.5 * r)))
        ring = outer & ~inner & breast
        contrast = float(img[m].mean() - img[ring].mean())
        masses.append({
            "style": ph.style,
            "diameter_mm": float(2 * r * ph.spacing_mm),
            "contrast": contrast,
            "relative_contrast": contrast / gland_contrast if gland_contrast > 0 else np.nan,
            "in_dense": bool(np.median(gland[ring]) >= DENSE_G),
            "threshold_dice": best_threshold_dice(img, breast, m),
        })
    return per_image, masses


def _summary(rows: list[dict], key: str) -> dict[str, float]:
    v = np.array([r[key] for r in rows], dtype=float)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return {"n": 0}
    return {"n": int(v.size), "mean": float(v.mean()), "median": float(np.median(v)),
            "p10": float(np.percentile(v, 10)), "p90": float(np.percentile(v, 90))}


def main(argv: list[str] | None = None) -> int:
    """Render, measure, print and write the JSON."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", type=int, default=40, help="patients per style")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--size", type=int, nargs=2, default=(512, 384), metavar=("ROWS", "COLS"))
    ap.add_argument("--styles", nargs="+", default=["film", "digital"])
    ap.add_argument("--out", type=Path, default=RESULTS / "synth_realism.json")
    args = ap.parse_args(argv)
    start = time.perf_counter()
    result: dict = {
        "command": "python bench/synth_realism.py " + " ".join(sys.argv[1:] if argv is None
                                                              else argv),
        "seed": args.seed, "size": list(args.size), "cases_per_style": args.cases,
        "dense_g": DENSE_G, "python": platform.python_version(), "styles": {},
    }
    for style in args.styles:
        images, masses, by_density = [], [], {}
        for spec in sample_dataset(args.cases, args.seed, style):
            ph = render(spec, tuple(args.size), args.seed)
            per_image, per_mass = measure_image(ph)
            images.append(per_image)
            masses.extend(per_mass)
            by_density.setdefault(spec.density, []).append(per_image["dense_share"])
        summary = {
            "n_images": len(images),
            "n_masses": len(masses),
            "background_level": _summary(images, "background_level"),
            "background_noise": _summary(images, "background_noise"),
            "gland_contrast": _summary(images, "gland_contrast"),
            "dense_share_by_density": {
                "abcd"[d - 1]: float(np.mean(v)) for d, v in sorted(by_density.items())
            },
            "mass_diameter_mm": _summary(masses, "diameter_mm"),
            "share_masses_5_30_mm": float(np.mean([5 <= m["diameter_mm"] <= 30 for m in masses])),
            "mass_contrast": _summary(masses, "contrast"),
            "mass_relative_contrast": _summary(masses, "relative_contrast"),
            "share_masses_in_dense_tissue": float(np.mean([m["in_dense"] for m in masses])),
            "threshold_dice": _summary(masses, "threshold_dice"),
            "share_masses_threshold_dice_below_0_5": float(
                np.mean([m["threshold_dice"] < 0.5 for m in masses])
            ),
        }
        result["styles"][style] = summary
    result["seconds"] = round(time.perf_counter() - start, 1)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    rows = [
        ("images / masses", lambda s: f"{s['n_images']} / {s['n_masses']}"),
        ("background level (median)", lambda s: f"{s['background_level']['median']:.3f}"),
        ("background noise (std)", lambda s: f"{s['background_noise']['median']:.3f}"),
        ("dense share a/b/c/d", lambda s: "/".join(
            f"{v:.2f}" for v in s["dense_share_by_density"].values())),
        ("mass diameter mm (median, p10-p90)", lambda s: "{median:.1f} ({p10:.1f}-{p90:.1f})"
         .format(**s["mass_diameter_mm"])),
        ("masses 5-30 mm", lambda s: f"{s['share_masses_5_30_mm']:.0%}"),
        ("mass contrast (median)", lambda s: f"{s['mass_contrast']['median']:.3f}"),
        ("mass / glandular contrast (median)",
         lambda s: f"{s['mass_relative_contrast']['median']:.2f}"),
        ("masses in dense tissue", lambda s: f"{s['share_masses_in_dense_tissue']:.0%}"),
        ("best global-threshold Dice (median)", lambda s: f"{s['threshold_dice']['median']:.2f}"),
        ("masses a threshold cannot find (<0.5)",
         lambda s: f"{s['share_masses_threshold_dice_below_0_5']:.0%}"),
    ]
    styles = list(result["styles"])
    print(f"{'measure':40s}" + "".join(f"{s:>16s}" for s in styles))
    for name, fmt in rows:
        print(f"{name:40s}" + "".join(f"{fmt(result['styles'][s]):>16s}" for s in styles))
    print(f"wrote {args.out} ({result['seconds']} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
