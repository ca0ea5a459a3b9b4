"""From attenuation to a displayed mammogram: exposure, scatter, then film or digital.

The tissue model (:mod:`mammo_common.synth.phantom`) gives, per pixel, the X-ray attenuation
line integral ``A`` (dimensionless, ``sum(mu * path)``). Both styles start from the same
physics and then differ where real sources differ:

* **exposure**: ``E = E0 * heel(x) * uneven(x, y) * exp(-A)`` with the heel effect (the
  cathode at the chest wall gives more exposure there, falling by 5-25 % towards the nipple)
  and a smooth unevenness of a few per cent, plus scatter: a blurred copy of the primary
  (scatter-to-primary ratio 0.2-0.5 under a grid), which lowers contrast.
* ``film`` (screen-film, then digitised, like DDSM): optical density from a sigmoid
  characteristic (H&D) curve ``OD(log10 E)`` between base + fog (about 0.15-0.25 OD) and
  ``Dmax`` (3.4-4.0), film gradient 2.5-3.8; grain (noise in OD, strongest at mid densities);
  the digitiser maps OD linearly to values up to its saturation density (3.0-3.6 OD), so the
  directly exposed background is dark but *not zero* (its level and noise vary per film),
  and adds streaks along its scan direction.
* ``digital`` (DR, "for presentation"): a linear detector with quantum noise, log
  transform, peripheral (thickness) equalisation that lifts the skin edge, then a vendor
  look-up table (sigmoid window) and a background at or near zero.

Values are display intensities in 0..1 with dense tissue bright (MONOCHROME2).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage as ndi

from mammo_common.synth.texture import smooth_field

__all__ = ["STYLES", "Source", "display", "draw_source"]

#: The imaging styles ``mammo synth --style`` offers (``mixed`` draws one per patient).
STYLES = ("film", "digital")


@dataclass(frozen=True)
class Source:
    """One acquisition's settings (drawn per image, so a dataset mixes films and digitisers).

    Attributes:
        style: ``film`` or ``digital``.
        heel: Fractional exposure drop from the chest wall to the far edge.
        uneven: Amplitude of smooth exposure unevenness.
        spr: Scatter-to-primary ratio.
        gamma: Film gradient (film) or LUT slope (digital).
        offset: Exposure offset in log10 units around automatic exposure control.
        base_fog: Film base + fog optical density.
        dmax: Film maximum optical density.
        d_sat: Digitiser saturation density (film) / window upper percentile (digital).
        bg_level: Background display level (film: digitiser floor; digital: near zero).
        noise: Grain (film, OD units) or relative quantum noise (digital).
        streaks: Digitiser streak amplitude (film only).
        equalise: Peripheral equalisation strength (digital only).
        curve: Exponent of the final display curve.
    """

    style: str
    heel: float
    uneven: float
    spr: float
    gamma: float
    offset: float
    base_fog: float
    dmax: float
    d_sat: float
    bg_level: float
    noise: float
    streaks: float
    equalise: float
    curve: float


def draw_source(rng: np.random.Generator, style: str) -> Source:
    """Draw the acquisition settings of one image in ``style``."""
    if style not in STYLES:
        raise ValueError(f"unknown style {style!r}; use one of {STYLES}")
    common = {
        "heel": float(rng.uniform(0.05, 0.25)),
        "uneven": float(rng.uniform(0.01, 0.05)),
        "spr": float(rng.uniform(0.2, 0.5)),
        "offset": float(rng.uniform(-0.12, 0.12)),
        "curve": float(rng.uniform(0.8, 1.25)),
    }
    if style == "film":
        return Source(
            style=style, gamma=float(rng.uniform(2.5, 3.8)),
            base_fog=float(rng.uniform(0.15, 0.25)), dmax=float(rng.uniform(3.4, 4.0)),
            d_sat=float(rng.uniform(3.0, 3.6)), bg_level=float(rng.uniform(0.04, 0.16)),
            noise=float(rng.uniform(0.015, 0.04)), streaks=float(rng.uniform(0.002, 0.012)),
            equalise=0.0, **common,
        )
    return Source(
        style=style, gamma=float(rng.uniform(2.0, 3.5)), base_fog=0.0, dmax=0.0,
        d_sat=float(rng.uniform(99.0, 99.9)), bg_level=float(rng.uniform(0.0, 0.02)),
        noise=float(rng.uniform(0.008, 0.02)), streaks=0.0,
        equalise=float(rng.uniform(0.3, 0.7)), **common,
    )


def _exposure(
    rng: np.random.Generator, atten: NDArray, breast: NDArray, src: Source, spacing_mm: float,
    chest_left: bool,
) -> NDArray[np.float32]:
    h, w = atten.shape
    x = np.arange(w, dtype=np.float32) / max(w - 1, 1)
    heel = 1.0 - src.heel * (x if chest_left else 1.0 - x)
    uneven = 1.0 + src.uneven * smooth_field(rng, (h, w), 60.0 / spacing_mm)
    primary = np.exp(-atten).astype(np.float32) * heel[None, :] * uneven
    # scatter: a wide blur of the primary, from the breast only (air scatters little)
    sigma = 10.0 / spacing_mm
    f = max(1, int(sigma // 4))
    small = primary[::f, ::f] * breast[::f, ::f]
    scat = ndi.gaussian_filter(small, sigma / f, mode="nearest")
    scat = ndi.zoom(scat, (h / scat.shape[0], w / scat.shape[1]), order=1)[:h, :w]
    scat = np.pad(scat, [(0, h - scat.shape[0]), (0, w - scat.shape[1])], mode="edge")
    inside = ndi.gaussian_filter(breast.astype(np.float32)[::f, ::f], sigma / f)
    inside = ndi.zoom(inside, (h / inside.shape[0], w / inside.shape[1]), order=1)[:h, :w]
    inside = np.pad(inside, [(0, h - inside.shape[0]), (0, w - inside.shape[1])], mode="edge")
    return (primary + src.spr * scat * (inside > 0.02)).astype(np.float32)


def _film(
    rng: np.random.Generator, exposure: NDArray, breast: NDArray, src: Source
) -> NDArray[np.float32]:
    log_e = np.log10(np.maximum(exposure, 1e-6))
    # automatic exposure control: the breast's median lands a little above mid-curve
    mid = float(np.median(log_e[breast])) + 0.15 + src.offset
    span = src.dmax - src.base_fog
    od = src.base_fog + span / (1.0 + np.exp(-(log_e - mid) * 4.0 * src.gamma / span))
    grain = ndi.gaussian_filter(rng.standard_normal(od.shape).astype(np.float32), 0.6)
    grain /= float(grain.std()) + 1e-8
    od = od + src.noise * grain * (0.5 + np.clip(od / 2.0, 0, 1.0))
    value = (src.d_sat - od) / (src.d_sat - src.base_fog)
    value = np.clip(value, 0.0, 1.0) ** src.curve
    # digitiser: floor (the background is dark, not black), read noise and scan streaks
    value = src.bg_level + (1.0 - src.bg_level) * value
    value += 0.006 * rng.standard_normal(value.shape).astype(np.float32)
    cols = ndi.gaussian_filter1d(rng.standard_normal(value.shape[1]).astype(np.float32), 0.7)
    lines = np.zeros(value.shape[1], np.float32)
    for _ in range(int(rng.integers(0, 4))):
        lines[int(rng.integers(value.shape[1]))] = float(rng.choice([-1, 1]) * rng.uniform(2, 5))
    value += src.streaks * (cols + lines)[None, :]
    return value.astype(np.float32)


def _digital(
    rng: np.random.Generator, exposure: NDArray, breast: NDArray, thin: NDArray, src: Source,
) -> NDArray[np.float32]:
    quanta = 4000.0 / (src.noise / 0.01) ** 2
    counts = exposure * quanta
    counts = counts + np.sqrt(np.maximum(counts, 1.0)) * rng.standard_normal(counts.shape)
    log_i = -np.log(np.maximum(counts, 1.0) / quanta)
    log_i = log_i + src.equalise * thin  # peripheral equalisation lifts the thin skin edge
    inside = log_i[breast]
    lo = float(np.percentile(inside, 0.5))
    hi = float(np.percentile(inside, src.d_sat))
    z = (log_i - lo) / max(hi - lo, 1e-6)
    lut = 1.0 / (1.0 + np.exp(-(z - 0.5) * src.gamma))
    lut0, lut1 = 1.0 / (1.0 + np.exp(0.5 * src.gamma)), 1.0 / (1.0 + np.exp(-0.5 * src.gamma))
    value = np.clip((lut - lut0) / (lut1 - lut0), 0.0, 1.0) ** src.curve
    value = np.where(breast, 0.05 + 0.95 * value, src.bg_level)
    value = value + 0.002 * rng.standard_normal(value.shape)
    return value.astype(np.float32)


def display(
    rng: np.random.Generator,
    atten: NDArray,
    breast: NDArray,
    thin: NDArray,
    src: Source,
    spacing_mm: float,
    *,
    chest_left: bool,
) -> NDArray[np.float32]:
    """The displayed image (0..1, dense bright) of an attenuation map.

    Args:
        rng: Random stream of this image.
        atten: Attenuation line integral per pixel (0 in air).
        breast: Breast mask.
        thin: Missing thickness towards the skin (attenuation units; digital equalisation).
        src: Acquisition settings.
        spacing_mm: Pixel size.
        chest_left: Whether the chest wall is at the left edge (heel effect direction).
    """
    exposure = _exposure(rng, atten, breast, src, spacing_mm, chest_left)
    if src.style == "film":
        img = _film(rng, exposure, breast, src)
    else:
        img = _digital(rng, exposure, breast, thin, src)
    return np.clip(img, 0.0, 1.0).astype(np.float32)

