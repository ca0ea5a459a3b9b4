"""The image model of a synthetic mammogram (intensities in 0..1, dense tissue bright).

Rendered in a canonical orientation with the chest wall at the left edge (x = 0), then flipped
for RIGHT breasts, so a LEFT breast has its chest wall on the left of the image and a RIGHT
breast on the right. Layers, from the back:

* film background: dark, slightly uneven, grainy;
* breast: a half ellipse from the chest wall with a wavy outline, thinner (darker) towards the
  skin, with a bright skin line;
* fibroglandular tissue: smoothed multi-scale noise with streaks towards the nipple, denser near
  the chest wall and more abundant with breast density;
* pectoral muscle (MLO only): a bright, slightly curved triangle in the upper chest-wall corner;
* masses (see :func:`mass_layers`): BI-RADS shape and margins, contrast from subtlety;
* labels and scanner marks: bright rectangles with text, marks and an edge band, always outside
  the breast (they are what breast segmentation must remove).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageDraw, ImageFont
from scipy import ndimage as ndi

from mammo_common.synth.cases import ImageSpec, LesionSpec


@dataclass
class Phantom:
    """A rendered mammogram and its ground truth.

    Attributes:
        image: float32 (H, W) intensities in 0..1, dense tissue bright.
        breast_mask: The breast (skin line included).
        pectoral_mask: The pectoral muscle (empty in CC views).
        mass_masks: The exact body of each mass, in lesion order.
        marks_mask: Labels and scanner marks (all outside the breast).
    """

    image: np.ndarray
    breast_mask: np.ndarray
    pectoral_mask: np.ndarray
    mass_masks: list[np.ndarray] = field(default_factory=list)
    marks_mask: np.ndarray | None = None


def _noise(rng: np.random.Generator, shape: tuple[int, int], sigma) -> np.ndarray:
    """Smoothed Gaussian noise of unit variance; large scales are drawn coarse and upsampled."""
    sig = np.broadcast_to(np.asarray(sigma, dtype=float), (2,))
    f = int(max(1, min(sig) // 4))
    small = (max(2, -(-shape[0] // f)), max(2, -(-shape[1] // f)))
    n = rng.standard_normal(small).astype(np.float32)
    n = ndi.gaussian_filter(n, tuple(sig / f), mode="reflect")
    if f > 1:
        n = ndi.zoom(n, (shape[0] * 1.0 / small[0] * 1.0001, shape[1] / small[1] * 1.0001), order=1)
        n = np.pad(n, [(0, max(0, shape[0] - n.shape[0])), (0, max(0, shape[1] - n.shape[1]))],
                   mode="edge")[: shape[0], : shape[1]]
    return n / (float(n.std()) + 1e-8)


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


def _tissue(
    rng: np.random.Generator, breast: np.ndarray, geo: dict[str, float], density: int
) -> tuple[np.ndarray, np.ndarray]:
    """Fat, fibroglandular tissue and skin line inside the breast; returns (image, depth)."""
    h, w = breast.shape
    s = min(h, w) / 384.0
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    dist = ndi.distance_transform_edt(breast).astype(np.float32)
    thick = np.clip(dist / (0.1 * w), 0, 1) ** 0.6
    base = 0.18 + 0.2 * thick
    streaks = _noise(rng, (h, w), (1.5 * s, 6 * s))
    fld = (
        0.4 * _noise(rng, (h, w), 2 * s)
        + 0.8 * _noise(rng, (h, w), 7 * s)
        + 0.9 * _noise(rng, (h, w), 18 * s)
        + 0.35 * streaks
    )
    fld /= float(fld.std()) + 1e-8
    prox = np.exp(-xx / (0.55 * geo["a"]))
    centre = np.exp(-(((yy - geo["cy"]) / (0.8 * geo["b"])) ** 2))
    bias = {1: -1.4, 2: -0.7, 3: 0.0, 4: 0.6}[int(density)]
    gland = 1 / (1 + np.exp(-(fld + bias + 1.3 * prox * centre - 0.6) / 0.45))
    gland *= np.clip(dist / (0.06 * w), 0, 1)
    img = base + 0.24 * gland * thick
    skin = (dist > 0) & (dist <= max(1.0, 1.6 * s))
    img = np.where(skin, img + 0.08, img)
    return np.where(breast, img, 0).astype(np.float32), dist


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
        amps = [(m, rng.uniform(0.08, 0.26) / np.sqrt(m - 1), rng.uniform(0, 2 * np.pi))
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


def mass_layers(
    rng: np.random.Generator,
    lesion: LesionSpec,
    centre: tuple[float, float],
    r: float,
    shape: tuple[int, int],
) -> tuple[np.ndarray, np.ndarray]:
    """Render one mass: its exact body mask and its additive intensity layer.

    Margins shape the intensity edge: CIRCUMSCRIBED/MICROLOBULATED sharp, OBSCURED partly
    blurred, ILL_DEFINED blurred, SPICULATED sharp-ish with radiating spicules (the spicules are
    outside the mask, which holds the mass body).
    """
    h, w = shape
    s = min(h, w) / 384.0
    cy, cx = centre
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    ang = np.arctan2(yy - cy, xx - cx)
    d = np.hypot(yy - cy, xx - cx)
    radius, _ = _radius_function(rng, lesion, r)
    body = d <= radius(ang)
    if not body.any():
        body[round(cy), round(cx)] = True
    depth = ndi.distance_transform_edt(body).astype(np.float32)
    prof = (1 - np.exp(-depth / max(0.3 * r, 0.8))) * (1 + 0.08 * _noise(rng, shape, 1.5 * s))
    margins = lesion.margins
    if margins == "OBSCURED":
        sharp = ndi.gaussian_filter(prof, 0.6 * s)
        soft = ndi.gaussian_filter(prof, 0.3 * r)
        wgt = 0.5 + 0.5 * np.cos(ang - rng.uniform(0, 2 * np.pi))
        prof = wgt * soft + (1 - wgt) * sharp
    elif margins == "ILL_DEFINED":
        prof = ndi.gaussian_filter(prof, 0.28 * r)
        prof = prof / (float(prof.max()) + 1e-8) * 0.95
    elif margins == "SPICULATED":
        prof = ndi.gaussian_filter(prof, 0.12 * r)
        prof = prof + 0.6 * _spicules(rng, radius, centre, r, shape)
    else:
        prof = ndi.gaussian_filter(prof, 0.7 * s)
    contrast = 0.12 + 0.035 * lesion.subtlety + rng.uniform(-0.02, 0.02)
    contrast += 0.02 if lesion.pathology == "MALIGNANT" else 0.0
    return body, (contrast * prof).astype(np.float32)


def _spicules(
    rng: np.random.Generator, radius, centre: tuple[float, float], r: float, shape
) -> np.ndarray:
    h, w = shape
    s = min(h, w) / 384.0
    layer = np.zeros(shape, np.float32)
    cy, cx = centre
    for _ in range(int(rng.integers(8, 17))):
        phi = rng.uniform(0, 2 * np.pi)
        r0 = float(radius(np.array(phi))) * 0.8
        length = r * rng.uniform(0.7, 1.8)
        bend = rng.uniform(-0.15, 0.15)
        n = max(4, int(2 * length))
        for t in np.linspace(0, 1, n):
            a = phi + bend * t
            y = round(cy + (r0 + t * length) * np.sin(a))
            x = round(cx + (r0 + t * length) * np.cos(a))
            if 0 <= y < h and 0 <= x < w:
                layer[y, x] = max(layer[y, x], 1 - 0.7 * t)
    layer = ndi.grey_dilation(layer, size=(2, 2)) if s >= 1 else layer
    return ndi.gaussian_filter(layer, 0.7 * max(s, 0.5)) * 2.0


def _place_masses(
    rng: np.random.Generator,
    lesions: tuple[LesionSpec, ...],
    breast: np.ndarray,
    pect: np.ndarray,
    dist: np.ndarray,
) -> tuple[list[np.ndarray], np.ndarray]:
    shape = breast.shape
    area = float(breast.sum())
    xx = np.broadcast_to(np.arange(shape[1], dtype=np.float32), shape)
    bodies: list[np.ndarray] = []
    layer = np.zeros(shape, np.float32)
    blocked = pect.copy()
    for lesion in lesions:
        r = max(3.0, float(np.sqrt(lesion.size_frac * area / np.pi)))
        away = ndi.distance_transform_edt(~blocked) if blocked.any() else np.full(shape, np.inf)
        for _ in range(4):
            ok = (dist > 1.5 * r + 3) & (away > 1.4 * r + 3) & (xx > 1.3 * r + 2)
            if ok.any():
                break
            r *= 0.8
        ys, xs = np.nonzero(ok) if ok.any() else np.nonzero(dist == dist.max())
        i = int(rng.integers(len(ys)))
        body, intensity = mass_layers(rng, lesion, (float(ys[i]), float(xs[i])), r, shape)
        body &= breast
        bodies.append(body)
        layer += intensity
        blocked |= body
    return bodies, layer * breast


def _font() -> ImageFont.ImageFont:
    loader = getattr(ImageFont, "load_default_imagefont", None)
    return loader() if loader is not None else ImageFont.load_default()  # type: ignore[return-value]


def _label(rng: np.random.Generator, text: str, scale: int) -> np.ndarray:
    font = _font()
    box = ImageDraw.Draw(Image.new("L", (1, 1))).textbbox((0, 0), text, font=font)
    tw, th = box[2] - box[0] + 6, box[3] - box[1] + 6
    img = Image.new("L", (tw, th), int(rng.integers(205, 245)))
    ink = int(rng.integers(10, 50))
    ImageDraw.Draw(img).text((3 - box[0], 3 - box[1]), text, fill=ink, font=font)
    if scale > 1:
        img = img.resize((tw * scale, th * scale), Image.Resampling.NEAREST)
    return np.asarray(img, np.float32) / 255.0


def _marks(
    rng: np.random.Generator, spec: ImageSpec, breast: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Labels and scanner marks (value layer, mask), kept off a dilated breast."""
    h, w = breast.shape
    s = min(h, w) / 384.0
    layer = np.zeros((h, w), np.float32)
    mask = np.zeros((h, w), bool)
    free = ~ndi.binary_dilation(breast, iterations=max(2, int(4 * s)))
    chest_left = spec.side == "LEFT"
    label = _label(rng, f"{spec.side[0]} {spec.view} {int(rng.integers(1000, 9999))}",
                   max(1, round(1.5 * s)))
    lh, lw = label.shape
    if lh < h and lw < w:
        margin = max(1, int(6 * s))
        x0 = w - lw - margin if chest_left else margin
        for y0 in ((margin, h - lh - margin) if rng.random() < 0.5 else (h - lh - margin, margin)):
            if free[y0:y0 + lh, x0:x0 + lw].all():
                layer[y0:y0 + lh, x0:x0 + lw] = label
                mask[y0:y0 + lh, x0:x0 + lw] = True
                break
    for _ in range(int(rng.integers(2, 5))):
        mh, mw = (max(1, int(v * s)) for v in rng.integers(3, 14, 2))
        y0, x0 = int(rng.integers(0, max(1, h - mh))), int(rng.integers(0, max(1, w - mw)))
        if free[y0:y0 + mh, x0:x0 + mw].all():
            layer[y0:y0 + mh, x0:x0 + mw] = rng.uniform(0.75, 0.98)
            mask[y0:y0 + mh, x0:x0 + mw] = True
    if rng.random() < 0.5:
        band = max(1, int(rng.integers(3, 7) * s))
        cols = slice(w - band, w) if chest_left else slice(0, band)
        ok = free[:, cols].all(axis=1)
        layer[ok, cols] = rng.uniform(0.8, 0.95)
        mask[ok, cols] = True
    return layer, mask


def render(spec: ImageSpec, size: tuple[int, int], seed: int) -> Phantom:
    """Render one synthetic mammogram.

    Args:
        spec: What to draw (side, view, density, lesions).
        size: (rows, cols) of the image.
        seed: Dataset seed; the image's stream is ``(seed, patient, side, view)``.

    Returns:
        The :class:`Phantom` (image in 0..1 and its ground truth).
    """
    shape = (int(size[0]), int(size[1]))
    rng = np.random.default_rng([seed, *spec.key, 1])
    breast, pect, geo = _breast_geometry(rng, shape, spec.view)
    tissue, dist = _tissue(rng, breast, geo, spec.density)
    if pect.any():
        s = min(shape) / 384.0
        soft = ndi.gaussian_filter(pect.astype(np.float32), 1.2 * s) * breast
        muscle = 0.6 + 0.05 * _noise(rng, shape, 4 * s)
        tissue = tissue * (1 - soft) + soft * muscle
    bodies, masses = _place_masses(rng, spec.lesions, breast, pect, dist)
    tissue = tissue + masses
    if spec.side == "RIGHT":
        tissue, breast, pect = tissue[:, ::-1], breast[:, ::-1], pect[:, ::-1]
        bodies = [b[:, ::-1] for b in bodies]
    s = min(shape) / 384.0
    background = 0.045 + 0.015 * _noise(rng, shape, 40 * s)
    img = np.where(breast, tissue, background)
    marks, marks_mask = _marks(rng, spec, breast)
    img = np.where(marks_mask, marks, img)
    img = img + 0.008 * rng.standard_normal(shape).astype(np.float32)
    img = np.clip(img, 0.0, 1.0).astype(np.float32)
    return Phantom(
        image=np.ascontiguousarray(img),
        breast_mask=np.ascontiguousarray(breast),
        pectoral_mask=np.ascontiguousarray(pect),
        mass_masks=[np.ascontiguousarray(b) for b in bodies],
        marks_mask=marks_mask,
    )
