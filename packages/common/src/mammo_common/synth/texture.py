"""Random fields for synthetic mammograms: power-law (1/f) texture, oriented streaks, smooth fields.

Mammographic parenchyma has a power spectrum that falls off as a power law,
``P(f) ~ 1 / f**beta`` with ``beta`` close to 3 over roughly 0.1-1 cycles/mm (Burgess et al.,
Med. Phys. 2001; Heine & Velthuizen, 2002). :func:`power_noise` draws such a field directly in
the Fourier domain, with the band limits given in millimetres so the texture has the same
physical scale at any pixel size. :func:`radial_streaks` draws structures that converge on the
nipple (ducts, Cooper's ligaments), :func:`smooth_field` slow variations (exposure, scatter).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage as ndi

__all__ = ["power_noise", "radial_streaks", "smooth_field", "unit"]


def unit(x: NDArray) -> NDArray[np.float32]:
    """``x`` shifted and scaled to zero mean and unit standard deviation (float32)."""
    x = np.asarray(x, dtype=np.float32)
    return ((x - float(x.mean())) / (float(x.std()) + 1e-8)).astype(np.float32)


def power_noise(
    rng: np.random.Generator,
    shape: tuple[int, int],
    *,
    beta: float = 3.0,
    spacing_mm: float = 1.0,
    low_mm: float = 60.0,
    high_mm: float = 0.6,
) -> NDArray[np.float32]:
    """A Gaussian random field with power spectrum ``1 / f**beta`` (unit variance).

    Args:
        rng: Random stream.
        shape: (rows, cols).
        beta: Spectral exponent (about 3 for breast parenchyma).
        spacing_mm: Pixel size, so that the band limits are physical.
        low_mm: Wavelength below which the power law flattens (no structure larger than this).
        high_mm: Wavelength of the Gaussian high-frequency roll-off.

    Returns:
        float32 field of ``shape``, zero mean, unit variance.
    """
    h, w = int(shape[0]), int(shape[1])
    fy = np.fft.fftfreq(h)[:, None] / spacing_mm
    fx = np.fft.rfftfreq(w)[None, :] / spacing_mm
    f2 = fy**2 + fx**2
    f0 = 1.0 / low_mm
    amp = (f2 + f0**2) ** (-beta / 4.0) * np.exp(-f2 * (high_mm**2) * 2.0)
    amp[0, 0] = 0.0
    spec = rng.standard_normal(amp.shape) + 1j * rng.standard_normal(amp.shape)
    field = np.fft.irfft2(spec * amp, s=(h, w))
    return unit(field)


def radial_streaks(
    rng: np.random.Generator,
    shape: tuple[int, int],
    origin: tuple[float, float],
    *,
    spacing_mm: float,
    along_mm: float = 25.0,
    across_deg: float = 0.8,
) -> NDArray[np.float32]:
    """Streaks radiating from ``origin`` (the nipple): long along rays, thin across them.

    Drawn on a polar grid (angle x radius), smoothed anisotropically and sampled back, so the
    cost does not depend on the image size.
    """
    h, w = shape
    oy, ox = origin
    n_phi, n_r = 1440, 256
    r_max = float(np.hypot(max(oy, h - oy), max(ox, w - ox))) + 1.0
    grid = rng.standard_normal((n_phi, n_r)).astype(np.float32)
    sig_r = along_mm / spacing_mm / r_max * n_r
    sig_phi = across_deg / 360.0 * n_phi
    grid = ndi.gaussian_filter(grid, (max(sig_phi, 0.5), max(sig_r, 0.5)), mode=("wrap", "nearest"))
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    phi = (np.arctan2(yy - oy, xx - ox) % (2 * np.pi)) / (2 * np.pi) * n_phi
    rad = np.hypot(yy - oy, xx - ox) / r_max * (n_r - 1)
    out = ndi.map_coordinates(grid, [phi, rad], order=1, mode="grid-wrap")
    return unit(out)


def smooth_field(
    rng: np.random.Generator, shape: tuple[int, int], sigma_px: float
) -> NDArray[np.float32]:
    """A slowly varying field (unit variance), drawn coarse and upsampled (cheap at any size)."""
    h, w = shape
    f = max(1, int(sigma_px // 4))
    small = (max(2, -(-h // f)), max(2, -(-w // f)))
    n = ndi.gaussian_filter(rng.standard_normal(small).astype(np.float32), sigma_px / f,
                            mode="reflect")
    if f > 1:
        n = ndi.zoom(n, (h / small[0] * 1.0001, w / small[1] * 1.0001), order=1)
        n = np.pad(n, [(0, max(0, h - n.shape[0])), (0, max(0, w - n.shape[1]))],
                   mode="edge")[:h, :w]
    return unit(n)
