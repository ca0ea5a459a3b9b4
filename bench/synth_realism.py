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
  breast reaches against the mass (a mass a threshold can isolate scores near 1);
* **descriptor visibility**: do the pixels show the BI-RADS shape and margins a mass is
  labelled with? Each mass's ROI (96x96, a square around the truth mask's bounding box with a
  margin of 0.5 each side, as :func:`massclass.rois.crop_roi`; the image scaled by its maximum)
  goes through :class:`massclass.descriptors.MassDescriptors` (with the classifier's smoothing
  of 1.5 pixels), and a logistic regression
  (standardised; stratified 5-fold CV, seed 0) of malignant vs benign is scored by ROC AUC on
  the shape descriptors, the pixel/margin descriptors and all of them; then again with the
  truth mask replaced by the ellipse of equal area and the same second moments, so that only
  the pixels can carry the outline. Needs ``massclass`` (imported only for this; skipped with
  ``--no-descriptors`` or when it is not installed).

``--sheet PNG`` also draws a contact sheet of mass crops, one row per margin type.

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

from mammo_common.crops import padded_crop, resize_bilinear
from mammo_common.synth.cases import sample_dataset
from mammo_common.synth.phantom import render

#: Projected glandular fraction from which tissue counts as dense.
DENSE_G = 0.2
RESULTS = Path(__file__).resolve().parent / "results"
#: ROI side and margin of the descriptor-visibility measurement (as massclass.rois.crop_roi).
ROI_SIZE, ROI_MARGIN = 96, 0.5
SHAPE_FEATURES = ("circularity", "elongation", "roughness")
PIXEL_FEATURES = ("contrast", "relative_contrast", "sharpness", "spiculation", "heterogeneity")
MARGINS = ("CIRCUMSCRIBED", "MICROLOBULATED", "OBSCURED", "ILL_DEFINED", "SPICULATED")


def best_threshold_dice(image: np.ndarray, breast: np.ndarray, mass: np.ndarray) -> float:
    """The best Dice of ``image >= t`` (inside the breast) against ``mass`` over all ``t``."""
    values = image[breast]
    truth = mass[breast]
    order = np.argsort(-values, kind="stable")
    hits = np.cumsum(truth[order])
    k = np.arange(1, len(order) + 1)
    dice = 2 * hits / (k + truth.sum())
    return float(dice.max())


def measure_image(ph, spec=None) -> tuple[dict, list[dict]]:
    """Per-image and per-mass measurements of one phantom (``spec`` adds the margins)."""
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
    margins = [les.margins for les in spec.lesions] if spec is not None else [None] * len(
        ph.mass_masks)
    for m, margin in zip(ph.mass_masks, margins, strict=True):
        if not m.any():
            continue
        r = np.sqrt(m.sum() / np.pi)
        outer = ndi.binary_dilation(m, iterations=max(2, round(1.5 * r)))
        inner = ndi.binary_dilation(m, iterations=max(1, round(0.5 * r)))
        ring = outer & ~inner & breast
        contrast = float(img[m].mean() - img[ring].mean())
        masses.append({
            "style": ph.style,
            "margins": margin,
            "diameter_mm": float(2 * r * ph.spacing_mm),
            "contrast": contrast,
            "relative_contrast": contrast / gland_contrast if gland_contrast > 0 else np.nan,
            "in_dense": bool(np.median(gland[ring]) >= DENSE_G),
            "threshold_dice": best_threshold_dice(img, breast, m),
        })
    return per_image, masses


def _crop_box(mask: np.ndarray, margin: float = ROI_MARGIN) -> tuple[int, int, int, int]:
    """Square box around ``mask``'s bounding box, as ``massclass.rois.crop_box``."""
    rows, cols = np.nonzero(mask)
    y0, x0, y1, x1 = rows.min(), cols.min(), rows.max() + 1, cols.max() + 1
    side = max(round(max(y1 - y0, x1 - x0) * (1.0 + 2.0 * margin)), 32)
    top = int(np.floor((y0 + y1) / 2.0 - side / 2.0))
    left = int(np.floor((x0 + x1) / 2.0 - side / 2.0))
    return top, left, top + side, left + side


def _crop(array: np.ndarray, box: tuple[int, int, int, int], size: int | None) -> np.ndarray:
    """Zero-padded float32 crop of ``box``, resized (bilinear) to ``size`` unless ``None``."""
    out = padded_crop(array, box).astype(np.float32, copy=False)
    return out if size is None else resize_bilinear(out, size)


def equivalent_ellipse(mask: np.ndarray) -> np.ndarray:
    """The ellipse with ``mask``'s centroid, orientation and axis ratio, and its area."""
    rows, cols = np.nonzero(mask)
    cy, cx = rows.mean(), cols.mean()
    cov = np.cov(np.stack([rows - cy, cols - cx])) + 1e-6 * np.eye(2)
    evals, evecs = np.linalg.eigh(cov)
    ratio = np.sqrt(evals[1] / evals[0])  # major / minor
    minor = np.sqrt(mask.sum() / (np.pi * ratio))
    yy, xx = np.mgrid[0:mask.shape[0], 0:mask.shape[1]].astype(np.float64)
    d = np.stack([yy - cy, xx - cx], axis=-1) @ evecs  # coordinates along minor, major
    return (d[..., 0] / minor) ** 2 + (d[..., 1] / (minor * ratio)) ** 2 <= 1.0


def mass_rois(ph, spec) -> list[dict]:
    """Per mass: the ``image+mask`` ROI with the truth mask and with its ellipse, and labels."""
    scaled = ph.image / max(float(ph.image.max()), 1e-6)
    out = []
    for lesion, m in zip(spec.lesions, ph.mass_masks, strict=True):
        if not m.any():
            continue
        box = _crop_box(m)
        gray = np.clip(_crop(scaled, box, ROI_SIZE), 0.0, 1.0)
        truth = (_crop(m.astype(np.float32), box, ROI_SIZE) >= 0.5).astype(np.float32)
        ell = equivalent_ellipse(m)
        ellipse = (_crop(ell.astype(np.float32), box, ROI_SIZE) >= 0.5).astype(np.float32)
        out.append({
            "style": ph.style, "malignant": lesion.pathology == "MALIGNANT",
            "shape": lesion.shape, "margins": lesion.margins,
            "truth": np.stack([gray, gray, truth], -1),
            "ellipse": np.stack([gray, gray, ellipse], -1),
            "crop": _crop(ph.image, box, None), "mask": _crop(m.astype(np.float32), box, None),
        })
    return out


def _cv_auc(x: np.ndarray, y: np.ndarray) -> float:
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if len(np.unique(y)) < 2 or min(np.bincount(y)) < 5:
        return float("nan")
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    folds = StratifiedKFold(5, shuffle=True, random_state=0)
    p = cross_val_predict(model, x, y, cv=folds, method="predict_proba")[:, 1]
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(y, p))


def descriptor_visibility(rois: list[dict]) -> dict:
    """CV AUC of malignant vs benign from the descriptors of the ROIs (see the module docs)."""
    from massclass.descriptors import DESCRIPTOR_NAMES, SMOOTH_FRACTION, MassDescriptors

    # as the classifier measures them: margin descriptors on the smoothed crop
    layer = MassDescriptors(value_range=(0.0, 1.0), smooth=SMOOTH_FRACTION * 96)
    y_all = np.array([r["malignant"] for r in rois], dtype=int)
    feats = {kind: np.asarray(layer(np.stack([r[kind] for r in rois]).astype(np.float32)))
             for kind in ("truth", "ellipse")}
    groups = {"shape": SHAPE_FEATURES, "pixel": PIXEL_FEATURES, "all": DESCRIPTOR_NAMES}
    cols = {g: [DESCRIPTOR_NAMES.index(n) for n in names] for g, names in groups.items()}
    out: dict = {"features": {g: list(n) for g, n in groups.items()}}
    for subset in [*sorted({r["style"] for r in rois}), "both"]:
        keep = np.array([subset in ("both", r["style"]) for r in rois])
        y = y_all[keep]
        res = {"n_masses": int(keep.sum()), "n_malignant": int(y.sum())}
        for kind, f in feats.items():
            for g, c in cols.items():
                res[f"{kind}_{g}_auc"] = _cv_auc(f[keep][:, c], y)
        out[subset] = res
    margins = np.array([r["margins"] for r in rois])
    out["pixel_medians_by_margin"] = {
        mg: {n: float(np.median(feats["truth"][margins == mg, DESCRIPTOR_NAMES.index(n)]))
             for n in PIXEL_FEATURES}
        for mg in MARGINS if (margins == mg).any()
    }
    return out


def contact_sheet(rois: list[dict], out: Path, per_row: int = 6) -> None:
    """Mass crops (``per_row`` per margin type), plain window per tile, thin truth contour."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(MARGINS), per_row, figsize=(1.35 * per_row, 1.5 * len(MARGINS)),
                             dpi=100)
    for i, margin in enumerate(MARGINS):
        picks = [r for r in rois if r["margins"] == margin]
        picks = picks[:: max(1, len(picks) // per_row)][:per_row]
        for j in range(per_row):
            ax = axes[i, j]
            ax.set_xticks([])
            ax.set_yticks([])
            if j == 0:
                ax.set_ylabel(margin.lower().replace("_", "-"), fontsize=7)
            if j >= len(picks):
                ax.axis("off")
                continue
            r = picks[j]
            lo, hi = np.percentile(r["crop"][r["crop"] > 0], [1, 99.7]) if (
                r["crop"] > 0).any() else (0, 1)
            ax.imshow(r["crop"], cmap="gray", vmin=lo, vmax=hi, interpolation="nearest")
            ax.contour(r["mask"], levels=[0.5], colors="#ff5030", linewidths=0.5, alpha=0.45)
            ax.set_title(f"{r['shape'].lower()} {'M' if r['malignant'] else 'B'} {r['style'][0]}",
                         fontsize=6, pad=1.5)
    fig.suptitle("masses by margin (crop = bbox + 50 % each side; M malignant, B benign; "
                 "f film, d digital)", fontsize=7)
    fig.tight_layout(pad=0.3)
    fig.subplots_adjust(top=0.94)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100)
    plt.close(fig)
    from PIL import Image

    Image.open(out).convert("RGB").quantize(96).save(out, optimize=True)  # small PNG


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
    ap.add_argument("--no-descriptors", action="store_true",
                    help="skip the descriptor-visibility measurement (needs massclass)")
    ap.add_argument("--sheet", type=Path, default=None,
                    help="also write a contact sheet of mass crops per margin type (PNG)")
    args = ap.parse_args(argv)
    start = time.perf_counter()
    result: dict = {
        "command": "python bench/synth_realism.py " + " ".join(sys.argv[1:] if argv is None
                                                              else argv),
        "seed": args.seed, "size": list(args.size), "cases_per_style": args.cases,
        "dense_g": DENSE_G, "python": platform.python_version(), "styles": {},
    }
    rois: list[dict] = []
    for style in args.styles:
        images, masses, by_density = [], [], {}
        for spec in sample_dataset(args.cases, args.seed, style):
            ph = render(spec, tuple(args.size), args.seed)
            rois.extend(mass_rois(ph, spec))
            per_image, per_mass = measure_image(ph, spec)
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
            "mass_contrast_median_by_margin": {
                mg: float(np.median([m["contrast"] for m in masses if m["margins"] == mg]))
                for mg in MARGINS if any(m["margins"] == mg for m in masses)
            },
            "share_masses_in_dense_tissue": float(np.mean([m["in_dense"] for m in masses])),
            "threshold_dice": _summary(masses, "threshold_dice"),
            "share_masses_threshold_dice_below_0_5": float(
                np.mean([m["threshold_dice"] < 0.5 for m in masses])
            ),
        }
        result["styles"][style] = summary
    visibility = None
    if not args.no_descriptors:
        try:
            visibility = descriptor_visibility(rois)
        except ImportError as exc:  # massclass (keras) not installed
            print(f"descriptor visibility skipped: {exc}")
    if visibility is not None:
        result["descriptor_visibility"] = visibility
    if args.sheet is not None:
        contact_sheet(rois, args.sheet)
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
        *[(f"  contrast, {mg.lower()}", lambda s, mg=mg: "{:.3f}".format(
            s["mass_contrast_median_by_margin"].get(mg, float("nan")))) for mg in MARGINS],
        ("masses in dense tissue", lambda s: f"{s['share_masses_in_dense_tissue']:.0%}"),
        ("best global-threshold Dice (median)", lambda s: f"{s['threshold_dice']['median']:.2f}"),
        ("masses a threshold cannot find (<0.5)",
         lambda s: f"{s['share_masses_threshold_dice_below_0_5']:.0%}"),
    ]
    styles = list(result["styles"])
    print(f"{'measure':40s}" + "".join(f"{s:>16s}" for s in styles))
    for name, fmt in rows:
        print(f"{name:40s}" + "".join(f"{fmt(result['styles'][s]):>16s}" for s in styles))
    if visibility is not None:
        subsets = [k for k in visibility if k in (*styles, "both")]
        print("\ndescriptor visibility: 5-fold CV ROC AUC, malignant vs benign "
              "(logistic regression on MassDescriptors of 96x96 ROIs)")
        print(f"{'mask / features':40s}" + "".join(f"{s:>16s}" for s in subsets))
        print(f"{'masses (malignant)':40s}" + "".join(
            "{:>16s}".format(f"{visibility[s]['n_masses']} ({visibility[s]['n_malignant']})")
            for s in subsets))
        for kind in ("truth", "ellipse"):
            for g in ("shape", "pixel", "all"):
                print(f"{kind + ' mask, ' + g + ' features':40s}" + "".join(
                    f"{visibility[s][f'{kind}_{g}_auc']:>16.3f}" for s in subsets))
        print("\npixel descriptors by margin (median, truth mask)")
        print(f"{'margins':16s}" + "".join(f"{n:>18s}" for n in PIXEL_FEATURES))
        for mg, vals in visibility["pixel_medians_by_margin"].items():
            print(f"{mg:16s}" + "".join(f"{vals[n]:>18.3f}" for n in PIXEL_FEATURES))
    print(f"wrote {args.out} ({result['seconds']} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
