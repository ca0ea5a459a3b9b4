"""The image model of a synthetic mammogram: anatomy and attenuation, then an imaging style.

Rendered in a canonical orientation with the chest wall at the left edge (x = 0), then flipped
for RIGHT breasts, so a LEFT breast has its chest wall on the left of the image. Pixel size:
the image height spans a 240 mm film (0.47 mm at 512 rows).

Anatomy, in attenuation (``mu`` per mm at about 20 keV, Johns & Yaffe, Phys. Med. Biol. 1987:
fat 0.0456, fibroglandular 0.0802, invasive carcinoma 0.0844):

* compressed thickness ``T0`` 40-65 mm, rolling off over the last ``T0 / 2`` mm towards the
  skin (the edge is thinner, hence darker, but not blank), with a skin line;
* fibroglandular tissue: the projected glandular fraction ``G`` of the thickness, a 1/f**3
  texture (:func:`~mammo_common.synth.texture.power_noise`) plus streaks converging on the
  nipple, held off the subcutaneous and retromammary fat, thresholded so that the dense share of
  the breast follows BI-RADS density a-d (5-20 %, 20-40 %, 40-60 %, 60-80 %);
* pectoral muscle on MLO views: a thick band in the upper chest-wall corner;
* masses: an ellipsoid-like body of tissue 15-27 % denser than fibroglandular tissue (denser
  for more conspicuous masses) that *displaces* what was there, so a mass in fat stands out
  while a mass in dense tissue adds little (many are not findable by a global threshold);
  mostly 5-30 mm (:mod:`~mammo_common.synth.cases`); textured; BI-RADS shape (round, oval,
  lobulated, irregular) and margins (circumscribed: sharp; microlobulated: small undulations;
  obscured: partly hidden by overlying glandular tissue; ill-defined: blurred; spiculated:
  radiating spicules outside the body). The truth mask is the body.

The attenuation map goes through :func:`~mammo_common.synth.imaging.display` (heel effect,
uneven exposure, scatter, then film or digital) and the artefacts of
:mod:`~mammo_common.synth.artefacts` are laid over the background.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage as ndi

from mammo_common.synth.artefacts import draw_artefacts
from mammo_common.synth.cases import ImageSpec, LesionSpec
from mammo_common.synth.imaging import display, draw_source
from mammo_common.synth.texture import power_noise, radial_streaks

#: Film height in mm: the image height spans it, which sets the pixel size.
FILM_HEIGHT_MM = 240.0
MU_FAT, MU_GLAND, MU_MASS, MU_MUSCLE, MU_SKIN = 0.0456, 0.0802, 0.0844, 0.083, 0.08
#: Dense (fibroglandular) share of the breast area per BI-RADS density 1-4 (a-d).
DENSE_SHARE = {1: (0.05, 0.2), 2: (0.2, 0.4), 3: (0.4, 0.6), 4: (0.6, 0.8)}


@dataclass
class Phantom:
    """A rendered mammogram and its ground truth.

    Attributes:
        image: float32 (H, W) display intensities in 0..1, dense tissue bright.
        breast_mask: The breast (skin line included).
        pectoral_mask: The pectoral muscle (empty in CC views).
        mass_masks: The exact body of each mass, in lesion order.
        marks_mask: Labels, markers, rulers and film edges (all outside the breast).
        gland: Projected fibroglandular fraction (0..1) of each pixel, for realism measures.
        style: ``film`` or ``digital``.
        spacing_mm: Pixel size in millimetres.
    """

    image: np.ndarray
    breast_mask: np.ndarray
    pectoral_mask: np.ndarray
    mass_masks: list[np.ndarray] = field(default_factory=list)
    marks_mask: np.ndarray | None = None
    gland: np.ndarray | None = None
    style: str = "film"
    spacing_mm: float = 0.5


def _breast_geometry(
    rng: np.random.Generator, shape: tuple[int, int], view: str
) -> tuple[np.ndarray, np.ndarray, dict[str, float]]:
    h, w = shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    a = w * rng.uniform(0.62, 0.8)
    if view == "CC":
        cy = h * rng.uniform(0.46, 0.54)
        b_up = h * rng.uniform(0.33, 0.42)
        b_dn = b_up * rng.uniform(0.92, 1.08)
    else:
        cy = h * rng.uniform(0.44, 0.52)
        b_dn = h * rng.uniform(0.34, 0.42)
        b_up = cy + h * rng.uniform(0.03, 0.08)
    dy = np.where(yy < cy, (yy - cy) / b_up, (yy - cy) / b_dn)
    dx = xx / a
    rho = np.hypot(dx, dy)
    theta = np.arctan2(dy, dx)
    p1, p2 = rng.uniform(0, 2 * np.pi, 2)
    edge = 1 + 0.035 * np.sin(2 * theta + p1) + 0.02 * np.sin(3 * theta + p2)
    breast = rho < edge
    pect = np.zeros(shape, bool)
    if view == "MLO":
        top_width = a * np.sqrt(max(1e-3, 1 - (cy / b_up) ** 2))
        pw = max(2.0, min(top_width * 0.85, a * rng.uniform(0.3, 0.45)))
        ph = h * rng.uniform(0.42, 0.62)
        bend = rng.uniform(0.8, 1.0)
        pect = breast & ((xx / pw) ** bend + yy / ph < 1.0)
    geo = {"a": a, "cy": cy, "b": (b_up + b_dn) / 2}
    return breast, pect, geo


def _radius_function(
    rng: np.random.Generator, lesion: LesionSpec, r: float, spacing_mm: float = 0.5
) -> tuple[callable, float]:  # type: ignore[valid-type]
    """The body's outline: radius (pixels) as a function of the angle, and its orientation.

    An ellipse of mean radius ``r`` (elongated for OVAL) times ``1 + sum a_m cos(m theta)``:
    ROUND and OVAL nearly smooth; LOBULATED 3-4 broad lobes; IRREGULAR harmonics 2-14 with a
    ``m^-0.8`` spectrum (an rms of 22-32 % of the radius: angular, uneven, visibly irregular at
    reading scale). MICROLOBULATED margins add undulations of 2.5-4 mm period and 0.4-0.8 mm
    depth (physical sizes, so they show at any pixel size where a pixel resolves them).
    """
    phi = rng.uniform(0, 2 * np.pi)
    r_mm = r * spacing_mm
    if lesion.shape == "ROUND":
        amps = [(2, 0.04, phi)]
        k = 1.0
    elif lesion.shape == "OVAL":
        amps = [(2, 0.03, phi)]
        k = rng.uniform(1.25, 1.55)
    elif lesion.shape == "LOBULATED":
        n = int(rng.choice([3, 4]))
        amps = [(n, 0.16, phi), (2, 0.05, rng.uniform(0, 2 * np.pi))]
        k = rng.uniform(1.0, 1.2)
    else:  # IRREGULAR
        ms = np.arange(2, 15)
        a = rng.uniform(0.4, 1.0, ms.size) * ms.astype(float) ** -0.8
        a *= rng.uniform(0.22, 0.32) / np.sqrt(0.5 * float((a**2).sum()))
        amps = [(int(m), float(am), rng.uniform(0, 2 * np.pi)) for m, am in zip(ms, a, strict=True)]
        k = rng.uniform(1.0, 1.3)
    if lesion.margins == "MICROLOBULATED":
        for _ in range(2):
            m = int(np.clip(round(2 * np.pi * r_mm / rng.uniform(2.5, 4.0)), 6, 40))
            amp = min(0.12, rng.uniform(0.4, 0.8) / max(r_mm, 1e-3) / np.sqrt(2))
            amps.append((m, amp, rng.uniform(0, 2 * np.pi)))
    rot = rng.uniform(0, np.pi)

    def radius(theta: np.ndarray) -> np.ndarray:
        ell = r / np.sqrt((np.cos(theta - rot) / k) ** 2 + (np.sin(theta - rot) * k) ** 2)
        wobble = 1 + sum(a * np.cos(m * theta + p) for m, a, p in amps)
        return ell * np.maximum(wobble, 0.3)

    return radius, rot


def _edge_distance_mm(breast: NDArray, spacing_mm: float) -> NDArray[np.float32]:
    """Distance to the skin in mm (the chest wall at x = 0 is not skin)."""
    padded = np.pad(breast, ((0, 0), (1, 0)), constant_values=True)
    return (ndi.distance_transform_edt(padded)[:, 1:] * spacing_mm).astype(np.float32)


def _thickness(dist_mm: NDArray, breast: NDArray, t0: float) -> NDArray[np.float32]:
    """Compressed thickness: ``t0`` inside, a rounded roll-off over the last ``t0 / 2`` mm."""
    u = np.clip(dist_mm / (0.5 * t0), 0.0, 1.0)
    t = t0 * (0.18 + 0.82 * np.sqrt(u * (2.0 - u)))
    return np.where(breast, t, 0.0).astype(np.float32)


def _gland(
    rng: np.random.Generator,
    breast: NDArray,
    dist_mm: NDArray,
    geo: dict[str, float],
    density: int,
    spacing_mm: float,
) -> NDArray[np.float32]:
    """Projected fibroglandular fraction: 1/f texture + nipple streaks, BI-RADS dense share."""
    h, w = breast.shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    nipple = (geo["cy"], geo["a"])
    tex = (
        0.85 * power_noise(rng, (h, w), beta=3.0, spacing_mm=spacing_mm, low_mm=50.0)
        + 0.25 * radial_streaks(rng, (h, w), nipple, spacing_mm=spacing_mm)
        * np.clip(np.hypot(yy - nipple[0], xx - nipple[1]) * spacing_mm / 40.0, 0.0, 1.0)
        + 0.35 * power_noise(rng, (h, w), beta=2.0, spacing_mm=spacing_mm, low_mm=8.0,
                            high_mm=0.4)
    )
    cone = np.exp(-(((yy - geo["cy"]) / (0.8 * geo["b"])) ** 2))
    cone *= 1.0 - 0.35 * np.exp(-xx / (0.12 * geo["a"]))  # retromammary fat
    env = cone * np.clip(dist_mm / 10.0 - 0.2, 0.0, 1.0)  # subcutaneous fat
    fld = tex + 2.2 * env
    lo, hi = DENSE_SHARE[int(density)]
    share = rng.uniform(lo, hi)
    inside = fld[breast]
    thr = float(np.quantile(inside, 1.0 - share)) if inside.size else 0.0
    gmax = rng.uniform(0.35, 0.5) + 0.03 * int(density)
    g = gmax * (1.0 / (1.0 + np.exp(-(fld - thr) / 0.6)))
    g *= 1.0 - _fat_lobules(rng, (h, w), spacing_mm)
    g *= np.clip(dist_mm / 4.0, 0.0, 1.0)
    return np.where(breast, g, 0.0).astype(np.float32)


def _fat_lobules(
    rng: np.random.Generator, shape: tuple[int, int], spacing_mm: float
) -> NDArray[np.float32]:
    """Fat lobules interspersed in the parenchyma: round lucencies of 2-8 mm (0..~0.8).

    Dense tissue on a real mammogram is not a solid blob: fat lobules and the septa between
    them break it up, which is what tells a reader glandular tissue from a mass.
    """
    h, w = shape
    area_mm2 = h * w * spacing_mm**2
    out = np.zeros(shape, np.float32)
    for radius_mm, per_cm2 in ((2.0, 0.5), (3.5, 0.25), (6.0, 0.08)):
        n = rng.poisson(per_cm2 * area_mm2 / 100.0)
        dots = np.zeros(shape, np.float32)
        ys, xs = rng.integers(0, h, n), rng.integers(0, w, n)
        np.add.at(dots, (ys, xs), rng.uniform(0.6, 1.0, n).astype(np.float32))
        sigma = radius_mm / spacing_mm / 1.5
        blob = ndi.gaussian_filter(dots, sigma) * (2 * np.pi * sigma**2)
        out = np.maximum(out, blob)
    return np.clip(out, 0.0, 0.85)


def _local(centre: tuple[float, float], extent: float, shape: tuple[int, int]):
    cy, cx = centre
    y0, y1 = max(0, int(cy - extent)), min(shape[0], int(cy + extent) + 2)
    x0, x1 = max(0, int(cx - extent)), min(shape[1], int(cx + extent) + 2)
    return slice(y0, y1), slice(x0, x1)


def mass_layers(
    rng: np.random.Generator,
    lesion: LesionSpec,
    centre: tuple[float, float],
    r: float,
    shape: tuple[int, int],
    *,
    spacing_mm: float = 0.5,
) -> tuple[NDArray[np.bool_], NDArray[np.float32], NDArray[np.float32]]:
    """Render one mass: body mask, mass tissue thickness (mm) and overlying gland (mm).

    The body is a star-shaped outline from the BI-RADS shape (:func:`_radius_function`); the
    thickness is the chord of an ellipsoid through it (so a circumscribed margin is sharp),
    textured; the margins shape the edge:

    * CIRCUMSCRIBED, MICROLOBULATED: the body, blurred by 0.35 mm only (sharp);
    * OBSCURED: a little softer, and part of it covered by a blob of overlying gland;
    * ILL_DEFINED: the body's outline kept (blur of 6-10 % of the radius) but its edge
      infiltrative: a rim whose extent varies along the outline, tissue thinning out from
      0.6 to 1.35 radii, a faint skirt fading over about a third of the radius, and fine
      strands (0.3-0.7 mm, 2-10 mm long) into the surrounding tissue, so the border is
      indistinct without becoming a round blob;
    * SPICULATED: radiating spicules (:func:`_spicules`), as dense as the body near its edge
      at their base, 1-3 mm wide there and tapering over 5-30 mm (the architectural
      distortion around them is :func:`_radial_pull`, applied by the caller).

    Everything outside the body is mass-like tissue; the body alone is the truth mask. Sizes
    are in mm, so the look does not depend on the pixel size (down to a pixel).

    Args:
        rng: Random stream.
        lesion: Descriptors.
        centre: (row, col) of the centre.
        r: Mean radius in pixels.
        shape: Image (rows, cols).
        spacing_mm: Pixel size.
    """
    cy, cx = centre
    r_mm = r * spacing_mm
    reach = 1.35 * r + (min(30.0, 2.6 * r_mm) + 2.0) / spacing_mm + 4
    sl = _local(centre, max(3.2 * r + 4, reach), shape)
    yy, xx = np.mgrid[sl].astype(np.float32)
    ang = np.arctan2(yy - cy, xx - cx)
    d = np.hypot(yy - cy, xx - cx)
    radius, _ = _radius_function(rng, lesion, r, spacing_mm)
    q = d / np.maximum(radius(ang), 1e-3)
    body_l = q <= 1.0
    if not body_l.any():
        body_l[min(round(cy) - sl[0].start, body_l.shape[0] - 1),
               min(round(cx) - sl[1].start, body_l.shape[1] - 1)] = True
    depth = r * spacing_mm * rng.uniform(0.9, 1.2)
    t = 2.0 * depth * np.sqrt(np.clip(1.0 - q**2, 0.0, 1.0))
    px_sigma = 1.2 / spacing_mm
    tex = ndi.gaussian_filter(rng.standard_normal(t.shape).astype(np.float32), max(px_sigma, 0.7))
    tex /= float(tex.std()) + 1e-8
    t = t * (1.0 + 0.15 * tex)
    gland = np.zeros_like(t)
    margins = lesion.margins
    local_centre = (cy - sl[0].start, cx - sl[1].start)
    if margins == "ILL_DEFINED":
        # infiltrative edge: the outline wanders by +-0.6-1.2 mm at a 1-2 mm scale and the
        # tissue thins out gradually across it, from 0.6 to 1.35 radii
        edge = ndi.gaussian_filter(rng.standard_normal(t.shape).astype(np.float32),
                                   max(0.6 / spacing_mm, 0.7))
        edge /= float(edge.std()) + 1e-8
        wander = rng.uniform(0.6, 1.2) / max(r_mm, 1e-3) * np.clip((q - 0.5) / 0.4, 0.0, 1.0)
        q_edge = q - wander * np.clip(edge, -2.0, 2.5)
        core = 2.0 * depth * np.sqrt(np.clip(1.0 - (q_edge / 1.1) ** 2, 0.0, 1.0))
        fade = np.clip((1.35 - q_edge) / 0.75, 0.0, 1.0) ** 1.3
        t = core * fade * (1.0 + 0.15 * tex)
        # a faint, patchy skirt fading over a third of the radius, and fine strands
        skirt = np.exp(-np.clip(q - 1.0, 0.0, None) / rng.uniform(0.25, 0.4))
        t = np.maximum(t, depth * rng.uniform(0.25, 0.4) * skirt * np.clip(1.0 + 0.6 * edge,
                                                                            0.0, None))
        t = np.maximum(t, _strands(rng, radius, local_centre, r, t.shape, spacing_mm) * depth)
        t = ndi.gaussian_filter(t, max(rng.uniform(0.06, 0.1) * r, 0.35 / spacing_mm))
    elif margins == "SPICULATED":
        t = ndi.gaussian_filter(t, 0.06 * r + 0.3)
        spic = _spicules(rng, radius, local_centre, r, t.shape, spacing_mm)
        t = np.maximum(t, spic * depth)
    elif margins == "OBSCURED":
        t = ndi.gaussian_filter(t, 0.4 / spacing_mm)
        phi = rng.uniform(0, 2 * np.pi)
        oy, ox = cy + 0.95 * r * np.sin(phi), cx + 0.95 * r * np.cos(phi)
        blob = np.exp(-((yy - oy) ** 2 + (xx - ox) ** 2) / (2 * (0.55 * r) ** 2))
        gland = (blob * depth * rng.uniform(0.9, 1.5) * (1 + 0.3 * tex)).astype(np.float32)
    else:  # CIRCUMSCRIBED, MICROLOBULATED
        t = ndi.gaussian_filter(t, 0.35 / spacing_mm)
    body = np.zeros(shape, bool)
    body[sl] = body_l
    thick = np.zeros(shape, np.float32)
    thick[sl] = np.maximum(t, 0)
    over = np.zeros(shape, np.float32)
    over[sl] = gland
    return body, thick, over


def _lines(
    shape: tuple[int, int],
    paths: list[tuple[np.ndarray, np.ndarray, np.ndarray]],
    spacing_mm: float,
) -> NDArray[np.float32]:
    """Tapered lines: per path, points (k, 2) in pixels, width (mm, FWHM) and height per point.

    The profile across a line is a Gaussian of the given full width at half maximum (at least
    one pixel; a thinner line keeps its integral, so it is fainter rather than wider), averaged
    over the pixel; heights and widths are linear along each segment. Lines combine by maximum.
    """
    out = np.zeros(shape, np.float32)
    for pts, width_mm, height in paths:
        fwhm = np.maximum(width_mm / spacing_mm, 1.0)
        height = height * np.minimum(width_mm / spacing_mm, 1.0)
        sigma = fwhm / 2.355
        sig_eff = np.sqrt(sigma**2 + 1.0 / 12.0)
        height = height * sigma / sig_eff
        pad = 3.0 * float(sig_eff.max()) + 1
        y0 = max(0, int(np.floor(pts[:, 0].min() - pad)))
        y1 = min(shape[0], int(np.ceil(pts[:, 0].max() + pad)) + 1)
        x0 = max(0, int(np.floor(pts[:, 1].min() - pad)))
        x1 = min(shape[1], int(np.ceil(pts[:, 1].max() + pad)) + 1)
        if y1 <= y0 or x1 <= x0:
            continue
        yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float32)
        val = np.zeros(yy.shape, np.float32)
        for j in range(len(pts) - 1):
            (ay, ax), (by, bx) = pts[j], pts[j + 1]
            vy, vx = by - ay, bx - ax
            u = np.clip(((yy - ay) * vy + (xx - ax) * vx) / max(vy * vy + vx * vx, 1e-6), 0, 1)
            dist2 = (yy - ay - u * vy) ** 2 + (xx - ax - u * vx) ** 2
            sg = sig_eff[j] + u * (sig_eff[j + 1] - sig_eff[j])
            hg = height[j] + u * (height[j + 1] - height[j])
            val = np.maximum(val, hg * np.exp(-0.5 * dist2 / sg**2))
        out[y0:y1, x0:x1] = np.maximum(out[y0:y1, x0:x1], val)
    return out


def _path(
    rng: np.random.Generator, start: tuple[float, float], phi: float, length_px: float,
    bend: float, wiggle: float, n: int = 10,
) -> np.ndarray:
    """Points (n + 1, 2) of a gently curving, slightly wavy line from ``start`` along ``phi``."""
    s = np.linspace(0.0, 1.0, n + 1)
    a = phi + bend * s + wiggle * np.cumsum(rng.standard_normal(n + 1)) / np.sqrt(n)
    step = length_px / n
    dy = np.concatenate([[0.0], np.cumsum(np.sin(a[:-1]) * step)])
    dx = np.concatenate([[0.0], np.cumsum(np.cos(a[:-1]) * step)])
    return np.stack([start[0] + dy, start[1] + dx], axis=1)


def _spicules(
    rng: np.random.Generator, radius, centre: tuple[float, float], r: float,
    shape: tuple[int, int], spacing_mm: float,
) -> NDArray[np.float32]:
    """Radiating spicules, as tissue thickness relative to the body's half-depth (0..~1.2).

    18-36 lines from inside the body's edge outwards, each 1-3 mm wide at its base tapering to
    about 0.4 mm, 5-30 mm long (longer for larger masses), gently curved; as thick as the
    body near its edge at the base (0.8-1.2 of the half-depth), fading to nothing at the tip.
    """
    cy, cx = centre
    r_mm = r * spacing_mm
    paths = []
    for _ in range(int(rng.integers(18, 37))):
        phi = rng.uniform(0, 2 * np.pi)
        r0 = float(radius(np.array(phi))) * rng.uniform(0.7, 0.85)
        length_mm = float(np.clip(r_mm * rng.uniform(0.9, 2.6), 5.0, 30.0))
        pts = _path(rng, (cy + r0 * np.sin(phi), cx + r0 * np.cos(phi)), phi,
                    length_mm / spacing_mm, rng.uniform(-0.3, 0.3), 0.05)
        s = np.linspace(0.0, 1.0, len(pts))
        width = rng.uniform(1.0, 3.0) * (1.0 - s) + 0.4 * s
        height = rng.uniform(0.8, 1.2) * (1.0 - s) ** 0.8
        paths.append((pts, width, height))
    return ndi.gaussian_filter(_lines(shape, paths, spacing_mm), 0.2 / spacing_mm)


def _strands(
    rng: np.random.Generator, radius, centre: tuple[float, float], r: float,
    shape: tuple[int, int], spacing_mm: float,
) -> NDArray[np.float32]:
    """Fine strands of an ill-defined margin: short, thin, wavy, not strictly radial (0..~0.6).

    30-60 strands leave the body's edge at up to 45 degrees off the radius, 0.3-0.7 mm wide,
    2-10 mm long, at 0.3-0.6 of the half-depth: infiltration, not the long rays of a
    spiculated mass.
    """
    cy, cx = centre
    paths = []
    for _ in range(int(rng.integers(30, 61))):
        phi = rng.uniform(0, 2 * np.pi)
        r0 = float(radius(np.array(phi))) * rng.uniform(0.85, 1.0)
        length_mm = rng.uniform(2.0, 10.0)
        pts = _path(rng, (cy + r0 * np.sin(phi), cx + r0 * np.cos(phi)),
                    phi + rng.uniform(-0.8, 0.8), length_mm / spacing_mm,
                    rng.uniform(-0.5, 0.5), 0.25, n=6)
        s = np.linspace(0.0, 1.0, len(pts))
        width = np.full(len(pts), rng.uniform(0.3, 0.7))
        height = rng.uniform(0.3, 0.6) * (1.0 - s) ** 0.7
        paths.append((pts, width, height))
    return _lines(shape, paths, spacing_mm)


def _place_masses(
    rng: np.random.Generator,
    lesions: tuple[LesionSpec, ...],
    breast: NDArray,
    pect: NDArray,
    dist_mm: NDArray,
    gland: NDArray,
    spacing_mm: float,
) -> tuple[list[NDArray], NDArray[np.float32], NDArray[np.float32], NDArray[np.float32],
           NDArray[np.float32]]:
    """Place each mass (more often in dense tissue, as in real breasts) and render it.

    Returns the bodies, the mass tissue thickness (mm), the mass attenuation coefficient per
    pixel, the overlying glandular thickness (mm) and the glandular fraction with the
    architectural distortion of spiculated masses (:func:`_radial_pull`).
    """
    shape = breast.shape
    xx = np.broadcast_to(np.arange(shape[1], dtype=np.float32), shape)
    bodies: list[NDArray] = []
    thick = np.zeros(shape, np.float32)
    mu = np.full(shape, MU_MASS, np.float32)
    over = np.zeros(shape, np.float32)
    blocked = pect.copy()
    gland = gland.copy()
    for lesion in lesions:
        r = max(2.0, lesion.diameter_mm / 2.0 / spacing_mm)
        away = ndi.distance_transform_edt(~blocked) if blocked.any() else np.full(shape, np.inf)
        for _ in range(6):
            ok = ((dist_mm > r * spacing_mm + 4.0) & (away > 1.3 * r + 3) & (xx > 1.3 * r + 2))
            if ok.any():
                break
            r *= 0.85
        ys, xs = np.nonzero(ok) if ok.any() else np.nonzero(dist_mm == dist_mm.max())
        weight = (0.15 + gland[ys, xs]) ** 2
        i = int(rng.choice(len(ys), p=weight / weight.sum()))
        # the mass draws from its own stream: how it is drawn does not move what follows
        mass_rng = np.random.default_rng(rng.integers(0, 2**63 - 1))
        body, t, g = mass_layers(mass_rng, lesion, (float(ys[i]), float(xs[i])), r, shape,
                                 spacing_mm=spacing_mm)
        if lesion.margins == "SPICULATED":
            gland = _radial_pull(mass_rng, gland, (float(ys[i]), float(xs[i])), r, spacing_mm)
        body &= breast
        bodies.append(body)
        thick += t
        over += g
        # denser for more conspicuous masses: 15-27 % above fibroglandular tissue
        mu = np.where(t > 0, MU_GLAND * (1.12 + 0.03 * lesion.subtlety), mu)
        blocked |= ndi.binary_dilation(body, iterations=2)
    return bodies, thick, mu, over, gland


def _radial_pull(
    rng: np.random.Generator, gland: NDArray, centre: tuple[float, float], r: float,
    spacing_mm: float,
) -> NDArray[np.float32]:
    """The architectural distortion around a spiculated mass: the tissue drawn in radially.

    Within the reach of the spicules, the glandular texture is smoothed along the rays from
    the centre (Gaussian of 5-8 mm) and blended in (85-100 %, fading to none at the edge of
    the reach), so the surrounding parenchyma radiates from the mass as the tethered tissue
    of a real spiculated lesion does. Means are kept, so the dense share hardly moves.
    """
    cy, cx = centre
    h, w = gland.shape
    extent = 1.35 * r + (min(30.0, 2.6 * r * spacing_mm) + 2.0) / spacing_mm
    rr = np.arange(0.0, extent + 2.0)
    n_th = max(16, int(np.ceil(2 * np.pi * extent)))
    th = np.arange(n_th + 1) * (2 * np.pi / n_th)
    py = cy + rr[:, None] * np.sin(th)[None, :]
    px = cx + rr[:, None] * np.cos(th)[None, :]
    polar = ndi.map_coordinates(gland, [py, px], order=1, mode="nearest")
    polar = ndi.gaussian_filter1d(polar, rng.uniform(5.0, 8.0) / spacing_mm, axis=0,
                                  mode="nearest")
    sl = _local(centre, extent, (h, w))
    yy, xx = np.mgrid[sl].astype(np.float32)
    d = np.hypot(yy - cy, xx - cx)
    a = np.mod(np.arctan2(yy - cy, xx - cx), 2 * np.pi) * (n_th / (2 * np.pi))
    radial = ndi.map_coordinates(polar, [np.minimum(d, rr[-1]), a], order=1, mode="nearest")
    inner = 1.2 * r + 0.5 * (extent - 1.2 * r)
    weight = rng.uniform(0.85, 1.0) * np.clip((extent - d) / max(extent - inner, 1.0), 0.0, 1.0)
    out = gland.copy()
    out[sl] = gland[sl] + weight * (radial - gland[sl])
    return np.where(gland > 0, out, gland).astype(np.float32)


def _pectoral_thickness(
    rng: np.random.Generator, pect: NDArray, spacing_mm: float
) -> NDArray[np.float32]:
    if not pect.any():
        return np.zeros(pect.shape, np.float32)
    inner = ndi.distance_transform_edt(pect) * spacing_mm
    t = rng.uniform(18, 35) * np.clip(inner / 6.0, 0, 1) ** 0.6
    stri = power_noise(rng, pect.shape, beta=2.5, spacing_mm=spacing_mm, low_mm=15.0)
    return np.where(pect, t * (1 + 0.06 * stri), 0).astype(np.float32)


def render(spec: ImageSpec, size: tuple[int, int], seed: int) -> Phantom:
    """Render one synthetic mammogram.

    Args:
        spec: What to draw (side, view, density, lesions, style).
        size: (rows, cols) of the image.
        seed: Dataset seed; the image's stream is ``(seed, patient, side, view)``.

    Returns:
        The :class:`Phantom` (image in 0..1 and its ground truth).
    """
    shape = (int(size[0]), int(size[1]))
    spacing = FILM_HEIGHT_MM / shape[0]
    rng = np.random.default_rng([seed, *spec.key, 1])
    # the breast's tissue is the same in both views of a breast (same stream for lesions)
    breast, pect, geo = _breast_geometry(rng, shape, spec.view)
    dist_mm = _edge_distance_mm(breast, spacing)
    t0 = float(rng.uniform(40.0, 65.0))
    thickness = _thickness(dist_mm, breast, t0)
    gland = _gland(rng, breast, dist_mm, geo, spec.density, spacing)
    t_pect = _pectoral_thickness(rng, pect, spacing)
    # masses are placed on the undistorted tissue; spiculated ones then pull it in
    bodies, t_mass, mu_mass, over, gland = _place_masses(
        rng, spec.lesions, breast, pect, dist_mm, gland, spacing
    )
    mu_local = MU_FAT + (MU_GLAND - MU_FAT) * gland
    atten = mu_local * thickness
    atten += MU_SKIN * 2.5 * np.exp(-dist_mm / 0.7) * breast
    t_m = np.minimum(t_pect, thickness)
    atten += (MU_MUSCLE - mu_local) * t_m
    t_mass = np.minimum(t_mass, 0.9 * thickness)
    atten += (mu_mass - mu_local) * t_mass + (MU_GLAND - MU_FAT) * np.minimum(over, thickness)
    atten = np.where(breast, atten, 0.0).astype(np.float32)
    thin = np.where(breast, MU_FAT * (t0 - thickness), 0.0).astype(np.float32)
    if spec.side == "RIGHT":
        atten, breast, pect, gland, thin = (a[:, ::-1] for a in (atten, breast, pect, gland, thin))
        bodies = [b[:, ::-1] for b in bodies]
    src = draw_source(rng, spec.style)
    img = display(rng, atten, breast, thin, src, spacing, chest_left=spec.side == "LEFT")
    value, marks, alpha = draw_artefacts(rng, breast, style=spec.style, side=spec.side,
                                         view=spec.view, spacing_mm=spacing)
    img = img * (1.0 - alpha) + value * alpha
    img = np.clip(img, 0.0, 1.0).astype(np.float32)
    return Phantom(
        image=np.ascontiguousarray(img),
        breast_mask=np.ascontiguousarray(breast),
        pectoral_mask=np.ascontiguousarray(pect),
        mass_masks=[np.ascontiguousarray(b) for b in bodies],
        marks_mask=np.ascontiguousarray(marks & ~breast),
        gland=np.ascontiguousarray(gland),
        style=spec.style,
        spacing_mm=spacing,
    )
