"""Native <-> store geometry: crop boxes, resizing, and the round trip back to the original."""

from __future__ import annotations

import numpy as np
import pytest

from mammo_common.schema import CaseTransform
from mammo_common.transforms import (
    apply_transform,
    crop_box_from_mask,
    invert_transform,
    make_transform,
    resize,
)


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.astype(bool), b.astype(bool)
    return 2.0 * (a & b).sum() / (a.sum() + b.sum())


def _ellipse(shape, centre, radii) -> np.ndarray:
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    return ((yy - centre[0]) / radii[0]) ** 2 + ((xx - centre[1]) / radii[1]) ** 2 <= 1


def test_crop_box_tight_and_margin():
    mask = np.zeros((100, 80), np.uint8)
    mask[20:60, 10:50] = 1
    assert crop_box_from_mask(mask) == (20, 10, 60, 50)
    assert crop_box_from_mask(mask, 0.1) == (16, 6, 64, 54)
    # a large margin is clipped to the image
    assert crop_box_from_mask(mask, 5.0) == (0, 0, 100, 80)


def test_crop_box_empty_mask_is_whole_image():
    assert crop_box_from_mask(np.zeros((7, 5), bool)) == (0, 0, 7, 5)


def test_crop_box_rejects_bad_input():
    with pytest.raises(ValueError):
        crop_box_from_mask(np.zeros((2, 2, 2)))
    with pytest.raises(ValueError):
        crop_box_from_mask(np.zeros((2, 2)), -0.1)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32, bool])
def test_resize_keeps_dtype_and_range(dtype):
    rng = np.random.default_rng(0)
    a = (rng.random((50, 40)) * (1 if dtype in (bool, np.float32) else 200)).astype(dtype)
    for order in (0, 1):
        out = resize(a, (23, 31), order=order)
        assert out.shape == (23, 31)
        assert out.dtype == a.dtype
        if dtype is not bool:
            assert out.min() >= a.min() and out.max() <= a.max()


def test_resize_nearest_keeps_labels():
    a = np.zeros((64, 48), np.uint8)
    a[10:30, 5:20] = 1
    a[40:60, 30:45] = 3
    out = resize(a, (128, 96), order=0)
    assert set(np.unique(out)) == {0, 1, 3}
    # up then down by an integer factor is exact
    np.testing.assert_array_equal(resize(out, (64, 48), order=0), a)


def test_resize_identity_and_errors():
    a = np.arange(12, dtype=np.uint16).reshape(3, 4)
    np.testing.assert_array_equal(resize(a, (3, 4)), a)
    with pytest.raises(ValueError):
        resize(np.zeros((2, 2, 2)), (4, 4))
    with pytest.raises(ValueError):
        resize(a, (0, 4))


def test_transform_shapes_and_validation():
    tf = make_transform((300, 200), (10, 20, 210, 180), (64, 64))
    assert isinstance(tf, CaseTransform)
    img = np.zeros((300, 200), np.uint16)
    assert apply_transform(img, tf).shape == (64, 64)
    with pytest.raises(ValueError):
        apply_transform(np.zeros((10, 10)), tf)
    with pytest.raises(ValueError):
        invert_transform(np.zeros((10, 10)), tf)
    with pytest.raises(ValueError):  # crop box outside the image
        make_transform((100, 100), (0, 0, 120, 50), (64, 64))


@pytest.mark.parametrize(
    ("native", "centre", "radii", "output", "margin"),
    [
        ((400, 300), (200, 120), (150, 100), (128, 128), 0.02),  # down-sampling, squashed
        ((257, 193), (120, 90), (60, 40), (640, 640), 0.05),  # up-sampling
        ((1024, 768), (500, 200), (400, 190), (160, 160), 0.0),  # ~5x down-sampling
        ((300, 500), (150, 380), (40, 70), (96, 160), 0.1),  # small object, wide image
    ],
)
def test_round_trip_lands_on_original(native, centre, radii, output, margin):
    breast = _ellipse(native, centre, radii)
    mass = _ellipse(native, centre, (radii[0] // 3, radii[1] // 3)).astype(np.uint8)
    box = crop_box_from_mask(breast, margin)
    tf = make_transform(native, box, output)
    stored = apply_transform(mass, tf, order=0)
    assert stored.shape == output and stored.dtype == np.uint8
    back = invert_transform(stored, tf, order=0)
    assert back.shape == native and back.dtype == np.uint8
    assert _dice(back, mass) >= 0.98
    # a stored pixel's native position follows the documented formula
    r, c = box[0] + (box[2] - box[0]) // 2, box[1] + (box[3] - box[1]) // 2
    sr, sc = (r - box[0]) * tf.scale_y, (c - box[1]) * tf.scale_x
    assert 0 <= sr < output[0] and 0 <= sc < output[1]


def test_invert_transform_blanks_outside_crop():
    tf = make_transform((100, 100), (20, 30, 60, 90), (32, 32))
    back = invert_transform(np.ones((32, 32), np.uint8), tf)
    assert back.sum() == 40 * 60
    assert back[:20].sum() == 0 and back[:, :30].sum() == 0


def test_image_round_trip_is_close():
    yy, xx = np.mgrid[:200, :160]
    img = (yy * 100 + xx * 50).astype(np.uint16)
    tf = make_transform(img.shape, (0, 0, 200, 160), (100, 80))
    back = invert_transform(apply_transform(img, tf, order=1), tf, order=1)
    assert np.abs(back.astype(float) - img).mean() < 0.02 * img.max()


@pytest.mark.parametrize(
    ("native", "crop", "out"),
    [((200, 160), (20, 10, 180, 130), (80, 60)), ((150, 140), (30, 25, 130, 115), (80, 60)),
     ((10, 12), (1, 2, 9, 11), (40, 30)), ((97, 61), (0, 0, 97, 61), (64, 64))],
)
def test_invert_transform_window_equals_the_whole_image_inverse(native, crop, out):
    from mammo_common.transforms import box_to_native, invert_transform_window

    tf = make_transform(native, crop, out)
    rng = np.random.default_rng(0)
    store = rng.integers(0, 5, out).astype(np.uint8)
    full = invert_transform(store, tf, order=0)
    for window in [(0, 0, *native), (3, 4, native[0] - 2, native[1] - 5), (0, 0, 0, 0)]:
        y0, x0, y1, x1 = window
        np.testing.assert_array_equal(
            invert_transform_window(store, tf, window), full[y0:y1, x0:x1]
        )
    # box_to_native covers every native pixel of a store box
    for _ in range(20):
        y0, x0 = int(rng.integers(0, out[0] - 1)), int(rng.integers(0, out[1] - 1))
        box = (y0, x0, int(rng.integers(y0 + 1, out[0] + 1)), int(rng.integers(x0 + 1, out[1] + 1)))
        part = np.zeros(out, np.uint8)
        part[box[0] : box[2], box[1] : box[3]] = 1
        rows, cols = np.nonzero(invert_transform(part, tf, order=0))
        ny0, nx0, ny1, nx1 = box_to_native(box, tf)
        if rows.size:
            assert ny0 <= rows.min() and rows.max() < ny1 and nx0 <= cols.min() and cols.max() < nx1
    with pytest.raises(ValueError, match="not inside"):
        invert_transform_window(store, tf, (0, 0, native[0] + 1, 1))


# --- padded_crop / resize_bilinear (mammo_common.crops): the squares of the second-look stages


def _grid(dtype=np.int32) -> np.ndarray:
    """A 6x8 array whose every value is distinct and non-zero (1..48)."""
    return (np.arange(48).reshape(6, 8) + 1).astype(dtype)


def test_padded_crop_inside_is_a_plain_slice_copy():
    from mammo_common.crops import padded_crop

    a = _grid()
    out = padded_crop(a, (1, 2, 4, 7))
    np.testing.assert_array_equal(out, a[1:4, 2:7])
    out[0, 0] = -1  # a copy, not a view
    assert a[1, 2] == 11


@pytest.mark.parametrize(
    ("box", "inside"),
    [
        ((-2, 1, 3, 5), (slice(2, 5), slice(0, 4))),  # leaves the top
        ((3, 1, 9, 5), (slice(0, 3), slice(0, 4))),  # leaves the bottom
        ((1, -3, 4, 4), (slice(0, 3), slice(3, 7))),  # leaves the left
        ((1, 5, 4, 11), (slice(0, 3), slice(0, 3))),  # leaves the right
        ((-1, -1, 7, 9), (slice(1, 7), slice(1, 9))),  # leaves every side
    ],
)
def test_padded_crop_zero_pads_outside_the_image(box, inside):
    from mammo_common.crops import padded_crop

    a = _grid()
    top, left, bottom, right = box
    out = padded_crop(a, box)
    assert out.shape == (bottom - top, right - left)
    y0, x0, y1, x1 = max(top, 0), max(left, 0), min(bottom, 6), min(right, 8)
    np.testing.assert_array_equal(out[inside], a[y0:y1, x0:x1])
    outside = np.ones(out.shape, bool)
    outside[inside] = False
    assert outside.any() and not out[outside].any()


@pytest.mark.parametrize("box", [(10, 10, 14, 13), (-5, -5, -1, -2), (0, 8, 6, 12), (-3, 2, 0, 5)])
def test_padded_crop_fully_outside_is_all_fill(box):
    from mammo_common.crops import padded_crop

    out = padded_crop(_grid(), box, fill=7)
    assert out.shape == (box[2] - box[0], box[3] - box[1])
    assert (out == 7).all()


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.int32, np.float32, np.float64, np.bool_])
def test_padded_crop_keeps_dtype_and_values(dtype):
    from mammo_common.crops import padded_crop

    a = _grid(dtype)
    out = padded_crop(a, (-1, -1, 3, 3))
    assert out.dtype == a.dtype
    np.testing.assert_array_equal(out[1:, 1:], a[:3, :3])
    assert not out[0].any() and not out[:, 0].any()


def test_padded_crop_fill_channels_and_bad_boxes():
    from mammo_common.crops import padded_crop

    rgb = np.stack([_grid(np.float32)] * 3, axis=-1)
    out = padded_crop(rgb, (4, 6, 8, 10), fill=-1.0)
    assert out.shape == (4, 4, 3)
    np.testing.assert_array_equal(out[:2, :2], rgb[4:6, 6:8])
    assert (out[2:] == -1).all() and (out[:, 2:] == -1).all()
    assert padded_crop(_grid(), (2, 2, 2, 5)).shape == (0, 3)
    with pytest.raises(ValueError, match="negative side"):
        padded_crop(_grid(), (3, 0, 1, 4))
    with pytest.raises(ValueError, match="2-D"):
        padded_crop(np.arange(5), (0, 0, 1, 1))


def test_resize_bilinear_is_pillows_float32_bilinear():
    from PIL import Image

    from mammo_common.crops import resize_bilinear

    a = np.random.default_rng(0).random((37, 37))
    want = np.asarray(
        Image.fromarray(a.astype(np.float32)).resize((16, 16), Image.Resampling.BILINEAR)
    )
    got = resize_bilinear(a, 16)
    assert got.dtype == np.float32 and got.tobytes() == want.tobytes()
    assert resize_bilinear(a, (20, 30)).shape == (20, 30)  # (rows, cols), not PIL's (w, h)
    same = _grid(np.float32)
    kept = resize_bilinear(same, same.shape)
    assert kept.dtype == np.float32 and kept is not same
    np.testing.assert_array_equal(kept, same)
    np.testing.assert_array_equal(resize_bilinear(same > 20, same.shape), same > 20)
    with pytest.raises(ValueError):
        resize_bilinear(np.zeros((2, 2, 2)), 4)
