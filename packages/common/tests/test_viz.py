"""Overlays and contact sheets (matplotlib): aspect, contours in their colours, legend, PNG."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage

from mammo_common.plots import save_png
from mammo_common.viz import COLORS, Panel, contact_sheet, draw_panels, overlay


def _near(rgb: np.ndarray, color: tuple[int, int, int], tol: int = 60) -> np.ndarray:
    """Pixels within ``tol`` (sum of absolute channel differences) of ``color``."""
    return np.abs(rgb[..., :3].astype(np.int32) - np.asarray(color)).sum(axis=-1) <= tol


def _largest(mask: np.ndarray) -> np.ndarray:
    labels, n = ndimage.label(mask, structure=np.ones((3, 3)))
    assert n >= 1, "nothing of this colour is drawn"
    sizes = ndimage.sum(mask, labels, range(1, n + 1))
    return labels == 1 + int(np.argmax(sizes))


def _is_ring(component: np.ndarray) -> bool:
    """A closed outline: filling its inside adds far more pixels than the line holds (the
    line thickened by a pixel first, so an antialiased pixel off colour leaves no gap)."""
    line = ndimage.binary_dilation(component)
    return ndimage.binary_fill_holes(line).sum() > 3 * line.sum()


def _disk(shape: tuple[int, int], cy: float, cx: float, r: float) -> np.ndarray:
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    return (yy - cy) ** 2 + (xx - cx) ** 2 <= r**2


def _image(shape: tuple[int, int] = (200, 160), seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    smooth = ndimage.gaussian_filter(rng.normal(size=shape), 4.0)
    return (20000 + 4000 * smooth / smooth.std()).astype(np.uint16)


def test_truth_and_prediction_are_thin_closed_contours_in_their_colours() -> None:
    shape = (200, 160)
    truth, pred = _disk(shape, 100, 45, 25), _disk(shape, 100, 115, 20)
    picture = draw_panels([Panel(_image(shape), {"truth": truth, "pred": pred},
                                 "P_00001_LEFT_CC\nDice 0.000")], columns=1, panel_px=320)
    assert picture.mode == "RGB"
    rgb = np.asarray(picture)
    assert 320 <= max(rgb.shape[:2]) <= 480  # the image at 320 px, title and legend around
    t_ring, p_ring = _largest(_near(rgb, COLORS["truth"])), _largest(_near(rgb, COLORS["pred"]))
    assert _is_ring(t_ring) and _is_ring(p_ring), "outlines, not filled areas"
    # the outlines lie on the masks' edges (a disk of radius r spans 2r + 1 pixels) at one
    # scale, about 320 px / 200 rows (the layout gives the image what the text leaves)
    (t0, t1), (p0, p1) = ((np.argwhere(r).min(axis=0), np.argwhere(r).max(axis=0))
                          for r in (t_ring, p_ring))
    scale = (t1 - t0).mean() / 51
    assert 1.5 < scale < 1.8
    assert p1 - p0 == pytest.approx([41 * scale] * 2, abs=2.5)
    (ty, tx), (py, px) = (t0 + t1) / 2, (p0 + p1) / 2
    assert ty == pytest.approx(py, abs=1.5)  # same row
    assert px - tx == pytest.approx(70 * scale, abs=2)  # prediction 70 pixels right of truth
    t_box = t1 - t0
    # thin: the ring's pixels are a line of a few pixels, not a band
    assert t_ring.sum() < np.pi * t_box.mean() * 5


def test_empty_prediction_puts_none_of_its_colour_and_aspect_is_kept() -> None:
    shape = (120, 240)
    full = np.ones(shape, bool)  # a mask touching every border is still closed
    rgb = np.asarray(draw_panels([Panel(_image(shape), {"truth": full,
                                                        "pred": np.zeros(shape, bool)},
                                        "case")], columns=1, panel_px=300))
    assert not _near(rgb, COLORS["pred"]).any(), "an empty prediction draws nothing orange"
    ring = _largest(_near(rgb, COLORS["truth"]))
    height, width = np.ptp(np.argwhere(ring), axis=0)
    assert width / height == pytest.approx(2.0, rel=0.05)  # the image's own aspect
    assert 295 <= width <= 330  # about the panel size asked for


def test_sheet_has_a_title_per_panel_and_is_deterministic(tmp_path) -> None:
    shape = (96, 72)
    panels = [Panel(_image(shape, seed=k), {"breast": _disk(shape, 48, 0, 40),
                                           "truth": _disk(shape, 50, 20, 8)},
                    f"case {k}\nMLO LEFT MALIGNANT") for k in range(5)]
    one = draw_panels(panels[:1], columns=3, panel_px=160)
    sheet = draw_panels(panels, columns=3, panel_px=160)
    assert sheet.width >= 2.2 * one.width  # three columns (one set of margins)
    assert sheet.height >= 1.6 * one.height  # two rows
    rgb = np.asarray(sheet)
    _, n = ndimage.label(_near(rgb, COLORS["truth"]), structure=np.ones((3, 3)))
    assert n >= 6  # five outlines and the legend's line
    assert _near(rgb, COLORS["breast"]).any()
    a, b = save_png(sheet, tmp_path / "a.png"), save_png(
        draw_panels(panels, columns=3, panel_px=160), tmp_path / "b.png")
    data = a.read_bytes()
    assert data == b.read_bytes(), "same picture, same bytes"
    assert b"tIME" not in data and b"Software" not in data
    assert 10_000 < len(data) < 400_000
    with Image.open(a) as img:
        assert img.format == "PNG" and img.mode in ("RGB", "RGBA")


def test_overlay_array_and_rgb_tiles() -> None:
    shape = (80, 60)
    truth = _disk(shape, 40, 30, 12)
    rgb = overlay(_image(shape), {"truth": truth, "pred": None})
    assert rgb.shape == (80, 60, 3) and rgb.dtype == np.uint8
    assert _near(rgb, COLORS["truth"]).any() and not _near(rgb, COLORS["pred"]).any()
    small = overlay(_image(shape), {"truth": truth}, size=40)
    assert small.shape == (40, 30, 3)
    sheet = contact_sheet([(rgb, "a\nb"), (rgb, "c")], tile=120, columns=2)
    assert sheet.mode == "RGB" and sheet.width > sheet.height
    assert _near(np.asarray(sheet), COLORS["truth"]).any()
    with pytest.raises(ValueError, match="no tiles"):
        contact_sheet([])


def test_a_real_size_mask_is_outlined_at_the_drawing_size_in_the_same_place() -> None:
    """A 4000x3000 mask pooled before its contour (the full smoke run's report spent 8 GB and
    17 s contouring twelve of them at full size): the outline lands where the full one does."""
    import tracemalloc

    from matplotlib.figure import Figure

    from mammo_common.viz import draw_contour

    rows, cols = np.ogrid[:4000, :3000]
    mask = ((rows - 1500) ** 2 + (cols - 1000) ** 2 < 600**2).astype(np.uint8)

    def outline(max_side: int | None) -> np.ndarray:
        ax = Figure().add_subplot()
        assert draw_contour(ax, mask, (255, 0, 0), mask.shape, max_side=max_side)
        return np.concatenate([p.vertices for c in ax.collections for p in c.get_paths()])

    full = outline(None)
    tracemalloc.start()
    pooled = outline(160)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 60e6  # the full-size contour allocates well over 100 MB
    for points in (full, pooled):
        radius = np.hypot(points[:, 1] - 1500, points[:, 0] - 1000)
        assert abs(radius.mean() - 600) < 8, radius.mean()
    np.testing.assert_allclose(pooled.mean(axis=0), full.mean(axis=0), atol=4)
