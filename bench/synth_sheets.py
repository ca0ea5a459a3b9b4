"""Contact sheets of ``mammo synth`` phantoms for the docs: whole images and mass close-ups.

Writes ``docs/images/synth_<style>.png`` (eight mammograms as stored, no overlay) and
``docs/images/synth_<style>_masses.png`` (close-ups 48 mm wide, each shown plain and with the
exact truth outline, contrast-stretched per tile as a reader would window them).

    .venv/bin/python bench/synth_sheets.py
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw
from scipy import ndimage as ndi

from mammo_common.synth.cases import sample_dataset
from mammo_common.synth.phantom import render

DOCS = Path(__file__).resolve().parents[1] / "docs" / "images"


def _rgb(gray: np.ndarray) -> np.ndarray:
    g = (np.clip(gray, 0, 1) * 255).astype(np.uint8)
    return np.stack([g] * 3, -1)


def _grid(tiles: list[np.ndarray], cols: int) -> np.ndarray:
    rows = [np.concatenate(tiles[i:i + cols], 1) for i in range(0, len(tiles), cols)]
    return np.concatenate(rows, 0)


def sheets(style: str, seed: int, size: tuple[int, int], out: Path) -> list[Path]:
    """Render and write the two sheets of one style; returns the paths."""
    specs = sample_dataset(16, seed, style)
    seen: set[tuple[int, str]] = set()
    whole, close = [], []
    for spec in specs:
        ph = render(spec, size, seed)
        if len(whole) < 8 and spec.view == ("CC" if len(whole) % 2 == 0 else "MLO"):
            tile = Image.fromarray(_rgb(ph.image))
            ImageDraw.Draw(tile).text((4, size[0] - 14), f"{spec.side[0]} {spec.view} "
                                      f"density {'abcd'[spec.density - 1]}", fill=(255, 200, 0))
            whole.append(np.asarray(tile))
        half = round(24.0 / ph.spacing_mm)
        for m, lesion in zip(ph.mass_masks, spec.lesions, strict=True):
            if len(close) >= 12 or not m.any() or (spec.patient_index, spec.side) in seen:
                continue
            cy, cx = (int(v.mean()) for v in np.nonzero(m))
            img = np.pad(ph.image, half, mode="constant")[cy:cy + 2 * half, cx:cx + 2 * half]
            mm = np.pad(m, half)[cy:cy + 2 * half, cx:cx + 2 * half]
            lo, hi = np.percentile(img, [1, 99])
            img = (img - lo) / max(hi - lo, 1e-6)
            plain, drawn = _rgb(img), _rgb(img)
            drawn[mm & ~ndi.binary_erosion(mm)] = (255, 60, 60)
            pair = np.concatenate([plain, drawn], 1)
            pair = np.kron(pair, np.ones((2, 2, 1), np.uint8))
            label = Image.fromarray(pair)
            ImageDraw.Draw(label).text(
                (3, 3), f"{lesion.pathology[:3]} {lesion.shape.lower()} "
                        f"{lesion.margins.lower()} {lesion.diameter_mm:.0f}mm", fill=(255, 200, 0))
            close.append(np.asarray(label))
        seen.add((spec.patient_index, spec.side))
    out.mkdir(parents=True, exist_ok=True)
    a, b = out / f"synth_{style}.png", out / f"synth_{style}_masses.png"
    Image.fromarray(_grid(whole, 4)).save(a)
    Image.fromarray(_grid(close, 3)).save(b)
    return [a, b]


def main(argv: list[str] | None = None) -> int:
    """Write the sheets of every style."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--size", type=int, nargs=2, default=(512, 384))
    ap.add_argument("--out", type=Path, default=DOCS)
    args = ap.parse_args(argv)
    for style in ("film", "digital"):
        for path in sheets(style, args.seed, tuple(args.size), args.out):
            print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
