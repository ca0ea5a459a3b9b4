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
from PIL import Image, ImageDraw
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
    rng: np.random.Generator, lesion: LesionSpec, r: float
) -> tuple[callable, float]:  # type: ignore[valid-type]
    phi = rng.uniform(0, 2 * np.pi)
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
        amps = [(m, rng.uniform(0.12, 0.3) / np.sqrt(m - 1), rng.uniform(0, 2 * np.pi))
                for m in range(2, 9)]
        k = rng.uniform(1.0, 1.3)
    if lesion.margins == "MICROLOBULATED":
        amps.append((int(rng.integers(10, 17)), 0.06, rng.uniform(0, 2 * np.pi)))
    rot = rng.uniform(0, np.pi)

    def radius(theta: np.ndarray) -> np.ndarray:
        ell = r / np.sqrt((np.cos(theta - rot) / k) ** 2 + (np.sin(theta - rot) * k) ** 2)
        wobble = 1 + sum(a * np.cos(m * theta + p) for m, a, p in amps)
        return ell * wobble

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

    The body is a star-shaped outline from the BI-RADS shape; the thickness is the chord of an
    ellipsoid through it (so a circumscribed margin is sharp), textured; the margins shape the
    edge (see the module docs). Spicules are mass-like tissue outside the body, which holds the
    mask.

    Args:
        rng: Random stream.
        lesion: Descriptors.
        centre: (row, col) of the centre.
        r: Mean radius in pixels.
        shape: Image (rows, cols).
        spacing_mm: Pixel size.
    """
    cy, cx = centre
    sl = _local(centre, 3.2 * r + 4, shape)
    yy, xx = np.mgrid[sl].astype(np.float32)
    ang = np.arctan2(yy - cy, xx - cx)
    d = np.hypot(yy - cy, xx - cx)
    radius, _ = _radius_function(rng, lesion, r)
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
    if margins == "ILL_DEFINED":
        t = ndi.gaussian_filter(t, 0.22 * r) * rng.uniform(1.1, 1.3)
    elif margins == "SPICULATED":
        t = ndi.gaussian_filter(t, 0.06 * r + 0.3)
        t = t + _spicules(rng, radius, (cy - sl[0].start, cx - sl[1].start), r, t.shape,
                          spacing_mm) * depth * rng.uniform(0.6, 0.95)
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


def _spicules(
    rng: np.random.Generator, radius, centre: tuple[float, float], r: float,
    shape: tuple[int, int], spacing_mm: float,
) -> NDArray[np.float32]:
    """Thin radiating lines (1 at the body, tapering) drawn with anti-aliased strokes."""
    h, w = shape
    cy, cx = centre
    k = 4
    img = Image.new("F", (w * k, h * k), 0.0)
    draw = ImageDraw.Draw(img)
    width = max(1, round(0.8 / spacing_mm * k))
    for _ in range(int(rng.integers(10, 22))):
        phi = rng.uniform(0, 2 * np.pi)
        r0 = float(radius(np.array(phi))) * 0.85
        length = r * rng.uniform(0.6, 1.9)
        bend = rng.uniform(-0.2, 0.2)
        pts = []
        for s in np.linspace(0, 1, 12):
            a = phi + bend * s
            pts.append(((cx + (r0 + s * length) * np.cos(a)) * k,
                        (cy + (r0 + s * length) * np.sin(a)) * k))
        for j in range(len(pts) - 1):
            draw.line([pts[j], pts[j + 1]], fill=float(1.0 - 0.75 * j / len(pts)), width=width)
    arr = np.asarray(img, np.float32).reshape(h, k, w, k).mean(axis=(1, 3))
    return ndi.gaussian_filter(arr, 0.3 / spacing_mm)


def _place_masses(
    rng: np.random.Generator,
    lesions: tuple[LesionSpec, ...],
    breast: NDArray,
    pect: NDArray,
    dist_mm: NDArray,
    gland: NDArray,
    spacing_mm: float,
) -> tuple[list[NDArray], NDArray[np.float32], NDArray[np.float32], NDArray[np.float32]]:
    """Place each mass (more often in dense tissue, as in real breasts) and render it.

    Returns the bodies, the mass tissue thickness (mm), the mass attenuation coefficient per
    pixel and the overlying glandular thickness (mm).
    """
    shape = breast.shape
    xx = np.broadcast_to(np.arange(shape[1], dtype=np.float32), shape)
    bodies: list[NDArray] = []
    thick = np.zeros(shape, np.float32)
    mu = np.full(shape, MU_MASS, np.float32)
    over = np.zeros(shape, np.float32)
    blocked = pect.copy()
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
        body, t, g = mass_layers(rng, lesion, (float(ys[i]), float(xs[i])), r, shape,
                                 spacing_mm=spacing_mm)
        body &= breast
        bodies.append(body)
        thick += t
        over += g
        # denser for more conspicuous masses: 15-27 % above fibroglandular tissue
        mu = np.where(t > 0, MU_GLAND * (1.12 + 0.03 * lesion.subtlety), mu)
        blocked |= ndi.binary_dilation(body, iterations=2)
    return bodies, thick, mu, over


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
    mu_local = MU_FAT + (MU_GLAND - MU_FAT) * gland
    atten = mu_local * thickness
    atten += MU_SKIN * 2.5 * np.exp(-dist_mm / 0.7) * breast
    t_m = np.minimum(_pectoral_thickness(rng, pect, spacing), thickness)
    atten += (MU_MUSCLE - mu_local) * t_m
    bodies, t_mass, mu_mass, over = _place_masses(
        rng, spec.lesions, breast, pect, dist_mm, gland, spacing
    )
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
