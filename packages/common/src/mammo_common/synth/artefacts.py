"""What lies outside the breast on a real mammogram: labels, markers, rulers, film edges.

Film (digitised screen-film, as in DDSM): a patient ID label (a bright card with dark print),
lead markers (letters such as ``L CC``; lead stops the beam, so they are unexposed and bright),
sometimes a ruler strip with tick marks, and bright strips along the film edges where the
collimator or the cassette left the film unexposed. Digital: burned-in annotation text (bright
letters on the black background), no film edges. Every artefact is kept off a dilated breast;
the returned mask marks them all (breast segmentation must remove exactly these).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray
from PIL import Image, ImageDraw, ImageFont
from scipy import ndimage as ndi

__all__ = ["draw_artefacts"]


def _font() -> ImageFont.ImageFont:
    loader = getattr(ImageFont, "load_default_imagefont", None)
    return loader() if loader is not None else ImageFont.load_default()  # type: ignore[return-value]


def _text(text: str, scale: int, *, card: bool, rng: np.random.Generator) -> NDArray[np.float32]:
    """Rendered text: on a bright card (value, 0..1) or bright letters on 0 (alpha-like)."""
    font = _font()
    box = ImageDraw.Draw(Image.new("L", (1, 1))).textbbox((0, 0), text, font=font)
    pad = 3 if card else 1
    tw, th = box[2] - box[0] + 2 * pad, box[3] - box[1] + 2 * pad
    bg = int(rng.integers(205, 245)) if card else 0
    ink = int(rng.integers(10, 60)) if card else 255
    img = Image.new("L", (tw, th), bg)
    ImageDraw.Draw(img).text((pad - box[0], pad - box[1]), text, fill=ink, font=font)
    if scale > 1:
        img = img.resize((tw * scale, th * scale), Image.Resampling.NEAREST)
    return np.asarray(img, np.float32) / 255.0


def _place(
    layer: NDArray, mask: NDArray, free: NDArray, patch: NDArray, spots: list[tuple[int, int]],
    *, opaque: bool,
) -> bool:
    ph, pw = patch.shape
    h, w = layer.shape
    for y0, x0 in spots:
        y0, x0 = int(np.clip(y0, 0, h - ph)), int(np.clip(x0, 0, w - pw))
        if ph >= h or pw >= w:
            return False
        if free[y0:y0 + ph, x0:x0 + pw].all():
            region = (slice(y0, y0 + ph), slice(x0, x0 + pw))
            if opaque:
                layer[region] = patch
                mask[region] = True
            else:
                on = patch > 0.3
                layer[region] = np.where(on, np.maximum(layer[region], patch), layer[region])
                mask[region] |= ndi.binary_dilation(on, iterations=1)
            return True
    return False


def draw_artefacts(
    rng: np.random.Generator,
    breast: NDArray,
    *,
    style: str,
    side: str,
    view: str,
    spacing_mm: float,
) -> tuple[NDArray[np.float32], NDArray[np.bool_], NDArray[np.float32]]:
    """Draw the artefacts of one image.

    Args:
        rng: Random stream of the image.
        breast: Breast mask (final orientation).
        style: ``film`` or ``digital``.
        side: LEFT or RIGHT (the chest wall is on that side of the image).
        view: CC or MLO.
        spacing_mm: Pixel size.

    Returns:
        ``(value, mask, alpha)``: the artefacts' display values, where they are, and how much
        they replace the underlying image (1 opaque; film edges fade).
    """
    h, w = breast.shape
    value = np.zeros((h, w), np.float32)
    mask = np.zeros((h, w), bool)
    free = ~ndi.binary_dilation(breast, iterations=max(2, round(3.0 / spacing_mm)))
    chest_left = side == "LEFT"
    scale = max(1, round(1.5 * min(h, w) / 384.0))
    far = lambda width: w - width - int(rng.integers(2, max(3, w // 30)))
    near = lambda width: int(rng.integers(2, max(3, w // 30)))
    x_far = far if chest_left else near
    tops = [int(rng.integers(2, max(3, h // 20))), h - int(rng.integers(2, max(3, h // 20)))]
    if style == "film":
        # the ID card (big, bright), in a corner away from the chest wall
        card = _text(f"{int(rng.integers(100000, 999999))} {side[0]} {view}", scale, card=True,
                     rng=rng)
        ys = [tops[0], tops[1] - card.shape[0]]
        rng.shuffle(ys)
        _place(value, mask, free, card, [(y, x_far(card.shape[1])) for y in ys], opaque=True)
        # lead markers: bright letters, no card
        marker = _text(f"{side[0]}{view}", scale + 1, card=False, rng=rng) * rng.uniform(0.8, 1)
        ys = [int(rng.integers(0, h)) for _ in range(6)]
        _place(value, mask, free, marker, [(y, x_far(marker.shape[1])) for y in ys],
               opaque=False)
        if rng.random() < 0.4:  # a ruler strip with millimetre ticks
            length = int(min(h * 0.5, 100 / spacing_mm))
            bar = np.full((length, max(3, round(6 / spacing_mm))), rng.uniform(0.55, 0.8),
                          np.float32)
            step = max(2, round(5 / spacing_mm))
            bar[::step, : bar.shape[1] // 2] = rng.uniform(0.9, 1.0)
            y0 = int(rng.integers(0, max(1, h - length)))
            _place(value, mask, free, bar, [(y0, x_far(bar.shape[1])), (0, x_far(bar.shape[1]))],
                   opaque=True)
        # bright film edges: unexposed strips along some borders
        alpha = np.zeros((h, w), np.float32)
        for edge in ("top", "bottom", "far", "near"):
            if rng.random() >= {"top": 0.5, "bottom": 0.5, "far": 0.55, "near": 0.15}[edge]:
                continue
            width = max(2, round(rng.uniform(2, 9) / spacing_mm))
            level = rng.uniform(0.75, 0.97)
            ramp = np.linspace(1.0, 0.0, width, dtype=np.float32) ** rng.uniform(0.2, 0.6)
            strip = np.zeros((h, w), np.float32)
            if edge == "top":
                strip[:width, :] = ramp[:, None]
            elif edge == "bottom":
                strip[h - width:, :] = ramp[::-1, None]
            elif (edge == "far") == chest_left:
                strip[:, w - width:] = ramp[None, ::-1]
            else:
                strip[:, :width] = ramp[None, :]
            strip *= free
            alpha = np.maximum(alpha, strip)
            value = np.where(strip > 0, np.maximum(value, level), value)
        alpha = np.where(mask, 1.0, alpha)
        mask |= alpha > 0.25
        return value, mask, alpha
    # digital: burned-in annotation text, bright on black
    text = _text(f"{side[0]}-{view}", scale + 1, card=False, rng=rng)
    _place(value, mask, free, text, [(tops[0], x_far(text.shape[1])),
                                     (tops[1] - text.shape[0], x_far(text.shape[1]))],
           opaque=False)
    return value, mask, np.where(mask, (value > 0.3).astype(np.float32), 0.0)
